"""Compiling ahead of time: the warmup function, its command, and worker processes."""

import pytest

from fastgrad import _cache
from fastgrad.cli import main
from fastgrad.engine import run
from fastgrad.kernels import cpu_chain
from fastgrad.models.chain import Chain
from fastgrad.warmup import compile_jobs, standard_jobs, warmup


def test_standard_jobs_cover_every_combination():
    jobs = standard_jobs(["mlp", "chain"], ["float32", "float64"], ["tanh", "relu"])
    assert len(jobs) == 8
    assert {(type(spec).__name__, dtype, spec.activation) for _, spec, dtype in jobs} == {
        (m, d, a) for m in ("MLP", "Chain") for d in ("float32", "float64") for a in ("tanh", "relu")}


def test_bad_choices_are_refused_by_name():
    with pytest.raises(ValueError, match="activations: unknown 'nope'"):
        warmup(activations=["nope"], progress=False)
    with pytest.raises(ValueError, match="dtypes"):
        warmup(dtypes=["float16"], progress=False)
    with pytest.raises(ValueError, match="models"):
        warmup(models=["no_such_model"], progress=False)


def test_warmup_compiles_what_a_run_then_finds(capsys):
    done = warmup(dtypes=["float32"], activations=["softplus"], models=["chain"], progress=True)
    assert [label for label, _ in done] == ["run Chain float32 softplus"]
    assert "fastgrad warmup: run Chain float32 softplus" in capsys.readouterr().err
    before = len(cpu_chain.generated.overloads)
    run(Chain(depth=5, activation="softplus"), trials=10, dtype="float32")
    assert len(cpu_chain.generated.overloads) == before  # nothing new to compile


def test_worker_processes_fill_the_shared_cache():
    # Two fresh processes compile side by side into the on-disk cache; this process then loads.
    jobs = [("run", Chain(depth=2, activation=name), "float64") for name in ("elu", "gelu")]
    done = compile_jobs(jobs, processes=2)
    assert [label for label, _ in done] == ["run Chain float64 elu", "run Chain float64 gelu"]


def test_command_line(capsys):
    assert main(["warmup", "--model", "chain", "--activation", "relu", "--dtype", "float64"]) == 0
    assert "1 kernels ready" in capsys.readouterr().out
    assert main(["warmup", "--activation", "nope"]) == 2
    assert "fastgrad: error: activations: unknown 'nope'" in capsys.readouterr().err


def test_clear_removes_only_compiled_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGRAD_CACHE_DIR", str(tmp_path))
    (tmp_path / "py311" / "kernels.cpu_mlp").mkdir(parents=True)
    (tmp_path / "py311" / "kernels.cpu_mlp" / "generated-1-abc.py311.nbi").write_text("x")
    (tmp_path / "py311" / "kernels.cpu_mlp" / "generated-1-abc.py311.1.nbc").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    assert _cache.clear() == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_warmup_on_every_dask_worker():
    # client.run runs it once on each worker process; each compiles into (or loads from) the shared cache.
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            done = client.run(warmup, dtypes=["float64"], activations=["linear"], models=["chain"], progress=False)
    assert len(done) == 2
    assert all([label for label, _ in d] == ["run Chain float64 linear"] for d in done.values())

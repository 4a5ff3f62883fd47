"""A hurried user's mistakes with runs and stores: one clear line each, before anything runs or is written."""

import json

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import engine
from fastgrad.cli import main


def test_a_run_too_large_for_memory_is_refused_naming_what_to_change(monkeypatch):
    monkeypatch.setattr(engine, "available_memory", lambda: 2**30)  # a machine with 1 GiB free
    # 1e8 trials x 4 statistics x 50 layers x 8 bytes = 1.6e11 bytes = 149 GiB; 2^30 / 1,600 = 671,088 trials fit
    with pytest.raises(ValueError, match=r"^trials: 100,000,000 trials need about 149 GiB for their statistics "
                                         r"\(1,600 bytes each\) and 1 GiB are available; run at most 67\d,\d{3} "
                                         "trials per call, or use fastgrad.sweep"):
        fg.run(fg.MLP(depth=50, width=8), trials=10**8)
    # One trial of a width-40,000 MLP holds 4 layers of 40,000^2 float64 weights: ~48 GiB.
    with pytest.raises(ValueError, match="^width: one trial of this mlp needs about 4[78].. GiB of working memory"):
        fg.run(fg.MLP(depth=4, width=40_000), trials=2, threads=1)
    with pytest.raises(ValueError, match="^trials:"):
        engine.run_cells([fg.MLP(depth=50, width=8, init="scaled_normal", sigma_w2=v) for v in (1.0, 2.0)],
                         trials=10**8)


def test_small_runs_are_not_checked_against_the_machine(monkeypatch):
    monkeypatch.setattr(engine, "available_memory", lambda: 0)  # would refuse anything it were asked about
    assert np.isfinite(fg.run(fg.MLP(depth=3, width=4), trials=2, batch=2).q).all()


def test_store_mistakes_get_one_line(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(ValueError, match="^store: .*notes.txt is a file, not a folder"):
        fg.sweep("mlp", {"depth": 2, "width": 3}, trials=2, store=a_file, progress=False)
    assert a_file.read_text() == "mine"
    with pytest.raises(ValueError, match="^store: .*notes.txt is a file; a store is a folder"):
        fg.load(a_file)
    store = tmp_path / "s"
    fg.sweep("mlp", {"depth": 2, "width": 3}, trials=2, store=store, progress=False)
    (store / "manifest.json").write_text('{"model": "mlp", "grid": {\x01}')  # a control character, as seen
    for call in (lambda: fg.load(store),
                 lambda: fg.sweep("mlp", {"depth": 2, "width": 3}, trials=2, store=store, progress=False)):
        with pytest.raises(ValueError, match="manifest.json is unreadable or not valid JSON .* move the store aside"):
            call()
    assert main(["analyze", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0]
    (store / "manifest.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="does not hold a manifest"):
        fg.load(store)


def test_a_sweep_says_where_it_writes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fg.sweep("mlp", {"depth": 2, "width": 3}, trials=2)  # no store=: ./runs/sweep
    assert (tmp_path / "runs" / "sweep" / "manifest.json").exists()
    assert "into runs/sweep" in capsys.readouterr().err

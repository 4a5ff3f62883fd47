"""A grouped sweep (cells over shared draws) killed or interrupted part-way keeps its work and resumes bitwise."""

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import fastgrad as fg
from fastgrad import executor, rng
from fastgrad import store as store_module
from fastgrad.sweep import SweepInterrupted, compute_cell, expand_grid

# A sigma_w^2 x sigma_b^2 phase diagram: every cell differs only in scales, so all run as one group.
GRID = {"depth": 12, "width": 48, "init": "scaled_normal", "activation": "tanh",
        "sigma_w2": [0.6, 1.0, 1.4, 1.8, 2.2, 2.6], "sigma_b2": [0.0, 0.05]}
TRIALS, BATCH, SEED = 3000, 8, 5
ROOT = Path(__file__).parent.parent


def _pieces(store: Path) -> list[Path]:
    return sorted((store / "partial").glob("*/*.parquet"))


def _start(store: Path, cli: bool = False) -> subprocess.Popen:
    if cli:
        args = [sys.executable, "-X", "faulthandler", "-m", "fastgrad.cli", "sweep", "--store", str(store),
                "--trials", str(TRIALS), "--batch", str(BATCH), "--seed", str(SEED), "--quiet", "--save-every", "0",
                "--depth", "12", "--width", "48", "--init", "scaled_normal", "--activation", "tanh",
                "--sigma-w2", "0.6,1.0,1.4,1.8,2.2,2.6", "--sigma-b2", "0.0,0.05"]
    else:
        args = [sys.executable, "-X", "faulthandler", "-c",
                f"import fastgrad; fastgrad.sweep('mlp', {GRID!r}, trials={TRIALS}, "
                f"batch={BATCH}, seed={SEED}, store={str(store)!r}, progress=False, "
                "save_every=0)"]
    # SIGINT back to its default in the child: a shell's background job (CI's, nohup's) starts with it ignored,
    # and Python then installs no KeyboardInterrupt for it.
    return subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_pieces(proc: subprocess.Popen, store: Path, count: int = 1) -> None:
    deadline = time.time() + 180
    while time.time() < deadline and len(_pieces(store)) < count and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.stderr.read()}"  # type: ignore
    assert len(_pieces(store)) >= count, "no piece was saved in 180 s"


def _check_whole(store: Path, reference: pd.DataFrame) -> None:
    frame = fg.load(store)
    keys = ["sigma_w2", "sigma_b2", "trial", "layer"]
    assert not frame.duplicated(keys).any()  # no trial saved twice
    assert len(frame) == len(reference) == 12 * TRIALS * 12  # none missing
    pd.testing.assert_frame_equal(frame, reference)  # bitwise: assert_frame_equal compares exactly by default
    assert not (store / "partial").exists() or not _pieces(store)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    store = tmp_path_factory.mktemp("whole") / "s"
    fg.sweep("mlp", GRID, trials=TRIALS, batch=BATCH, seed=SEED, store=store, progress=False)
    return fg.load(store)


def test_sigkill_of_a_grouped_sweep_keeps_the_saved_trials(tmp_path, reference):
    store = tmp_path / "killed"
    proc = _start(store)
    _wait_for_pieces(proc, store, count=12)  # every cell's first chunk
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = list((store / "cells").glob("*.parquet"))
    pieces = _pieces(store)
    assert len(finished) < 12, "the sweep should have been killed part-way"
    saved = {}
    for path in pieces:  # what was on disk at the kill: whole pieces of each cell, none half-written
        meta = json.loads(pq.read_schema(path).metadata[b"fastgrad.cell"])
        lo, hi = meta["trials"]
        saved[path.parent.name] = saved.get(path.parent.name, 0) + hi - lo
    assert saved and all(0 < n < TRIALS for n in saved.values())
    report = fg.sweep("mlp", GRID, trials=TRIALS, batch=BATCH, seed=SEED, store=store, progress=False)
    assert report.done + report.skipped == 12 and not report.failed
    _check_whole(store, reference)


def test_sigint_stops_a_grouped_sweep_fast_and_saves(tmp_path, reference):
    store = tmp_path / "interrupted"
    proc = _start(store, cli=True)
    _wait_for_pieces(proc, store)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired as stuck:  # say where (faulthandler dumps every thread on SIGABRT)
        proc.send_signal(signal.SIGABRT)
        dump = proc.communicate()[1][-4000:]
        raise AssertionError(f"the sweep did not stop within 60 s of SIGINT:\n{dump}") from stuck
    waited = time.perf_counter() - t0
    assert proc.returncode == 130
    message = err.strip().splitlines()[-1]
    assert message.startswith("fastgrad: interrupted:") and "trials of unfinished cells" in message
    assert waited < 30  # about 1 s on a quiet machine (one chunk); generous for a loaded test machine
    saved = sum(store_module.saved_trials(store, p, TRIALS).sum() for p in expand_grid("mlp", GRID))
    assert saved > 0
    report = fg.sweep("mlp", GRID, trials=TRIALS, batch=BATCH, seed=SEED, store=store, progress=False)
    assert not report.failed
    _check_whole(store, reference)


def test_sigterm_saves_like_ctrl_c(tmp_path):
    store = tmp_path / "terminated"
    proc = _start(store)
    _wait_for_pieces(proc, store)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired as stuck:  # say where (faulthandler dumps every thread on SIGABRT)
        proc.send_signal(signal.SIGABRT)
        dump = proc.communicate()[1][-6000:]
        raise AssertionError(f"the sweep did not exit within 60 s of SIGTERM:\n{dump}") from stuck
    assert proc.returncode != 0 and "SweepInterrupted" in err and "the same command resumes" in err


def test_pieces_join_into_the_file_a_single_write_gives(tmp_path):
    spec_grid = {"depth": 3, "width": 5, "init": "scaled_normal", "sigma_w2": [1.0, 2.0]}
    fg.sweep("mlp", spec_grid, trials=40, batch=2, seed=2, store=tmp_path / "pieces", progress=False, save_every=0)
    params = {"depth": 3, "width": 5, "init": "scaled_normal", "sigma_w2": 2.0}
    res = fg.run(fg.MLP(**params), trials=40, batch=2, seed=2)
    one = store_module.cell_table(params, dict(res.arrays))
    got = pq.read_table(tmp_path / "pieces" / "cells" / f"{store_module.cell_id(params)}.parquet")
    assert got.equals(one) and got.schema.metadata == one.schema.metadata


def test_overlapping_and_corrupt_pieces(tmp_path):
    params = {"depth": 2, "width": 3}
    grid = {k: v for k, v in params.items()}
    store = tmp_path / "s"
    fg.sweep("mlp", grid, trials=2, store=tmp_path / "warm", progress=False)  # compile outside the timing below
    root = store_module.open_store(store, {"model": "mlp", "grid": {"depth": [2], "width": [3]}, "seed": 0,
                                           "trials": 10, "batch": 32, "dtype": "float64",
                                           "generator": rng.generator("float64"), "version": fg.__version__})
    arrays = dict(fg.run(fg.MLP(**params), trials=10).arrays)
    store_module.write_part(root, params, 0, {k: v[:6] for k, v in arrays.items()})
    store_module.write_part(root, params, 4, {k: v[4:8] for k, v in arrays.items()})  # overlaps 4, 5
    bad = store_module.write_part(root, params, 8, {k: v[8:] for k, v in arrays.items()})
    bad.write_bytes(bad.read_bytes()[:50])  # truncated: set aside, its trials recomputed
    mask = store_module.saved_trials(root, params, 10)
    np.testing.assert_array_equal(mask, [True] * 8 + [False] * 2)
    assert len(list(bad.parent.glob("*.corrupt-*"))) == 1
    report = fg.sweep("mlp", grid, trials=10, batch=32, seed=0, store=store, progress=False)
    assert report.done == 1
    frame = fg.load(store)
    np.testing.assert_array_equal(frame["grad_w"].to_numpy().reshape(10, 2), arrays["grad_w"])
    assert len(list((root / "partial").glob("*/*.corrupt-*"))) == 1  # kept for inspection, never deleted


def test_progress_advances_by_trials_within_a_group(tmp_path, monkeypatch):
    sweep_module = importlib.import_module("fastgrad.sweep")  # fastgrad.sweep is also the function
    updates = []

    class Bar:
        def __init__(self, total, initial, **kwargs):
            self.total, self.n = total, initial

        def update(self, n):
            self.n += n
            updates.append(self.n)

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(sweep_module, "tqdm", Bar)
    grid = {**GRID, "depth": 4, "width": 16}
    fg.sweep("mlp", grid, trials=600, batch=4, seed=1, store=tmp_path / "s", progress=True)
    assert len(updates) > 2 and updates[-1] == 12 * 600  # one group of 12 cells, seen advancing chunk by chunk
    assert updates[0] < 12 * 600 / 4 and all(b > a for a, b in zip(updates, updates[1:], strict=False))


def test_a_store_from_when_orthogonal_ignored_sigma_w_is_refused(tmp_path):
    grid = {"depth": 3, "width": 4, "init": "orthogonal", "sigma_w2": [1.0, 1.5]}
    fg.sweep("mlp", grid, trials=3, batch=2, store=tmp_path / "s", progress=False)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["scales"] == 2
    del manifest["scales"]  # as written before sigma_w scaled orthogonal weights
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="ignored for orthogonal"):
        fg.sweep("mlp", grid, trials=3, batch=2, store=tmp_path / "s", progress=False)
    gain_grid = {"depth": 3, "width": 4, "init": "orthogonal", "gain": [1.0, 1.5]}  # gain meant then what it means now
    fg.sweep("mlp", gain_grid, trials=3, batch=2, store=tmp_path / "g", progress=False)
    assert "scales" not in json.loads((tmp_path / "g" / "manifest.json").read_text())


def test_the_worker_threads_start_together_so_a_ctrl_c_cannot_strand_one():
    # A ThreadPoolExecutor starts a thread inside submit(); a Ctrl-C between its start and its registration
    # left a worker nothing wakes at exit (the interpreter then waited for ever). fastgrad's pool starts every
    # worker at once, signals held back, so each is registered before any kernel is handed out.
    code = ("import concurrent.futures.thread as t\n"
            "from fastgrad import executor\n"
            "pool = executor._executor()\n"
            "assert len(pool._threads) == pool._max_workers, (len(pool._threads), pool._max_workers)\n"
            "assert all(th in t._threads_queues for th in pool._threads)\n"
            "raise KeyboardInterrupt\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr and "AssertionError" not in proc.stderr


def test_a_signal_raised_inside_a_worker_s_start_strands_no_thread():
    # Holding SIGINT and SIGTERM back in the main thread does not stop another thread (tqdm's monitor) taking
    # one, and Python then raises KeyboardInterrupt in the main thread wherever it is: here inside the first
    # worker's start, before the pool registers it. Every worker must still exit with the interpreter.
    code = ("import threading\n"
            "from fastgrad import executor\n"
            "start = threading.Thread.start\n"
            "def interrupted(self):\n"
            "    start(self)\n"
            "    threading.Thread.start = start\n"
            "    raise KeyboardInterrupt\n"
            "threading.Thread.start = interrupted\n"
            "executor._executor()\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=50)
    except subprocess.TimeoutExpired as stuck:
        raise AssertionError("the interpreter waited for a worker thread nothing woke") from stuck
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_chunk_lets_it_finish_then_saves_and_stops(tmp_path, signum):
    # The signal handler only notes the signal; the sweep stops after the running chunk, so nothing is raised
    # inside the thread pool's or the store's code. Here the signal lands in the main thread in the middle of
    # a chunk (as when its kernel call returns): the chunk must still finish and be saved.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    if signum == signal.SIGINT and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not raise KeyboardInterrupt here")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    grid = {"depth": 3, "width": 6, "init": "scaled_normal", "sigma_w2": [1.0, 2.0]}
    trials, batch, seed = 200, 2, 3
    chunks, returned = [], []

    def compute(model, params, m, batch, seed, dtype, backend, threads, spectrum, lo):
        chunks.append((params["sigma_w2"], lo, m))
        if len(chunks) == 2:  # the first cell's second chunk
            def block(a, b):  # the chunk's blocks, on the calling thread and a worker thread
                if threading.current_thread() is threading.main_thread():
                    signal.raise_signal(signum)
            executor.run_blocks(block, 0, 2, 2)
        arrays = compute_cell(model, params, m, batch, seed, dtype, backend, threads, spectrum, lo)
        returned.append(lo)
        return arrays

    store = tmp_path / "s"
    with pytest.raises(SweepInterrupted, match="0 of 2 cells are saved in .* the same command resumes") as err:
        fg.sweep("mlp", grid, trials=trials, batch=batch, seed=seed, store=store, progress=False, save_every=0,
                 _compute=compute)
    assert isinstance(err.value.__cause__, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers in place before, restored
    assert len(chunks) == len(returned) == 2  # the chunk the signal came in finished; no other began
    (w2, lo0, m0), (_, lo1, m1) = chunks
    first = {"depth": 3, "width": 6, "init": "scaled_normal", "sigma_w2": w2}
    saved = store_module.saved_trials(store, first, trials)
    np.testing.assert_array_equal(saved, np.arange(trials) < m0 + m1)  # both chunks saved, nothing else
    assert lo0 == 0 and lo1 == m0 and m0 + m1 < trials
    # Resumed (grouped, over shared draws), the store is bitwise the one an uninterrupted sweep writes.
    fg.sweep("mlp", grid, trials=trials, batch=batch, seed=seed, store=store, progress=False)
    fg.sweep("mlp", grid, trials=trials, batch=batch, seed=seed, store=tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(fg.load(store), fg.load(tmp_path / "whole"))


def test_a_second_signal_stops_at_once(tmp_path):
    # The first SIGTERM is noted; a second one while the chunk still runs raises there and then.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    before = signal.getsignal(signal.SIGTERM)
    grid = {"depth": 3, "width": 6, "init": "scaled_normal", "sigma_w2": [1.0, 2.0]}
    chunks, returned = [], []

    def compute(model, params, m, batch, seed, dtype, backend, threads, spectrum, lo):
        chunks.append(lo)
        if len(chunks) == 2:
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)  # raises KeyboardInterrupt: this chunk is lost
        arrays = compute_cell(model, params, m, batch, seed, dtype, backend, threads, spectrum, lo)
        returned.append(lo)
        return arrays

    store = tmp_path / "s"
    with pytest.raises(SweepInterrupted, match=r"\(and \d+ trials of unfinished cells\)"):
        fg.sweep("mlp", grid, trials=40, batch=2, seed=3, store=store, progress=False, save_every=0,
                 _compute=compute)
    assert signal.getsignal(signal.SIGTERM) == before
    assert len(chunks) == 2 and returned == [0]  # stopped inside the second chunk; the first is saved
    first = {"depth": 3, "width": 6, "init": "scaled_normal", "sigma_w2": 1.0}
    assert 0 < store_module.saved_trials(store, first, 40).sum() < 40

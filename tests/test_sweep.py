"""Sweeps: resume after SIGKILL, Dask equals local, grid errors, corrupt cells, the CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fastgrad as fg
from fastgrad import store as store_module
from fastgrad.cli import main, parse_values

GRID = {"depth": [4, 8], "width": 8, "activation": ["tanh", "relu"], "init": "scaled_normal",
        "sigma_w": [0.8, 1.6]}


def test_local_sweep_and_resume(tmp_path):
    report = fg.sweep("mlp", GRID, trials=30, batch=3, seed=1, store=tmp_path / "s", progress=False)
    assert (report.cells, report.done, report.skipped) == (8, 8, 0)
    frame = fg.load(tmp_path / "s")
    assert len(frame) == 30 * (4 + 8) * 4
    assert {"depth", "width", "activation", "init", "sigma_w", "trial", "layer", "grad_w", "delta"} <= set(frame)
    again = fg.sweep("mlp", GRID, trials=30, batch=3, seed=1, store=tmp_path / "s", progress=False)
    assert (again.done, again.skipped) == (0, 8)
    pd.testing.assert_frame_equal(fg.load(tmp_path / "s"), frame)
    # Each cell equals fastgrad.run of its spec, bitwise.
    cell = frame[(frame.depth == 8) & (frame.activation == "relu") & (frame.sigma_w == 1.6)]
    res = fg.run(fg.MLP(depth=8, width=8, activation="relu", init="scaled_normal", sigma_w=1.6), trials=30,
                 batch=3, seed=1)
    np.testing.assert_array_equal(cell["grad_w"].to_numpy().reshape(30, 8), res.grad_w)


def test_different_sweep_is_refused(tmp_path):
    fg.sweep("mlp", GRID, trials=5, batch=2, store=tmp_path / "s", progress=False)
    for kwargs, what in (({"seed": 2}, "seed"), ({"trials": 6}, "trials"), ({"batch": 3}, "batch")):
        args = {"trials": 5, "batch": 2, **kwargs}
        with pytest.raises(ValueError, match=what):
            fg.sweep("mlp", GRID, store=tmp_path / "s", progress=False, **args)
    with pytest.raises(ValueError, match="grid"):
        fg.sweep("mlp", {**GRID, "depth": [4, 9]}, trials=5, batch=2, store=tmp_path / "s", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        fg.sweep("mlp", GRID, trials=5, batch=2, store=tmp_path / "other", progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def _as_legacy_store(root):
    # A store written before the manifest had the "generator" field.
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["generator"]
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_stores_of_another_generator_or_spectrum_option_are_refused(tmp_path):
    fg.sweep("mlp", GRID, trials=5, batch=2, store=tmp_path / "s64", progress=False)
    _as_legacy_store(tmp_path / "s64")  # float64 draws did not change: it resumes
    assert fg.sweep("mlp", GRID, trials=5, batch=2, store=tmp_path / "s64", progress=False).done == 0
    fg.sweep("mlp", GRID, trials=5, batch=2, dtype="float32", store=tmp_path / "s32", progress=False)
    _as_legacy_store(tmp_path / "s32")  # float32 draws did: new trials would be other networks
    with pytest.raises(ValueError, match="generator: store has 'splitmix64-boxmuller-float64'"):
        fg.sweep("mlp", GRID, trials=5, batch=2, dtype="float32", store=tmp_path / "s32", progress=False)
    with pytest.raises(ValueError, match="spectrum"):
        fg.sweep("mlp", GRID, trials=5, batch=2, store=tmp_path / "s64", progress=False, spectrum=True)


@pytest.mark.parametrize(
    "grid, match",
    [({"depth": [4], "widht": 8}, "widht"), ({"depth": [], "width": 8}, "no values"),
     ({"depth": [0, 2], "width": 8}, "depth"), ({"depth": 3, "width": 8, "activation": "swish"}, "activation"),
     ({"depth": 3}, "width"), ({"depth": [3, 3], "width": 4}, "twice"), ({}, "grid"),
     ({"depth": 3, "width": 4, "sigma_w": float("nan")}, "sigma_w")],
)
def test_grid_errors(tmp_path, grid, match):
    with pytest.raises(ValueError, match=match):
        fg.sweep("mlp", grid, trials=2, store=tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()  # nothing written before the grid is valid


def test_corrupt_and_truncated_cells_are_detected_and_recomputed(tmp_path):
    root = tmp_path / "s"
    fg.sweep("mlp", GRID, trials=10, batch=2, store=root, progress=False)
    good = fg.load(root)
    files = sorted((root / "cells").glob("*.parquet"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated
    raw = bytearray(files[1].read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # one flipped byte inside a data page
    files[1].write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        fg.load(root)
    report = fg.sweep("mlp", GRID, trials=10, batch=2, store=root, progress=False)
    assert (report.recomputed, report.done, report.skipped) == (2, 2, 6)
    assert len(list((root / "cells").glob("*.corrupt-*"))) == 2  # set aside, not deleted
    pd.testing.assert_frame_equal(fg.load(root), good)


def test_sigkill_mid_sweep_then_resume_gives_the_uninterrupted_rows(tmp_path):
    grid = {"depth": [10, 20], "width": 32, "sigma_w": [round(float(v), 3) for v in np.linspace(0.5, 2.0, 12)],
            "init": "scaled_normal"}
    code = (f"import fastgrad; fastgrad.sweep('mlp', {grid!r}, trials=200, batch=8, seed=3, "
            f"store={str(tmp_path / 'killed')!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
    cells = tmp_path / "killed" / "cells"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cells.glob("*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(cells.glob("*.parquet")))
    assert 3 <= finished < 24, "the sweep should have been killed mid-way"
    report = fg.sweep("mlp", grid, trials=200, batch=8, seed=3, store=tmp_path / "killed", progress=False)
    assert report.skipped == finished and report.done == 24 - finished
    assert not list(cells.glob(".*.tmp-*"))  # the dead process's temporary file is gone
    fg.sweep("mlp", grid, trials=200, batch=8, seed=3, store=tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(fg.load(tmp_path / "killed"), fg.load(tmp_path / "whole"))


def _crash_once(marker, *args):
    """Kill this worker process the first time any cell runs; compute normally afterwards."""
    from fastgrad.sweep import compute_cell

    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
        os.close(fd)
        os._exit(1)
    except FileExistsError:
        pass
    return compute_cell(*args)


def test_dask_local_cluster_equals_local_even_when_a_worker_dies(tmp_path):
    pytest.importorskip("dask.distributed")
    import functools

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    fg.sweep("mlp", GRID, trials=20, batch=2, seed=4, store=tmp_path / "local", progress=False)
    crash = functools.partial(_crash_once, str(tmp_path / "crashed"))
    report = fg.sweep("mlp", GRID, trials=20, batch=2, seed=4, store=tmp_path / "dask", executor="dask", workers=2,
                      progress=False, _compute=crash)
    assert (tmp_path / "crashed").exists()  # a worker did die
    assert report.done == 8 and not report.failed
    pd.testing.assert_frame_equal(fg.load(tmp_path / "dask"), fg.load(tmp_path / "local"))


def test_manifest(tmp_path):
    fg.sweep("rnn", {"steps": [5, 10], "hidden": 4, "inputs": 2, "gain": [0.5, 1.5]}, trials=4, batch=2,
             store=tmp_path / "r", progress=False)
    manifest = store_module.manifest(tmp_path / "r")
    assert manifest["grid"] == {"gain": [0.5, 1.5], "hidden": [4], "inputs": [2], "steps": [5, 10]}
    assert manifest["version"] == fg.__version__ and manifest["model"] == "rnn" and "created" in manifest
    frame = fg.load(tmp_path / "r")
    assert {"grad_h", "grad_whh_step", "grad_whh", "gain", "steps"} <= set(frame)


def test_cli_sweep_and_plot(tmp_path, capsys):
    store = str(tmp_path / "c")
    assert main(["sweep", "--store", store, "--trials", "6", "--batch", "2", "--quiet", "--depth", "3:5",
                 "--width", "6", "--init", "scaled_normal", "--sigma-w", "0.5:1.5:0.5", "--sigma-b", "0,0.3"]) == 0
    frame = fg.load(store)
    assert sorted(frame["depth"].unique()) == [3, 4, 5] and sorted(frame["sigma_w"].unique()) == [0.5, 1.0, 1.5]
    assert main(["plot", store]) == 0
    assert (tmp_path / "c" / "figures" / "phase_diagram.png").exists()
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"grid": {"depth": [2, 3], "width": 4}}))
    assert main(["sweep", "--store", str(tmp_path / "j"), "--grid", str(grid_file), "--trials", "2", "--quiet"]) == 0
    assert main(["sweep", "--store", str(tmp_path / "e"), "--depth", "0:2", "--width", "4", "--quiet"]) == 2
    assert "depth" in capsys.readouterr().err


def test_parse_values():
    assert parse_values("depth", "1:5") == [1, 2, 3, 4, 5]
    assert parse_values("depth", "2:10:4") == [2, 6, 10]
    assert parse_values("sigma-w", "0.5:1.0:0.25") == [0.5, 0.75, 1.0]
    assert parse_values("activation", "tanh,relu") == ["tanh", "relu"]
    assert parse_values("x", "1,2.5,none") == [1, 2.5, None]
    with pytest.raises(ValueError, match="empty"):
        parse_values("depth", "5:1")
    with pytest.raises(ValueError, match="step"):
        parse_values("depth", "1:5:0")


def test_rnn_jacobian_sweep_keeps_parameter_and_result_apart(tmp_path):
    grid = {"steps": 6, "hidden": 4, "inputs": 2, "gain": [0.9, 1.5], "jacobian": True}
    fg.sweep("rnn", grid, trials=5, batch=2, store=tmp_path / "s", progress=False)
    frame = fg.load(tmp_path / "s")
    assert frame["jacobian"].all()  # the parameter
    ref = fg.run(fg.RNN(steps=6, hidden=4, inputs=2, gain=1.5, jacobian=True), trials=5, batch=2).to_frame()
    got = frame[frame["gain"] == 1.5].reset_index(drop=True)
    np.testing.assert_array_equal(got["jacobian_norm"], ref["jacobian_norm"])  # the result
    with pytest.raises(ValueError, match="'q'"):
        store_module.cell_table({"q": 1.0}, {"q": np.ones((2, 3))})


def test_cells_differing_only_in_scales_share_draws_and_store_the_same_bits(tmp_path):
    from fastgrad.sweep import compute_cell

    grid = {"depth": 4, "width": 6, "init": "scaled_normal", "activation": ["tanh", "relu"],
            "sigma_w2": [0.8, 1.6, 2.4], "sigma_b2": [0.0, 0.05]}
    fg.sweep("mlp", grid, trials=9, batch=3, seed=1, store=tmp_path / "shared", progress=False)
    fg.sweep("mlp", grid, trials=9, batch=3, seed=1, store=tmp_path / "alone", progress=False,
             _compute=compute_cell)  # a compute function given: cell by cell
    a = fg.load(tmp_path / "shared").sort_values(["activation", "sigma_w2", "sigma_b2", "trial", "layer"])
    b = fg.load(tmp_path / "alone").sort_values(["activation", "sigma_w2", "sigma_b2", "trial", "layer"])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))

"""Bad input gets a ValueError naming the argument, before any kernel runs."""

import importlib

import numpy as np
import pytest

import fastgrad as fg


def arrays(trials=2, batch=3, dims=(4, 5, 2), dtype=np.float64):
    rng = np.random.default_rng(0)
    W = [rng.normal(size=(trials, dims[l], dims[l + 1])).astype(dtype) for l in range(len(dims) - 1)]
    b = [rng.normal(size=(trials, dims[l + 1])).astype(dtype) for l in range(len(dims) - 1)]
    return W, b, rng.normal(size=(trials, batch, dims[0])).astype(dtype), rng.normal(
        size=(trials, batch, dims[-1])).astype(dtype)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 0, "width": 4}, "depth"),
        ({"depth": 3, "width": 0}, "width"),
        ({"depth": -1, "width": 4}, "depth"),
        ({"depth": 2.5, "width": 4}, "depth"),
        ({"depth": 3, "width": 4, "activation": "swish"}, "activation"),
        ({"depth": 3, "width": 4, "init": "glorot"}, "init"),
        ({"depth": 3, "width": 4, "loss": "hinge"}, "loss"),
        ({"depth": 3, "width": 4, "bias_init": "ones"}, "bias_init"),
        ({"depth": 3, "width": 4, "sigma_w": float("nan")}, "sigma_w"),
        ({"depth": 3, "width": 4, "gain": float("inf")}, "gain"),
        ({"depth": 3, "width": 4, "init": "xavier_normal", "sigma_w": 2.0}, "sigma_w: .*gain"),
        ({"depth": 3, "width": 4, "init": "orthogonal", "sigma_w2": 1.5, "gain": 1.2}, "sigma_w2, gain"),
        ({"depth": 3, "width": 4, "init": "normal", "value": 0.5}, "value"),
        ({"depth": 3, "width": 4, "input_width": 0}, "input_width"),
        ({"depth": 3, "width": 4, "activation": "tanh", "alpha": 0.1}, "alpha: tanh take"),
        ({"depth": 3, "width": 4, "activation": "relu", "last_activation": "linear", "alpha": 0.1}, "alpha"),
    ],
)
def test_bad_mlp_spec(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fg.MLP(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"trials": 0}, "trials"), ({"batch": 0}, "batch"), ({"seed": -1}, "seed"), ({"dtype": "float16"}, "dtype"),
     ({"dtype": "int32"}, "dtype"), ({"backend": "tpu"}, "backend"), ({"threads": 0}, "threads"),
     ({"chunk": 0}, "chunk"), ({"threads": 10_000}, "threads: 10000 is more than this machine's")],
)
def test_bad_run_arguments(kwargs, match):
    args = {"trials": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        fg.run(fg.MLP(depth=2, width=3), **args)


def test_cuda_backend_says_why():
    with pytest.raises(RuntimeError, match="cuda"):
        fg.run(fg.MLP(depth=2, width=3), trials=1, backend="cuda")


def test_bad_spec_type():
    with pytest.raises(ValueError, match="spec"):
        fg.run("mlp", trials=1)


def test_bad_explicit_arrays():
    W, b, x, y = arrays()
    with pytest.raises(ValueError, match="activation"):
        fg.mlp_backprop(W, b, x, y, activation="swish")
    with pytest.raises(ValueError, match="loss"):
        fg.mlp_backprop(W, b, x, y, loss="l1")
    with pytest.raises(ValueError, match=r"W\[1\]"):
        fg.mlp_backprop([W[0], W[1][:, :3]], b, x, y)
    with pytest.raises(ValueError, match=r"b\[0\]"):
        fg.mlp_backprop(W, [b[0][:, :2], b[1]], x, y)
    with pytest.raises(ValueError, match="y"):
        fg.mlp_backprop(W, b, x, y[:, :, :1])
    with pytest.raises(ValueError, match="x"):
        fg.mlp_backprop(W, b, x.astype(np.int64), y)
    with pytest.raises(ValueError, match="dtype"):
        fg.mlp_backprop(W, b, x.astype(np.float32), y)
    bad = [w.copy() for w in W]
    bad[1][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"W\[1\].*nan"):
        fg.mlp_backprop(bad, b, x, y)
    xi = x.copy()
    xi[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="x"):
        fg.mlp_backprop(W, b, xi, y)
    with pytest.raises(ValueError, match="b"):
        fg.mlp_backprop(W, b[:1], x, y)
    with pytest.raises(ValueError, match="W"):
        fg.mlp_backprop([], b, x, y)


def test_stacked_arrays_are_accepted():
    W, b, x, y = arrays(dims=(4, 4, 4))
    stacked = fg.mlp_backprop(np.stack(W, axis=1), np.stack(b, axis=1), x, y)
    listed = fg.mlp_backprop(W, b, x, y)
    np.testing.assert_array_equal(stacked.grad_w, listed.grad_w)


def test_bad_chain_input():
    w = np.ones((3, 4))
    with pytest.raises(ValueError, match="b"):
        fg.chain_backprop(w, np.ones((3, 5)), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="x"):
        fg.chain_backprop(w, w, np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="w"):
        fg.chain_backprop(w.astype(int), w, np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="activation"):
        fg.chain_backprop(w, w, np.ones(3), np.ones(3), activation="nope")
    with pytest.raises(ValueError, match="bias_init"):
        fg.Chain(depth=3, bias_init="zero")
    with pytest.raises(ValueError, match="depth"):
        fg.Chain(depth=0)


def test_alpha_is_taken_where_an_activation_uses_it():
    fg.MLP(depth=2, width=3, activation="leaky_relu", alpha=0.2)
    fg.MLP(depth=2, width=3, activation="tanh", last_activation="elu", alpha=0.5)
    fg.RNN(steps=2, hidden=3, inputs=1, activation="elu", alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        fg.RNN(steps=2, hidden=3, inputs=1, activation="tanh", alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        fg.Chain(depth=2, alpha=0.5)  # sigmoid
    W, b, x, y = arrays()
    with pytest.raises(ValueError, match="alpha"):
        fg.mlp_backprop(W, b, x, y, activation="tanh", alpha=0.3)


def test_cli_plot_on_a_folder_that_is_not_a_store(tmp_path, capsys):
    from fastgrad.cli import main

    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"fastgrad: error: store: {tmp_path} has no manifest.json; not a fastgrad store"


def test_ctrl_c_in_a_sweep_says_what_is_saved(tmp_path, capsys, monkeypatch):
    from fastgrad.cli import main
    from fastgrad.sweep import compute_cell

    calls = []

    def interrupted_on_the_second_cell(*args):
        calls.append(args)
        if args[1]["depth"] == 3:  # the second cell's first chunk of trials
            raise KeyboardInterrupt
        return compute_cell(*args)

    store = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt, match="1 of 3 cells are saved in .*the same command resumes"):
        fg.sweep("chain", {"depth": [2, 3, 4]}, trials=4, store=store, progress=False,
                 _compute=interrupted_on_the_second_cell)
    # The command line turns it into one line and the shell's status for Ctrl-C.
    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("fastgrad.sweep"), "_compute_timed", ctrl_c)
    assert main(["sweep", "--model", "chain", "--store", str(store), "--trials", "4", "--depth", "2,3,4",
                 "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastgrad: interrupted: 1 of 3 cells are saved")
    assert len(fg.load(store).groupby("depth")) == 1


def test_a_wrong_input_width_names_x():
    W, b, x, y = arrays()
    with pytest.raises(ValueError, match="x, W\\[0\\]: x has 3 features per row but W\\[0\\] has 4 rows"):
        fg.mlp_backprop(W, b, x[:, :, :3], y)

"""Gradient statistics of networks whose arrays the user gives (no random draws)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from fastgrad import lowering
from fastgrad.engine import rnn_arrays
from fastgrad.executor import run_blocks, threads_context
from fastgrad.kernels import cpu_chain, cpu_mlp, cpu_resmlp, cpu_rnn
from fastgrad.results import Result
from fastgrad.specs import NORMS, RNN_LOSSES, activation_params, check_alpha, check_choice, residual_scale
from fastgrad.version import __version__


def check_array(name: str, value: object, ndim: int, dtype: np.dtype | None = None) -> np.ndarray:
    """Validate a user array: float32/float64, ``ndim`` dimensions, all finite.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : array_like
    ndim : int
    dtype : numpy.dtype, optional
        Required dtype (that of the first array of a call); any float if None.

    Returns
    -------
    numpy.ndarray
        C-contiguous, not copied when already so.
    """
    arr = np.asarray(value)
    if arr.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise ValueError(f"{name}: dtype {arr.dtype} differs from the other arrays' {dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name}: empty array, shape {arr.shape}")
    # A finite sum proves every entry finite (inf and nan propagate) without a
    # full-size temporary; only a non-finite sum (or an overflowing one) needs the exact check.
    if not np.isfinite(arr.sum()) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains nan or inf")
    return np.ascontiguousarray(arr)


def _layers(name: str, value: np.ndarray | Sequence[np.ndarray], vector: bool,
            dtype: np.dtype) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate W (T, L, n, n) / b (T, L, n), or a list of per-layer arrays.

    Returns the per-layer arrays (views) and the layers packed per trial as
    (T, total): a view of a stacked array, a copy of a list.
    """
    ndim = 2 if vector else 3
    if isinstance(value, np.ndarray) and value.ndim == ndim + 1:
        stacked = check_array(name, value, ndim + 1, dtype)
        return [stacked[:, l] for l in range(stacked.shape[1])], stacked.reshape(stacked.shape[0], -1)
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence) or len(value) == 0:
        shape = "(T, L, n)" if vector else "(T, L, n, n)"
        raise ValueError(f"{name}: expected an array of shape {shape} or a non-empty list of per-layer arrays")
    layers = [check_array(f"{name}[{l}]", v, ndim, dtype) for l, v in enumerate(value)]
    trials = layers[0].shape[0]
    if any(v.shape[0] != trials for v in layers):
        raise ValueError(f"{name}: layers disagree on the number of trials: {[v.shape[0] for v in layers]}")
    return layers, np.concatenate([v.reshape(trials, -1) for v in layers], axis=1)


def _mlp_arrays(W: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray], x: np.ndarray,
                y: np.ndarray, activation: str, loss: str, last_activation: str | None,
                alpha: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the arguments of :func:`mlp_backprop`; return the widths, the packed w and b, and x and y."""
    check_choice("loss", loss, ("mse", "probe"))
    activation_params("activation", activation, alpha)
    if last_activation is not None:
        activation_params("last_activation", last_activation, alpha)
    check_alpha(alpha, activation, last_activation)
    x = check_array("x", x, 3)
    dt = x.dtype
    ws, w_flat = _layers("W", W, False, dt)
    bs, b_flat = _layers("b", b, True, dt)
    y = check_array("y", y, 3, dt)
    trials, batch, n0 = x.shape
    depth = len(ws)
    if len(bs) != depth:
        raise ValueError(f"b: {len(bs)} layers, but W has {depth}")
    dims = [n0]
    for l, (w, v) in enumerate(zip(ws, bs, strict=False)):
        if w.shape[0] != trials or v.shape[0] != trials:
            raise ValueError(f"W[{l}], b[{l}]: expected {trials} trials (from x), got {w.shape[0]} and {v.shape[0]}")
        if w.shape[1] != dims[-1] and l == 0:
            raise ValueError(f"x, W[0]: x has {dims[0]} features per row but W[0] has {w.shape[1]} rows "
                             f"(shape {w.shape[1:]}); they must agree")
        if w.shape[1] != dims[-1]:
            raise ValueError(f"W[{l}]: expected {dims[-1]} rows (the previous width), got shape {w.shape[1:]}")
        if v.shape[1] != w.shape[2]:
            raise ValueError(f"b[{l}]: expected width {w.shape[2]}, got {v.shape[1]}")
        dims.append(w.shape[2])
    if y.shape != (trials, batch, dims[-1]):
        raise ValueError(f"y: expected shape {(trials, batch, dims[-1])}, got {y.shape}")
    return np.array(dims, dtype=np.int64), w_flat, b_flat, x, y


def mlp_backprop(
    W: np.ndarray | Sequence[np.ndarray],
    b: np.ndarray | Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "mse",
    last_activation: str | None = None,
    alpha: float | None = None,
    threads: int | None = None,
) -> Result:
    """Per-layer gradient statistics of given MLPs, one per trial.

    Parameters
    ----------
    W : array (T, L, n, n) or list of L arrays (T, n_{l-1}, n_l)
        Weights; ``z_l = h_{l-1} @ W_l + b_l``.
    b : array (T, L, n) or list of L arrays (T, n_l)
        Biases.
    x : array (T, B, n_0)
        Inputs.
    y : array (T, B, n_L)
        Targets (``mse``) or the back-projection g (``probe``).
    activation : str
        Activation of every layer.
    loss : {"mse", "probe"}
    last_activation : str, optional
        Activation of the last layer; default ``activation``.
    alpha : float, optional
        Parameter of ``leaky_relu`` or ``elu``.
    threads : int, optional
        CPU threads; default all.

    Returns
    -------
    Result
        ``grad_w``, ``grad_b``, ``delta``, ``q``, each (T, L), in the input dtype.
    """
    dims, w_flat, b_flat, x, y = _mlp_arrays(W, b, x, y, activation, loss, last_activation, alpha)
    trials, batch, _ = x.shape
    depth = dims.size - 1
    dt = x.dtype
    net = lowering.mlp_net(dims, activation, last_activation, alpha, loss, dt.name)
    stats = lowering.mlp_stats(trials, depth, dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_mlp.explicit(net, w_flat, b_flat, x, y, stats, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    return Result(dict(stats._asdict()), trials=trials, batch=batch, dtype=dt.name, version=__version__,
                  threads=n_threads, run_seconds=seconds)


def resmlp_backprop(
    W: np.ndarray | Sequence[np.ndarray],
    b: np.ndarray | Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "mse",
    last_activation: str | None = None,
    alpha: float | None = None,
    residual: float | str = 1.0,
    norm: str | None = None,
    threads: int | None = None,
) -> Result:
    """Per-layer gradient statistics of given residual MLPs (:class:`fastgrad.ResMLP`), one per trial.

    Layers 1 and L are plain; layers 2 .. L - 1 are residual blocks
    ``h_l = h_{l-1} + a phi(z_l)``, ``z_l = h_{l-1} @ W_l + b_l`` (or
    ``LN(h_{l-1}) @ W_l + b_l`` with ``norm="layer"``).

    Parameters
    ----------
    W, b, x, y, activation, loss, last_activation, alpha
        As for :func:`mlp_backprop`, with at least 3 layers and square hidden layers (n, n).
    residual : float or str
        The branch scale a: a number > 0, or ``"1/sqrt(L)"``.
    norm : {"layer"}, optional
        Pre-LayerNorm in the residual blocks.
    threads : int, optional
        CPU threads; default all.

    Returns
    -------
    Result
        ``grad_w``, ``grad_b``, ``delta``, ``q`` and ``grad_h`` (||dLoss/dh_{l-1}||_F:
        column 0 is the input's), each (T, L), in the input dtype.
    """
    dims, w_flat, b_flat, x, y = _mlp_arrays(W, b, x, y, activation, loss, last_activation, alpha)
    trials, batch, _ = x.shape
    depth = dims.size - 1
    if depth < 3:
        raise ValueError(f"W: a residual MLP needs >= 3 layers (the input layer, a residual block, the read-out), "
                         f"got {depth}")
    for l in range(1, depth - 1):
        if dims[l + 1] != dims[l]:
            raise ValueError(f"W[{l}]: a residual block maps the hidden width to itself, expected shape "
                             f"({dims[l]}, {dims[l]}), got ({dims[l]}, {dims[l + 1]})")
    a = residual_scale(residual, depth)
    if norm is not None:
        check_choice("norm", norm, NORMS)
    dt = x.dtype
    net = lowering.resmlp_net(dims, activation, last_activation, alpha, loss, a, norm, dt.name)
    stats = lowering.resmlp_stats(trials, depth, dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_resmlp.explicit(net, w_flat, b_flat, x, y, stats, lo, hi), 0, trials,
                   n_threads)
        seconds = time.perf_counter() - t0
    return Result(dict(stats._asdict()), trials=trials, batch=batch, dtype=dt.name, version=__version__,
                  threads=n_threads, run_seconds=seconds)


def chain_backprop(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "sigmoid",
    alpha: float | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Signed bias gradients dC/db_l of one-neuron-per-layer chains.

    Parameters
    ----------
    w, b : array (N, L)
        Weights and biases of N chains; ``z_l = w_l a_{l-1} + b_l``.
    x, y : array (N,)
        Input and target of each chain; the cost is ``(a_L - y)^2 / 2``.
    activation : str
    alpha : float, optional
        Parameter of ``leaky_relu`` or ``elu``.
    threads : int, optional

    Returns
    -------
    numpy.ndarray
        dC/db, shape (N, L), in the input dtype; column 0 is the first layer.
    """
    activation_params("activation", activation, alpha)
    check_alpha(alpha, activation)
    w = check_array("w", w, 2)
    net = lowering.chain_net(activation, alpha, w.dtype.name)
    dt = w.dtype
    b = check_array("b", b, 2, dt)
    x = check_array("x", x, 1, dt)
    y = check_array("y", y, 1, dt)
    if b.shape != w.shape:
        raise ValueError(f"b: expected shape {w.shape} (as w), got {b.shape}")
    for name, v in (("x", x), ("y", y)):
        if v.shape != (w.shape[0],):
            raise ValueError(f"{name}: expected shape ({w.shape[0]},), got {v.shape}")
    stats = lowering.chain_stats(w.shape[0], w.shape[1], w.dtype)
    with threads_context(threads) as n_threads:
        run_blocks(lambda lo, hi: cpu_chain.explicit(net, w, b, x, y, stats, lo, hi), 0, w.shape[0], n_threads)
    return stats.dc_db


def rnn_backprop(
    W_hh: np.ndarray,
    W_xh: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "last",
    alpha: float | None = None,
    threads: int | None = None,
    jacobian: bool = False,
) -> Result:
    """Backpropagation through time for given vanilla RNNs, one per trial.

    ``z_t = h_{t-1} @ W_hh + x_t @ W_xh + b``, ``h_t = phi(z_t)``, ``h_0 = 0``.

    Parameters
    ----------
    W_hh : array (T, n, n)
    W_xh : array (T, d, n)
    b : array (T, n)
    x : array (T, S, B, d)
        Inputs of every step.
    y : array
        ``last``: targets for h_S, (T, B, n); ``all``: targets of every step,
        (T, S, B, n); ``probe``: the back-projection g of h_S, (T, B, n).
    activation : str
    loss : {"last", "all", "probe"}
    alpha : float, optional
    threads : int, optional
    jacobian : bool
        Also return ``jacobian_norm`` (T, S): ``||dh_S / dh_t||_F`` for the first
        sequence of each trial's batch (one extra (n, n) product per step).

    Returns
    -------
    Result
        ``grad_h`` (T, S): ||dLoss/dh_t||_F, the total derivative through all
        later steps; ``grad_whh_step`` (T, S): ||h_{t-1}^T delta_t||_F, step
        t's contribution to dLoss/dW_hh; ``q`` (T, S): mean(z_t^2); the totals
        ``grad_whh``, ``grad_wxh``, ``grad_b`` (T,); ``jacobian_norm`` if asked.
        Index 0 is step 1.
    """
    check_choice("loss", loss, RNN_LOSSES)
    if not isinstance(jacobian, (bool, np.bool_)):
        raise ValueError(f"jacobian: expected True or False, got {jacobian!r}")
    activation_params("activation", activation, alpha)
    check_alpha(alpha, activation)
    W_hh = check_array("W_hh", W_hh, 3)
    dt = W_hh.dtype
    W_xh = check_array("W_xh", W_xh, 3, dt)
    b = check_array("b", b, 2, dt)
    x = check_array("x", x, 4, dt)
    y = check_array("y", y, 4 if loss == "all" else 3, dt)
    trials, n, n2 = W_hh.shape
    if n2 != n:
        raise ValueError(f"W_hh: expected square (T, n, n), got shape {W_hh.shape}")
    _, steps, batch, d = x.shape
    expected = {"W_xh": (trials, d, n), "b": (trials, n), "x": (trials, steps, batch, d),
                "y": (trials, steps, batch, n) if loss == "all" else (trials, batch, n)}
    for name, arr in (("W_xh", W_xh), ("b", b), ("x", x), ("y", y)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {arr.shape}")
    y4 = y if loss == "all" else y[:, None]
    y4 = np.ascontiguousarray(y4)
    net = lowering.rnn_net(activation, alpha, loss, bool(jacobian), dt.name)
    stats = lowering.rnn_stats(trials, steps, bool(jacobian), dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_rnn.explicit(net, W_hh, W_xh, b, x, y4, stats, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    out = {k: np.ascontiguousarray(v) for k, v in rnn_arrays(stats, bool(jacobian)).items()}
    return Result(out, trials=trials, batch=batch, dtype=dt.name, version=__version__, threads=n_threads,
                  run_seconds=seconds)


def _gated_backprop(cell: str, W_h: np.ndarray, W_x: np.ndarray, biases: dict[str, np.ndarray], x: np.ndarray,
                    y: np.ndarray, loss: str, threads: int | None, jacobian: bool) -> Result:
    """The checks and the run shared by :func:`lstm_backprop` and :func:`gru_backprop`."""
    from fastgrad.engine import GRU_GATES, LSTM_GATES, gated_arrays
    from fastgrad.kernels import cpu_gru, cpu_lstm

    check_choice("loss", loss, RNN_LOSSES)
    if not isinstance(jacobian, (bool, np.bool_)):
        raise ValueError(f"jacobian: expected True or False, got {jacobian!r}")
    jacobian = bool(jacobian)
    gates = 4 if cell == "lstm" else 3
    W_h = check_array("W_h", W_h, 3)
    dt = W_h.dtype
    W_x = check_array("W_x", W_x, 3, dt)
    checked = {name: check_array(name, v, 2, dt) for name, v in biases.items()}
    x = check_array("x", x, 4, dt)
    y = check_array("y", y, 4 if loss == "all" else 3, dt)
    trials, n, g = W_h.shape
    if g != gates * n:
        raise ValueError(f"W_h: expected (T, n, {gates} n) for the {cell.upper()}'s {gates} gates, got {W_h.shape}")
    _, steps, batch, d = x.shape
    expected = {"W_x": (trials, d, g), **{name: (trials, g) for name in checked}, "x": (trials, steps, batch, d),
                "y": (trials, steps, batch, n) if loss == "all" else (trials, batch, n)}
    for name, arr in (("W_x", W_x), *checked.items(), ("x", x), ("y", y)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {arr.shape}")
    y4 = np.ascontiguousarray(y if loss == "all" else y[:, None])
    net = lowering.gated_net(cell, loss, jacobian, dt.name)
    b = list(checked.values())
    stats: cpu_lstm.Stats | cpu_gru.Stats
    if cell == "lstm":
        stats = lowering.lstm_stats(trials, steps, jacobian, dt)

        def block(lo: int, hi: int) -> None:
            cpu_lstm.explicit(net, W_h, W_x, b[0], x, y4, stats, lo, hi)
    else:
        stats = lowering.gru_stats(trials, steps, jacobian, dt)

        def block(lo: int, hi: int) -> None:  # type: ignore[misc]  # the GRU's variant of the same block
            cpu_gru.explicit(net, W_h, W_x, b[0], b[1], x, y4, stats, lo, hi)

    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(block, 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    arrays = gated_arrays(stats, LSTM_GATES if cell == "lstm" else GRU_GATES)
    out = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return Result(out, trials=trials, batch=batch, dtype=dt.name, version=__version__, threads=n_threads,
                  run_seconds=seconds)


def lstm_backprop(W_h: np.ndarray, W_x: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
                  loss: str = "last", threads: int | None = None, jacobian: bool = False) -> Result:
    """Backpropagation through time for given LSTMs, one per trial (:class:`fastgrad.LSTM`'s equations).

    Parameters
    ----------
    W_h : array (T, n, 4n)
        Recurrent weights for ``h @ W_h``, gates i, f, g, o in column blocks (PyTorch's ``weight_hh_l0.T``).
    W_x : array (T, d, 4n)
        Input weights (``weight_ih_l0.T``).
    b : array (T, 4n)
        Bias (``bias_ih_l0 + bias_hh_l0``).
    x : array (T, S, B, d)
    y : array
        ``last``/``probe``: (T, B, n); ``all``: (T, S, B, n), as for :func:`rnn_backprop`.
    loss : {"last", "all", "probe"}
    threads : int, optional
    jacobian : bool
        Also ``jacobian_norm`` and ``jacobian_c_norm`` (T, S): ||dh_S/dh_t||_F and
        ||dc_S/dc_t||_F of the first sequence of each trial's batch.

    Returns
    -------
    Result
        As :func:`fastgrad.run` of an :class:`~fastgrad.LSTM` (``grad_h``, ``grad_c``, ``q``, the
        per-step and total weight-gradient norms, per gate).
    """
    return _gated_backprop("lstm", W_h, W_x, {"b": b}, x, y, loss, threads, jacobian)


def gru_backprop(W_h: np.ndarray, W_x: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, x: np.ndarray,
                 y: np.ndarray, loss: str = "last", threads: int | None = None, jacobian: bool = False) -> Result:
    """Backpropagation through time for given GRUs, one per trial (:class:`fastgrad.GRU`'s equations).

    Parameters
    ----------
    W_h : array (T, n, 3n)
        Recurrent weights for ``h @ W_h``, gates r, z, n in column blocks (PyTorch's ``weight_hh_l0.T``).
    W_x : array (T, d, 3n)
        Input weights (``weight_ih_l0.T``).
    b_ih, b_hh : array (T, 3n)
        The two biases (``bias_ih_l0``, ``bias_hh_l0``).
    x : array (T, S, B, d)
    y : array
        ``last``/``probe``: (T, B, n); ``all``: (T, S, B, n).
    loss : {"last", "all", "probe"}
    threads : int, optional
    jacobian : bool
        Also ``jacobian_norm`` (T, S): ||dh_S/dh_t||_F of the first sequence of each trial's batch.

    Returns
    -------
    Result
        As :func:`fastgrad.run` of a :class:`~fastgrad.GRU`.
    """
    return _gated_backprop("gru", W_h, W_x, {"b_ih": b_ih, "b_hh": b_hh}, x, y, loss, threads, jacobian)

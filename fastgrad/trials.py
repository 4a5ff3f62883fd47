"""The arrays of generated trials, for users who want trial k's weights.

``run(spec, seed=s)`` computes trial k from exactly these arrays, so they can
be fed to :func:`fastgrad.mlp_backprop`, to another framework, or inspected.
"""

from __future__ import annotations

import numpy as np

from fastgrad import lowering
from fastgrad.codes import CHAIN_WB, CHAIN_XY
from fastgrad.kernels import cpu_mlp, cpu_rnn
from fastgrad.rng import normals
from fastgrad.specs import GRU, LSTM, MLP, RNN, Chain, ResMLP, check_int


def _indices(trials: int | np.ndarray) -> np.ndarray:
    """Trial indices from a count (0 .. trials - 1) or an array of indices."""
    if np.isscalar(trials):
        return np.arange(check_int("trials", trials), dtype=np.int64)
    idx = np.asarray(trials, dtype=np.int64)
    if idx.ndim != 1 or np.any(idx < 0):
        raise ValueError(f"trials: expected a count or a 1-D array of non-negative indices, got {trials!r}")
    return np.ascontiguousarray(idx)


def mlp_trial_arrays(
    spec: MLP | ResMLP, seed: int, trials: int | np.ndarray, batch: int, dtype: str = "float64"
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Draw the weights, biases, inputs and targets of MLP (or residual MLP) trials.

    Parameters
    ----------
    spec : MLP or ResMLP
        A ResMLP's trial k is drawn as its plain MLP's (``spec.plain()``): the same arrays.
    seed : int
    trials : int or array of int
        A number of trials (0 .. trials - 1) or the trial indices to draw.
    batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    W : list of L arrays (T, n_{l-1}, n_l)
    b : list of L arrays (T, n_l)
    x : array (T, B, n_0)
    y : array (T, B, n_L)
        Targets for ``mse``, the back-projection g for ``probe``.
    """
    idx = _indices(trials)
    batch = check_int("batch", batch)
    dt = np.dtype(dtype)
    _, init = lowering.mlp(spec.plain() if isinstance(spec, ResMLP) else spec, dt.name)
    dims = spec.dims
    t = idx.size
    woff = np.concatenate([[0], np.cumsum(dims[:-1] * dims[1:])])
    boff = np.concatenate([[0], np.cumsum(dims[1:])])
    w = np.empty((t, woff[-1]), dtype=dt)
    b = np.empty((t, boff[-1]), dtype=dt)
    x = np.empty((t, batch, dims[0]), dtype=dt)
    y = np.empty((t, batch, dims[-1]), dtype=dt)
    cpu_mlp.draw_arrays(init, dims, seed, idx, w, b, x, y)
    W = [np.ascontiguousarray(w[:, woff[l]:woff[l + 1]].reshape(t, dims[l], dims[l + 1])) for l in range(spec.depth)]
    B = [np.ascontiguousarray(b[:, boff[l]:boff[l + 1]]) for l in range(spec.depth)]
    return W, B, x, y


def chain_trial_arrays(
    spec: Chain, seed: int, trials: int, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw w, b (N, L) and x, y (N,) of chain trials 0 .. trials - 1.

    With ``bias_init="centered"`` the biases depend on the forward pass
    (b_l = -w_l a_{l-1}); they are computed here in float64 NumPy.

    Returns
    -------
    w, b : numpy.ndarray
        Shape (N, L).
    x, y : numpy.ndarray
        Shape (N,).
    """
    from fastgrad.activations import evaluate

    depth = spec.depth
    n = check_int("trials", trials)
    w = np.empty((n, depth))
    b = np.empty((n, depth))
    x = np.empty(n)
    y = np.empty(n)
    for k in range(n):
        x[k], y[k] = normals(seed, k, CHAIN_XY, 2)
        g = normals(seed, k, CHAIN_WB, 2 * depth)
        w[k] = spec.value if spec.init == "constant" else spec.weight_std * g[:depth]
        b[k] = spec.bias_std * g[depth:] if spec.bias_init == "normal" else spec.bias_value
    if spec.bias_init == "centered":
        a = x.copy()
        for l in range(depth):
            b[:, l] = -w[:, l] * a
            a, _ = evaluate(spec.activation, w[:, l] * a + b[:, l], spec.alpha)
    dt = np.dtype(dtype)
    return w.astype(dt), b.astype(dt), x.astype(dt), y.astype(dt)


def rnn_trial_arrays(
    spec: RNN, seed: int, trials: int | np.ndarray, batch: int, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw W_hh (T, n, n), W_xh (T, d, n), b (T, n), x (T, S, B, d) and y of RNN trials.

    ``y`` is (T, S, B, n) for ``loss="all"``, else (T, B, n), as
    :func:`fastgrad.rnn_backprop` takes it.

    Returns
    -------
    W_hh, W_xh, b, x, y : numpy.ndarray
    """
    idx = _indices(trials)
    n_trials = idx.size
    batch = check_int("batch", batch)
    dt = np.dtype(dtype)
    n, d, steps = spec.hidden, spec.inputs, spec.steps
    _, init = lowering.rnn(spec, dt.name)
    whh = np.empty((n_trials, n, n), dtype=dt)
    wxh = np.empty((n_trials, d, n), dtype=dt)
    b = np.empty((n_trials, n), dtype=dt)
    x = np.empty((n_trials, steps, batch, d), dtype=dt)
    y_steps = steps if spec.loss == "all" else 1
    y = np.empty((n_trials, y_steps, batch, n), dtype=dt)
    cpu_rnn.draw_arrays(init, seed, idx, whh, wxh, b, x, y)
    return whh, wxh, b, x, (y if spec.loss == "all" else y[:, 0])


def gated_trial_arrays(spec: LSTM | GRU, seed: int, trials: int | np.ndarray, batch: int,
                       dtype: str = "float64") -> tuple[np.ndarray, ...]:
    """Draw the arrays of LSTM or GRU trials, exactly as :func:`fastgrad.run` draws them.

    Parameters
    ----------
    spec : LSTM or GRU
    seed : int
    trials : int or int array
        How many (trials 0 .. trials - 1), or which.
    batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    tuple of numpy.ndarray
        LSTM: ``(W_h, W_x, b, x, y)``; GRU: ``(W_h, W_x, b_ih, b_hh, x, y)``, shaped as
        :func:`fastgrad.lstm_backprop` and :func:`fastgrad.gru_backprop` take them.
    """
    from fastgrad.kernels import cpu_gru, cpu_lstm

    idx = _indices(trials)
    t = idx.size
    batch = check_int("batch", batch)
    dt = np.dtype(dtype)
    n, d, steps, g = spec.hidden, spec.inputs, spec.steps, spec.GATES * spec.hidden
    _, init = lowering.gated(spec, dt.name)
    wh, wx = np.empty((t, n, g), dtype=dt), np.empty((t, d, g), dtype=dt)
    b, bh = np.empty((t, g), dtype=dt), np.empty((t, g), dtype=dt)
    x = np.empty((t, steps, batch, d), dtype=dt)
    y = np.empty((t, steps if spec.loss == "all" else 1, batch, n), dtype=dt)
    y_out = y if spec.loss == "all" else y[:, 0]
    if isinstance(spec, LSTM):
        cpu_lstm.draw_arrays(init, seed, idx, wh, wx, b, x, y)
        return wh, wx, b, x, y_out
    cpu_gru.draw_arrays(init, seed, idx, wh, wx, b, bh, x, y)
    return wh, wx, b, bh, x, y_out

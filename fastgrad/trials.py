"""The arrays of generated trials, for users who want trial k's weights.

``run(spec, seed=s)`` computes trial k from exactly these arrays, so they can
be fed to :func:`fastgrad.mlp_backprop`, to another framework, or inspected.
"""

from __future__ import annotations

import numpy as np

from fastgrad.initializers import NORMAL, recurrent_kind
from fastgrad.kernels import cpu_chain, cpu_mlp, cpu_rnn
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.rng import normals
from fastgrad.specs import MLP, RNN, Chain, check_int


def mlp_trial_arrays(
    spec: MLP, seed: int, trials: int | np.ndarray, batch: int, dtype: str = "float64"
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Draw the weights, biases, inputs and targets of MLP trials.

    Parameters
    ----------
    spec : MLP
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
    idx = np.arange(check_int("trials", trials)) if np.isscalar(trials) else np.asarray(trials, dtype=np.int64)
    dims = spec.dims
    w_kind, w_scale, b_kind, b_scale = spec.layer_inits()
    dt = np.dtype(dtype)
    t = idx.size
    W = [np.empty((t, dims[l], dims[l + 1]), dtype=dt) for l in range(spec.depth)]
    b = [np.empty((t, dims[l + 1]), dtype=dt) for l in range(spec.depth)]
    x = np.empty((t, batch, dims[0]), dtype=dt)
    y = np.empty((t, batch, dims[-1]), dtype=dt)
    for i, k in enumerate(idx):
        for l in range(spec.depth):
            draw_matrix(W[l][i], w_kind[l], w_scale[l], seed, int(k), 2 * l + 2)
            draw_vector(b[l][i], b_kind[l], b_scale[l], seed, int(k), 2 * l + 3)
        draw_vector(x[i].reshape(-1), NORMAL, 1.0, seed, int(k), cpu_mlp.X_TENSOR)
        draw_vector(y[i].reshape(-1), NORMAL, 1.0, seed, int(k), cpu_mlp.Y_TENSOR)
    return W, b, x, y


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
        x[k], y[k] = normals(seed, k, cpu_chain.XY_TENSOR, 2)
        g = normals(seed, k, cpu_chain.WB_TENSOR, 2 * depth)
        w[k] = spec.value if spec.init == "constant" else spec.sigma_w * g[:depth]
        b[k] = spec.sigma_b * g[depth:] if spec.bias_init == "normal" else spec.bias_value
    if spec.bias_init == "centered":
        a = x.copy()
        for l in range(depth):
            b[:, l] = -w[:, l] * a
            a, _ = evaluate(spec.activation, w[:, l] * a + b[:, l], spec.alpha)
    dt = np.dtype(dtype)
    return w.astype(dt), b.astype(dt), x.astype(dt), y.astype(dt)


def rnn_trial_arrays(
    spec: RNN, seed: int, trials: int, batch: int, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw W_hh (T, n, n), W_xh (T, d, n), b (T, n), x (T, S, B, d) and y of RNN trials.

    ``y`` is (T, S, B, n) for ``loss="all"``, else (T, B, n), as
    :func:`fastgrad.rnn_backprop` takes it.

    Returns
    -------
    W_hh, W_xh, b, x, y : numpy.ndarray
    """
    n_trials = check_int("trials", trials)
    dt = np.dtype(dtype)
    n, d, steps = spec.hidden, spec.inputs, spec.steps
    w_kind, w_scale = recurrent_kind(spec.init, n, spec.gain)
    b_kind, b_scale = spec.bias()
    whh = np.empty((n_trials, n, n), dtype=dt)
    wxh = np.empty((n_trials, d, n), dtype=dt)
    b = np.empty((n_trials, n), dtype=dt)
    x = np.empty((n_trials, steps, batch, d), dtype=dt)
    y_steps = steps if spec.loss == "all" else 1
    y = np.empty((n_trials, y_steps, batch, n), dtype=dt)
    for k in range(n_trials):
        draw_matrix(whh[k], w_kind, w_scale, seed, k, cpu_rnn.WHH_TENSOR)
        draw_matrix(wxh[k], NORMAL, spec.input_scale / np.sqrt(d), seed, k, cpu_rnn.WXH_TENSOR)
        draw_vector(b[k], b_kind, b_scale, seed, k, cpu_rnn.B_TENSOR)
        draw_vector(x[k].reshape(-1), NORMAL, 1.0, seed, k, cpu_rnn.X_TENSOR)
        draw_vector(y[k].reshape(-1), NORMAL, 1.0, seed, k, cpu_rnn.Y_TENSOR)
    return whh, wxh, b, x, (y if spec.loss == "all" else y[:, 0])

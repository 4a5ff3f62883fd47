"""Forward and backward pass of a deep MLP, per trial, parallel over trials (CPU).

Definitions (DESIGN.md): ``z_l = h_{l-1} @ W_l + b_l``, ``h_l = phi(z_l)``;
``delta_l = dLoss/dz_l``, ``dLoss/dW_l = h_{l-1}^T delta_l``,
``dLoss/db_l = sum_batch delta_l``, ``dLoss/dh_{l-1} = delta_l @ W_l^T``.

Layers are packed flat: layer l's weights are ``w[woff[l]:woff[l+1]]``
reshaped to (dims[l], dims[l+1]) and its biases ``b[boff[l]:boff[l+1]]``,
with ``boff = cumsum(dims[1:])``. Index l is 0-based here (layer l + 1).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastgrad._numba import jit
from fastgrad.activations import apply
from fastgrad.initializers import NORMAL
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import sum_squares

MSE, PROBE = 0, 1
X_TENSOR, Y_TENSOR = 0, 1  # layer l (1-based) draws W from tensor 2l, b from 2l + 1


@jit
def layer_offsets(dims: np.ndarray, batch: int) -> np.ndarray:
    """hoff: h_l lives at hs[hoff[l]:hoff[l+1]] (l = 0..L), phi'(z_l) at ds[hoff[l]-hoff[1] ...]."""
    depth = dims.size - 1
    hoff = np.zeros(depth + 2, dtype=np.int64)
    for l in range(depth + 1):
        hoff[l + 1] = hoff[l] + batch * dims[l]
    return hoff


@jit
def forward(w: np.ndarray, b: np.ndarray, x: np.ndarray, dims: np.ndarray, act: np.ndarray, alpha: np.ndarray,
            hoff: np.ndarray, hs: np.ndarray, ds: np.ndarray, q: np.ndarray) -> None:
    """z_l = h_{l-1} W_l + b_l; keeps h_l in ``hs``, phi'(z_l) in ``ds`` and mean(z_l^2) in ``q``.

    z itself is not kept: the backward pass needs only h and phi'(z).
    """
    depth = dims.size - 1
    batch = x.shape[0]
    h0 = hoff[1]
    zbuf = np.empty(batch * np.max(dims[1:]), dtype=hs.dtype)
    hs[:h0] = x.reshape(h0)
    woff = 0
    boff = 0
    for l in range(depth):
        n_in, n_out = dims[l], dims[l + 1]
        zf = zbuf[: batch * n_out]
        zl = zf.reshape(batch, n_out)
        np.dot(hs[hoff[l] : hoff[l + 1]].reshape(batch, n_in), w[woff : woff + n_in * n_out].reshape(n_in, n_out), zl)
        for i in range(batch):
            for j in range(n_out):
                zl[i, j] += b[boff + j]
        q[l] = sum_squares(zf) / zf.size
        apply(act[l], alpha[l], zf, hs[hoff[l + 1] : hoff[l + 2]], ds[hoff[l + 1] - h0 : hoff[l + 2] - h0])
        woff += n_in * n_out
        boff += n_out


@jit
def backward(w: np.ndarray, dims: np.ndarray, hoff: np.ndarray, hs: np.ndarray, ds: np.ndarray, dh: np.ndarray,
             gw: np.ndarray, gb: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray, delta: np.ndarray) -> None:
    """Back-propagate dLoss/dh_L (``dh``, overwritten).

    Writes dLoss/dW and dLoss/db, packed like w and b, into ``gw`` and ``gb``
    (float64; pass empty arrays to skip), and their per-layer norms and
    ||delta_l|| into the (L,) rows.
    """
    depth = dims.size - 1
    batch = dh.size // dims[depth]
    h0 = hoff[1]
    woff = w.size
    boff = 0
    for l in range(depth):
        boff += dims[l + 1]
    for l in range(depth - 1, -1, -1):
        n_in, n_out = dims[l], dims[l + 1]
        woff -= n_in * n_out
        boff -= n_out
        dl = ds[hoff[l + 1] - h0 : hoff[l + 2] - h0]
        for i in range(dh.size):
            dh[i] *= dl[i]
        d = dh.reshape(batch, n_out)  # delta_l = dLoss/dz_l
        delta[l] = np.sqrt(sum_squares(dh))
        # Column sums row by row, so the inner loop is contiguous and vectorises.
        colsum = np.zeros(n_out)
        for i in range(batch):
            for j in range(n_out):
                colsum[j] += d[i, j]
        grad_b[l] = np.sqrt(sum_squares(colsum))
        dw = np.empty((n_in, n_out), dtype=dh.dtype)
        np.dot(hs[hoff[l] : hoff[l + 1]].reshape(batch, n_in).T, d, dw)
        dwf = dw.reshape(n_in * n_out)
        grad_w[l] = np.sqrt(sum_squares(dwf))
        if gw.size:  # training keeps the gradients; statistics need only their norms
            gw[woff : woff + n_in * n_out] = dwf
            gb[boff : boff + n_out] = colsum
        if l > 0:
            dh_prev = np.empty((batch, n_in), dtype=dh.dtype)
            np.dot(d, w[woff : woff + n_in * n_out].reshape(n_in, n_out).T, dh_prev)
            dh = dh_prev.reshape(batch * n_in)


@jit
def mlp_trial(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    dims: np.ndarray,
    act: np.ndarray,
    alpha: np.ndarray,
    loss: int,
    hoff: np.ndarray,
    hs: np.ndarray,
    ds: np.ndarray,
    grad_w: np.ndarray,
    grad_b: np.ndarray,
    delta: np.ndarray,
    q: np.ndarray,
) -> None:
    """One trial: write its per-layer statistics into the four (L,) rows.

    ``act[l]``/``alpha[l]`` are the activation code and parameter of layer l,
    so the last layer may differ. ``y`` is the target (mse) or g (probe).
    ``hoff``, ``hs`` and ``ds`` are the caller's workspace (``workspace``),
    reused from trial to trial.
    """
    depth = dims.size - 1
    batch = x.shape[0]
    forward(w, b, x, dims, act, alpha, hoff, hs, ds, q)
    h_last = hs[hoff[depth] : hoff[depth + 1]]
    yf = y.reshape(h_last.size)
    dh = np.empty(h_last.size, dtype=x.dtype)
    inv_b = 1.0 / batch
    if loss == MSE:
        for i in range(dh.size):
            dh[i] = (h_last[i] - yf[i]) * inv_b
    else:
        for i in range(dh.size):
            dh[i] = yf[i] * inv_b
    backward(w, dims, hoff, hs, ds, dh, np.empty(0), np.empty(0), grad_w, grad_b, delta)


@jit
def workspace(dims: np.ndarray, batch: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``hoff``, ``hs`` and ``ds`` for ``mlp_trial``: allocate once per block of trials.

    A trial's activations are hundreds of kB, above malloc's mmap threshold:
    allocated per trial, every page faults in afresh (A/B against per-trial
    buffers: 1.07-1.13x on one thread, 1.42x for float64 W-mlp on two).
    """
    depth = dims.size - 1
    hoff = layer_offsets(dims, batch)
    return hoff, np.empty(hoff[depth + 1], dtype=dtype), np.empty(hoff[depth + 1] - hoff[1], dtype=dtype)


@jit(parallel=True)
def mlp_explicit(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    dims: np.ndarray,
    act: np.ndarray,
    alpha: np.ndarray,
    loss: int,
    grad_w: np.ndarray,
    grad_b: np.ndarray,
    delta: np.ndarray,
    q: np.ndarray,
    blocks: int,
) -> None:
    """Trials given as packed arrays: w (T, P), b (T, Pb), x (T, B, n0), y (T, B, nL)."""
    n_trials = w.shape[0]
    n_blocks = min(n_trials, blocks)
    for k in prange(n_blocks):
        hoff, hs, ds = workspace(dims, x.shape[1], x.dtype)
        for t in range(k * n_trials // n_blocks, (k + 1) * n_trials // n_blocks):
            mlp_trial(w[t], b[t], x[t], y[t], dims, act, alpha, loss, hoff, hs, ds, grad_w[t], grad_b[t], delta[t],
                      q[t])


@jit(parallel=True)
def mlp_generated(
    seed: int,
    trial0: int,
    batch: int,
    dims: np.ndarray,
    w_kind: np.ndarray,
    w_scale: np.ndarray,
    b_kind: np.ndarray,
    b_scale: np.ndarray,
    act: np.ndarray,
    alpha: np.ndarray,
    loss: int,
    grad_w: np.ndarray,
    grad_b: np.ndarray,
    delta: np.ndarray,
    q: np.ndarray,
    blocks: int,
) -> None:
    """Trials ``trial0 .. trial0 + T - 1`` drawn from their streams, then run.

    The dtype of the statistics arrays is the dtype of the whole run. The
    trials are split into ``blocks`` runs of consecutive trials (one per
    thread), each with its buffers allocated once.
    """
    depth = dims.size - 1
    dtype = grad_w.dtype
    n_w = 0
    n_b = 0
    for l in range(depth):
        n_w += dims[l] * dims[l + 1]
        n_b += dims[l + 1]
    n_trials = grad_w.shape[0]
    n_blocks = min(n_trials, blocks)
    for k in prange(n_blocks):
        w = np.empty(n_w, dtype=dtype)
        b = np.empty(n_b, dtype=dtype)
        x = np.empty((batch, dims[0]), dtype=dtype)
        y = np.empty((batch, dims[depth]), dtype=dtype)
        hoff, hs, ds = workspace(dims, batch, dtype)
        for t in range(k * n_trials // n_blocks, (k + 1) * n_trials // n_blocks):
            trial = trial0 + t
            draw_weights(w, b, seed, trial, dims, w_kind, w_scale, b_kind, b_scale)
            draw_vector(x.reshape(x.size), NORMAL, 1.0, seed, trial, X_TENSOR)
            draw_vector(y.reshape(y.size), NORMAL, 1.0, seed, trial, Y_TENSOR)
            mlp_trial(w, b, x, y, dims, act, alpha, loss, hoff, hs, ds, grad_w[t], grad_b[t], delta[t], q[t])


@jit
def draw_weights(w: np.ndarray, b: np.ndarray, seed: int, trial: int, dims: np.ndarray, w_kind: np.ndarray,
                 w_scale: np.ndarray, b_kind: np.ndarray, b_scale: np.ndarray) -> None:
    """Trial ``trial``'s weights and biases, packed: W_l from tensor 2l, b_l from 2l + 1 (l 1-based)."""
    woff = 0
    boff = 0
    for l in range(dims.size - 1):
        n_in, n_out = dims[l], dims[l + 1]
        draw_matrix(w[woff : woff + n_in * n_out].reshape(n_in, n_out), w_kind[l], w_scale[l], seed, trial, 2 * l + 2)
        draw_vector(b[boff : boff + n_out], b_kind[l], b_scale[l], seed, trial, 2 * l + 3)
        woff += n_in * n_out
        boff += n_out

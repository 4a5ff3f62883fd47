"""Backpropagation through time for a vanilla RNN, per trial, parallel over trials (CPU).

Definitions (DESIGN.md): ``z_t = h_{t-1} @ W_hh + x_t @ W_xh + b``,
``h_t = phi(z_t)``, ``h_0 = 0``; ``g_t = dLoss/dh_t`` is the total derivative
through every later step, ``delta_t = g_t * phi'(z_t)``,
``g_{t-1} = delta_t @ W_hh^T (+ the loss's direct term at t - 1)``,
``dLoss/dW_hh = sum_t h_{t-1}^T delta_t``, ``dLoss/dW_xh = sum_t x_t^T delta_t``,
``dLoss/db = sum_t sum_batch delta_t``.

Only the recurrent products are done step by step; the input products of all
steps, and the totals for W_xh and b, are single large matrix products. Each
step's contribution ``h_{t-1}^T delta_t`` to dLoss/dW_hh is formed once: its
norm is the step's statistic and the sum of them (in float64) is the total, so
the total costs no product of its own.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastgrad._numba import jit
from fastgrad.activations import apply
from fastgrad.initializers import NORMAL
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import accumulate_norm_squared, sum_squares

LAST, ALL, PROBE = 0, 1, 2
X_TENSOR, Y_TENSOR, WHH_TENSOR, WXH_TENSOR, B_TENSOR = 0, 1, 2, 3, 4


@jit
def rnn_trial(
    whh: np.ndarray,
    wxh: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    act: int,
    alpha: float,
    loss: int,
    grad_h: np.ndarray,
    grad_whh_step: np.ndarray,
    q: np.ndarray,
    totals: np.ndarray,
    jac: np.ndarray,
    work: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """One trial. x (S, B, d); y (1, B, n) for LAST and PROBE, (S, B, n) for ALL.

    Writes grad_h, grad_whh_step, q (S,) and totals = (||dW_hh||, ||dW_xh||, ||db||).
    If ``jac`` is not empty, also the Jacobian norms of the batch's first
    sequence (``jacobian_norms``) into it. ``work`` is the caller's
    ``workspace``, reused from trial to trial.
    """
    steps, batch, d_in = x.shape
    n = whh.shape[0]
    dtype = x.dtype
    # hs[t] = h_t for t = 0..S (h_0 = 0); ds[t-1] = phi'(z_t);
    # zx[t] = x_t @ W_xh + b, all steps' input products at once.
    hs, ds, zx, deltas = work
    hs[0] = 0.0
    np.dot(x.reshape(steps * batch, d_in), wxh, zx)
    for r in range(steps * batch):
        for j in range(n):
            zx[r, j] += b[j]
    z = np.empty((batch, n), dtype=dtype)
    for t in range(steps):
        np.dot(hs[t], whh, z)
        zt = zx[t * batch : (t + 1) * batch]
        for i in range(batch):
            for j in range(n):
                z[i, j] += zt[i, j]
        zf = z.reshape(batch * n)
        q[t] = sum_squares(zf) / zf.size
        apply(act, alpha, zf, hs[t + 1].reshape(batch * n), ds[t].reshape(batch * n))

    inv_b = 1.0 / batch
    g = np.empty((batch, n), dtype=dtype)
    if loss == PROBE:
        for i in range(batch):
            for j in range(n):
                g[i, j] = y[0, i, j] * inv_b
    else:
        last_y = y[y.shape[0] - 1]
        for i in range(batch):
            for j in range(n):
                g[i, j] = (hs[steps, i, j] - last_y[i, j]) * inv_b
    step_w = np.empty((n, n), dtype=dtype)  # h_{t-1}^T delta_t
    total_w = np.zeros(n * n)  # their sum, dLoss/dW_hh
    for t in range(steps - 1, -1, -1):
        if loss == ALL and t < steps - 1:
            for i in range(batch):
                for j in range(n):
                    g[i, j] += (hs[t + 1, i, j] - y[t, i, j]) * inv_b
        grad_h[t] = np.sqrt(sum_squares(g.reshape(batch * n)))
        dt = deltas[t]
        for i in range(batch):
            for j in range(n):
                dt[i, j] = g[i, j] * ds[t, i, j]
        np.dot(hs[t].T, dt, step_w)
        grad_whh_step[t] = np.sqrt(accumulate_norm_squared(step_w.reshape(n * n), total_w))
        np.dot(dt, whh.T, g)
    if jac.size:
        jacobian_norms(whh, ds, jac)

    flat_d = deltas.reshape(steps * batch, n)
    totals[0] = np.sqrt(sum_squares(total_w))
    dwx = np.empty((d_in, n), dtype=dtype)
    np.dot(x.reshape(steps * batch, d_in).T, flat_d, dwx)
    totals[1] = np.sqrt(sum_squares(dwx.reshape(d_in * n)))
    db = np.zeros(n, dtype=dtype)
    for r in range(steps * batch):
        for j in range(n):
            db[j] += flat_d[r, j]
    totals[2] = np.sqrt(sum_squares(db))


@jit
def jacobian_norms(whh: np.ndarray, ds: np.ndarray, jac: np.ndarray) -> None:
    """``jac[t] = ||dh_S / dh_{t+1}||_F`` for the first sequence of the batch (index 0 is h_1).

    With ``M_t[i, k] = dh_{S,k} / dh_{t,i}``: ``M_S = I`` and
    ``M_{t-1} = W_hh diag(phi'(z_t)) M_t``. One (n, n) product per step, in
    float64 whatever the run's dtype: n times the cost of back-propagating one
    vector, so this is opt-in.
    """
    steps = ds.shape[0]
    n = whh.shape[0]
    w64 = whh.astype(np.float64)
    m = np.eye(n)
    scaled = np.empty((n, n))
    for t in range(steps - 1, -1, -1):
        jac[t] = np.sqrt(sum_squares(m.reshape(n * n)))
        if t > 0:
            for i in range(n):
                d = np.float64(ds[t, 0, i])
                for k in range(n):
                    scaled[i, k] = d * m[i, k]
            np.dot(w64, scaled, m)


@jit
def workspace(steps: int, batch: int, n: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The large buffers of ``rnn_trial`` (hs, ds, zx, deltas): allocate once per block of trials.

    Each is ~S B n elements, above malloc's mmap threshold: allocated per
    trial, every page would fault in afresh.
    """
    return (np.empty((steps + 1, batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype),
            np.empty((steps * batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype))


@jit(parallel=True)
def rnn_explicit(
    whh: np.ndarray,
    wxh: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    act: int,
    alpha: float,
    loss: int,
    grad_h: np.ndarray,
    grad_whh_step: np.ndarray,
    q: np.ndarray,
    totals: np.ndarray,
    jac: np.ndarray,
    blocks: int,
) -> None:
    """Trials given as arrays: whh (T, n, n), wxh (T, d, n), b (T, n), x (T, S, B, d), y (T, Sy, B, n).

    ``jac`` is (T, S) for the Jacobian norms or (T, 0) to skip them. The
    trials are split into ``blocks`` runs of consecutive trials (one per thread).
    """
    n_trials, steps, batch, _ = x.shape
    n_blocks = min(n_trials, blocks)
    for k in prange(n_blocks):
        work = workspace(steps, batch, whh.shape[1], x.dtype)
        for t in range(k * n_trials // n_blocks, (k + 1) * n_trials // n_blocks):
            rnn_trial(whh[t], wxh[t], b[t], x[t], y[t], act, alpha, loss, grad_h[t], grad_whh_step[t], q[t],
                      totals[t], jac[t], work)


@jit(parallel=True)
def rnn_generated(
    seed: int,
    trial0: int,
    batch: int,
    hidden: int,
    inputs: int,
    w_kind: int,
    w_scale: float,
    x_scale: float,
    b_kind: int,
    b_scale: float,
    act: int,
    alpha: float,
    loss: int,
    grad_h: np.ndarray,
    grad_whh_step: np.ndarray,
    q: np.ndarray,
    totals: np.ndarray,
    jac: np.ndarray,
    blocks: int,
) -> None:
    """Trials ``trial0 ..`` drawn from their streams, then run; grad_h fixes S and the dtype.

    W_hh by ``draw_matrix(w_kind, w_scale)``, W_xh ~ N(0, x_scale^2), the bias by
    ``b_kind``/``b_scale``; inputs x and targets (or probes) y ~ N(0, 1).
    """
    steps = grad_h.shape[1]
    dtype = grad_h.dtype
    y_steps = steps if loss == ALL else 1
    n_trials = grad_h.shape[0]
    n_blocks = min(n_trials, blocks)
    for blk in prange(n_blocks):
        whh = np.empty((hidden, hidden), dtype=dtype)
        wxh = np.empty((inputs, hidden), dtype=dtype)
        bias = np.empty(hidden, dtype=dtype)
        x = np.empty((steps, batch, inputs), dtype=dtype)
        y = np.empty((y_steps, batch, hidden), dtype=dtype)
        work = workspace(steps, batch, hidden, dtype)
        for k in range(blk * n_trials // n_blocks, (blk + 1) * n_trials // n_blocks):
            trial = trial0 + k
            draw_matrix(whh, w_kind, w_scale, seed, trial, WHH_TENSOR)
            draw_matrix(wxh, NORMAL, x_scale, seed, trial, WXH_TENSOR)
            draw_vector(bias, b_kind, b_scale, seed, trial, B_TENSOR)
            draw_vector(x.reshape(x.size), NORMAL, 1.0, seed, trial, X_TENSOR)
            draw_vector(y.reshape(y.size), NORMAL, 1.0, seed, trial, Y_TENSOR)
            rnn_trial(whh, wxh, bias, x, y, act, alpha, loss, grad_h[k], grad_whh_step[k], q[k], totals[k], jac[k],
                      work)

"""The GRU's kernel file: backpropagation through time of an unrolled GRU, per trial (CPU).

Gate equations and layout are PyTorch's (``torch.nn.GRU``), gates in the order
r, z, n; with ``ax_t = x_t @ W_x + b_ih`` and ``ah_t = h_{t-1} @ W_h + b_hh`` (B, 3n)::

    r = sigmoid(ax_r + ah_r)    z = sigmoid(ax_z + ah_z)
    n = tanh(ax_n + r * ah_n)   h_t = (1 - z) * n + z * h_{t-1}

``h_0 = 0``. W_x is (d, 3n), W_h (n, 3n), gate k in columns ``k n .. (k+1) n``:
PyTorch's ``weight_ih_l0 = W_x.T``, ``weight_hh_l0 = W_h.T``, ``bias_ih_l0 = b_ih``,
``bias_hh_l0 = b_hh`` (two biases: b_hn sits inside the reset product).

Backward, with ``g_t = dLoss/dh_t`` the total derivative through every later step,
the pre-activation gradients of step t are ``dn = g (1 - z) tanh'``,
``dz = g (h_{t-1} - n) sigmoid'(z)``, ``dr = dn ah_n sigmoid'(r)``; the input side
``dax = (dr, dz, dn)``, the recurrent side ``dah = (dr, dz, dn r)``, and
``g_{t-1} = g z + dah @ W_h^T`` (+ the loss's direct term at t - 1);
``dLoss/dW_h = sum_t h_{t-1}^T dah_t``, ``dLoss/dW_x = sum_t x_t^T dax_t``.

Statistics per trial (rows of :class:`Stats`): ``||g_t||``, the mean square of the
pre-activations, per step the norm of ``h_{t-1}^T dah_t`` over all gates and per
gate; the totals of dW_h (all gates, per gate), dW_x, db_ih and db_hh. ``GATES``,
``BIASES``, ``READOUT``, :func:`workspace`, :func:`draw_params`, :func:`draw_inputs`,
:func:`forward`, :func:`train_backward` and :func:`jacobian_step` are the cell interface
every recurrent kernel file exposes with the same signatures (see :mod:`cpu_rnn`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba.extending import overload

from fastgrad._numba import call, chosen, copy, jit, kernel
from fastgrad.codes import GATED_WO, GATED_X, GATED_Y, NORMAL, RNN_ALL, RNN_DIRECT, RNN_PROBE
from fastgrad.kernels.draw import draw_vector
from fastgrad.kernels.gates import Init, draw_weights, gate_norms, gate_parts
from fastgrad.kernels.norms import sum_squares

GATES = 3
"""Gate blocks of W_h (n, G n) and W_x (d, G n): r, z, n."""
BIASES = 2
"""Bias vectors of G n entries: b_ih, then b_hh."""
READOUT = GATED_WO
"""The tensor of training's read-out W_o."""
draw_params = draw_weights
"""``draw_params(init, wh, wx, b_ih, b_hh, square, wide, seed, trial)``: a trial's weights and biases."""


class Net(NamedTuple):
    """What one GRU trial computes, apart from its numbers: the sigmoid and tanh loops, the loss code, and
    the Jacobian choice (``cpu_rnn.JACOBIAN`` for ``||dh_S/dh_t||_F`` of the batch's first sequence)."""

    sigmoid: Any
    tanh: Any
    loss: int
    jacobian: Any


class Stats(NamedTuple):
    """Per-trial outputs.

    ``grad_h``, ``q`` (T, S); ``step`` (T, S, 4): the norm of ``h_{t-1}^T dah_t`` over
    all gates, then gates r, z, n; ``totals`` (T, 7): the norms of dLoss/dW_h (all
    gates, then r, z, n), dLoss/dW_x, dLoss/db_ih and dLoss/db_hh; ``jac`` (T, S) the
    Jacobian norms, (T, 0) without them.
    """

    grad_h: np.ndarray
    q: np.ndarray
    step: np.ndarray
    totals: np.ndarray
    jac: np.ndarray


class Work(NamedTuple):
    """One thread's buffers, reused from trial to trial.

    ``hs`` (S + 1, B, n); ``gates``, ``dgates`` (S, B, 3n): r, z, n and their
    derivatives; ``ahn`` (S, B, n): ``h_{t-1} W_hn + b_hn``; ``za`` (S B, 3n): the
    input products in the forward pass, then dax_t; ``a``, ``dah`` (B, 3n);
    ``step_w`` (n, 3n); ``gh``, ``keep`` (B, n); ``total_w`` (n 3n, float64);
    ``dbh`` (3n, float64) dLoss/db_hh.
    """

    hs: np.ndarray
    gates: np.ndarray
    dgates: np.ndarray
    ahn: np.ndarray
    za: np.ndarray
    a: np.ndarray
    dah: np.ndarray
    step_w: np.ndarray
    gh: np.ndarray
    keep: np.ndarray
    total_w: np.ndarray
    dbh: np.ndarray


@jit(inline="always")
def workspace(steps: int, batch: int, n: int, dtype: Any) -> Work:
    """A :class:`Work` for ``steps`` x ``batch`` x ``n``: allocate once per block of trials."""
    g = GATES * n
    return Work(np.empty((steps + 1, batch, n), dtype=dtype), np.empty((steps, batch, g), dtype=dtype),
                np.empty((steps, batch, g), dtype=dtype), np.empty((steps, batch, n), dtype=dtype),
                np.empty((steps * batch, g), dtype=dtype), np.empty((batch, g), dtype=dtype),
                np.empty((batch, g), dtype=dtype), np.empty((n, g), dtype=dtype), np.empty((batch, n), dtype=dtype),
                np.empty((batch, n), dtype=dtype), np.empty(n * g), np.empty(g))


@jit(inline="always")
def forward(wh: np.ndarray, wx: np.ndarray, bx: np.ndarray, bh: np.ndarray, x: np.ndarray, net: Net, work: Work,
            q: np.ndarray) -> None:
    """h_t, the gates, their derivatives and ah_n for t = 1..S into ``work``; mean(a_t^2) into ``q``."""
    steps, batch, d_in = x.shape
    n = wh.shape[0]
    g3 = GATES * n
    hs, za, a = work.hs, work.za, work.a
    hs[0] = 0.0
    np.dot(x.reshape(steps * batch, d_in), wx, za)
    for r in range(steps * batch):
        for j in range(g3):
            za[r, j] += bx[j]
    af = a.reshape(batch * g3)
    for t in range(steps):
        np.dot(hs[t], wh, a)  # h_{t-1} W_h; b_hh added below
        zt = za[t * batch : (t + 1) * batch]
        gates, ahn = work.gates[t], work.ahn[t]
        gt = gates.reshape(batch * g3)
        dt = work.dgates[t].reshape(batch * g3)
        for i in range(batch):
            for j in range(2 * n):
                a[i, j] += zt[i, j] + bh[j]
            r0 = i * g3
            call(net.sigmoid, af[r0 : r0 + 2 * n], gt[r0 : r0 + 2 * n], dt[r0 : r0 + 2 * n], 0.0)  # r, z
            for j in range(n):
                ahn[i, j] = a[i, 2 * n + j] + bh[2 * n + j]
                a[i, 2 * n + j] = zt[i, 2 * n + j] + gates[i, j] * ahn[i, j]
            call(net.tanh, af[r0 + 2 * n : r0 + g3], gt[r0 + 2 * n : r0 + g3], dt[r0 + 2 * n : r0 + g3], 0.0)
        q[t] = sum_squares(af) / af.size
        h_prev, h = hs[t], hs[t + 1]
        for i in range(batch):
            for j in range(n):
                z = gates[i, n + j]
                h[i, j] = (1.0 - z) * gates[i, 2 * n + j] + z * h_prev[i, j]


@jit(inline="always")
def backward(wh: np.ndarray, y: np.ndarray, loss: int, work: Work, grad_h: np.ndarray, step: np.ndarray) -> None:
    """Back through every step from ``work.gh = dLoss/dh_S`` (overwritten); dax_t into ``work.za``.

    Writes ||g_t|| and the per-step weight-gradient norms into the (S,) and (S, 4)
    rows, and accumulates dLoss/dW_h and dLoss/db_hh into ``work.total_w`` and
    ``work.dbh``. Under ``RNN_ALL`` the loss's direct term at each earlier step is
    added from ``y`` (S, B, n); under ``RNN_DIRECT`` (training) ``y[t]`` is that term itself.
    """
    steps = work.gates.shape[0]
    batch, n = work.gh.shape
    g3 = GATES * n
    inv_b = 1.0 / batch
    gh, keep, hs, dah, step_w = work.gh, work.keep, work.hs, work.dah, work.step_w
    total_w, dbh = work.total_w, work.dbh
    total_w[:] = 0.0
    dbh[:] = 0.0
    parts = np.empty(GATES)
    for t in range(steps - 1, -1, -1):
        if loss == RNN_ALL and t < steps - 1:
            for i in range(batch):
                for j in range(n):
                    gh[i, j] += (hs[t + 1, i, j] - y[t, i, j]) * inv_b
        elif loss == RNN_DIRECT and t < steps - 1:  # training's per-step read-out
            for i in range(batch):
                for j in range(n):
                    gh[i, j] += y[t, i, j]
        grad_h[t] = np.sqrt(sum_squares(gh.reshape(batch * n)))
        gates, dgates, ahn, h_prev = work.gates[t], work.dgates[t], work.ahn[t], hs[t]
        dax = work.za[t * batch : (t + 1) * batch]
        for i in range(batch):
            for j in range(n):
                g = gh[i, j]
                z = gates[i, n + j]
                dn = g * (1.0 - z) * dgates[i, 2 * n + j]
                dz = g * (h_prev[i, j] - gates[i, 2 * n + j]) * dgates[i, n + j]
                dr = dn * ahn[i, j] * dgates[i, j]
                dax[i, j] = dr
                dax[i, n + j] = dz
                dax[i, 2 * n + j] = dn
                dah[i, j] = dr
                dah[i, n + j] = dz
                dah[i, 2 * n + j] = dn * gates[i, j]
                keep[i, j] = g * z
        for i in range(batch):
            for j in range(g3):
                dbh[j] += dah[i, j]
        np.dot(h_prev.T, dah, step_w)
        gate_parts(step_w.reshape(n * g3), total_w, n, GATES, parts)
        step[t, 0] = np.sqrt(parts.sum())
        for k in range(GATES):
            step[t, k + 1] = np.sqrt(parts[k])
        np.dot(dah, wh.T, gh)
        for i in range(batch):
            for j in range(n):
                gh[i, j] += keep[i, j]


@jit(inline="always")
def jacobian_step(w64: np.ndarray, work: Work, t: int, g: np.ndarray, keep: np.ndarray, dah: np.ndarray) -> None:
    """Back through step ``t`` (0-based) of the batch's first sequence: rows of ``g`` (m, n), dX/dh_{t+1} -> dX/dh_t.

    ``keep`` (m, n) and ``dah`` (m, 3n) are scratch; ``w64`` is W_h in float64.
    """
    n = w64.shape[0]
    gates, d, ahn, h_prev = work.gates[t, 0], work.dgates[t, 0], work.ahn[t, 0], work.hs[t, 0]
    for r in range(g.shape[0]):
        for j in range(n):
            z = gates[n + j]
            dn = g[r, j] * (1.0 - z) * d[2 * n + j]
            dah[r, j] = dn * ahn[j] * d[j]
            dah[r, n + j] = g[r, j] * (h_prev[j] - gates[2 * n + j]) * d[n + j]
            dah[r, 2 * n + j] = dn * gates[j]
            keep[r, j] = g[r, j] * z
    np.dot(dah, w64.T, g)
    for r in range(g.shape[0]):
        for j in range(n):
            g[r, j] += keep[r, j]


@jit(inline="always")
def jacobian_norms(wh: np.ndarray, work: Work, jac: np.ndarray) -> None:
    """``jac[t] = ||dh_S/dh_{t+1}||_F`` for the batch's first sequence.

    Each row of G (n, n), from G = I, is back-propagated like a gradient through
    the first sequence's gates: ``G z + dah @ W_h^T`` per step, one (n, 3n) x
    (3n, n) product, in float64 whatever the run's dtype: opt-in.
    """
    steps = work.gates.shape[0]
    n = wh.shape[0]
    w64 = wh.astype(np.float64)
    g = np.eye(n)
    keep = np.empty((n, n))
    dah = np.empty((n, GATES * n))
    for t in range(steps - 1, -1, -1):
        jac[t] = np.sqrt(sum_squares(g.reshape(n * n)))
        if t == 0:
            break
        jacobian_step(w64, work, t, g, keep, dah)


def _maybe_jacobian(choice: Any, wh: Any, work: Any, jac: Any) -> None:
    raise NotImplementedError("compiled code only")


@overload(_maybe_jacobian, inline="always")
def _maybe_jacobian_impl(choice, wh, work, jac):  # type: ignore[no-untyped-def]
    name = chosen(choice, "jacobian")
    if name == "yes":
        return lambda choice, wh, work, jac: jacobian_norms(wh, work, jac)
    if name == "no":
        return lambda choice, wh, work, jac: None
    return None


@jit(inline="always")
def trial(wh: np.ndarray, wx: np.ndarray, bx: np.ndarray, bh: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net,
          work: Work, stats: Stats, t: int) -> None:
    """One trial into row ``t`` of ``stats``. x (S, B, d); y (1, B, n) for LAST and PROBE, (S, B, n) for ALL."""
    steps, batch, d_in = x.shape
    n = wh.shape[0]
    g3 = GATES * n
    forward(wh, wx, bx, bh, x, net, work, stats.q[t])
    inv_b = 1.0 / batch
    gh = work.gh
    if net.loss == RNN_PROBE:
        for i in range(batch):
            for j in range(n):
                gh[i, j] = y[0, i, j] * inv_b
    else:
        last_y = y[y.shape[0] - 1]
        for i in range(batch):
            for j in range(n):
                gh[i, j] = (work.hs[steps, i, j] - last_y[i, j]) * inv_b
    backward(wh, y, net.loss, work, stats.grad_h[t], stats.step[t])
    _maybe_jacobian(net.jacobian, wh, work, stats.jac[t])
    totals = stats.totals[t]
    parts = np.empty(GATES + 1)
    gate_norms(work.total_w, n, GATES, parts)
    for k in range(GATES + 1):
        totals[k] = parts[k]
    dwx = np.empty((d_in, g3), dtype=x.dtype)
    np.dot(x.reshape(steps * batch, d_in).T, work.za, dwx)
    totals[GATES + 1] = np.sqrt(sum_squares(dwx.reshape(d_in * g3)))
    dbx = np.zeros(g3, dtype=x.dtype)
    for r in range(steps * batch):
        for j in range(g3):
            dbx[j] += work.za[r, j]
    totals[GATES + 2] = np.sqrt(sum_squares(dbx))
    totals[GATES + 3] = np.sqrt(sum_squares(work.dbh))


@jit(inline="always")
def train_backward(wh: np.ndarray, direct: np.ndarray, mode: int, work: Work, grad_h: np.ndarray,
                   grad_wh: np.ndarray, grad_bh: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Training's backward pass from ``work.gh = dLoss/dh_S``: returns dax_t of every step, (S B, 3n).

    As :func:`cpu_rnn.train_backward`: dLoss/dW_h into the float64 ``grad_wh``, dLoss/db_hh
    into ``grad_bh`` (3n), ||dLoss/dh_t|| into ``grad_h``; ``norms`` (S, G + 2) is scratch.
    """
    backward(wh, direct, mode, work, grad_h, norms[:, : GATES + 1])
    copy(grad_wh, work.total_w)
    copy(grad_bh, work.dbh)
    return work.za


@jit(inline="always")
def draw_inputs(init: Init, x: np.ndarray, y: np.ndarray, seed: int, trial_id: int) -> None:
    """Trial ``trial_id``'s inputs x and targets (or probes) y ~ N(0, 1); either may be empty."""
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, GATED_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, GATED_Y)


@jit(inline="always")
def draw_trial(wh: np.ndarray, wx: np.ndarray, bx: np.ndarray, bh: np.ndarray, x: np.ndarray, y: np.ndarray,
               square: np.ndarray, wide: np.ndarray, seed: int, trial_id: int, init: Init) -> None:
    """Every array of generated trial ``trial_id``: :func:`draw_params`, then :func:`draw_inputs`."""
    draw_params(init, wh, wx, bx, bh, square, wide, seed, trial_id)
    draw_inputs(init, x, y, seed, trial_id)


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, batch: int, stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``stats``: trials ``trial0 + lo ..`` drawn, then run; grad_h fixes S and the dtype."""
    steps = stats.grad_h.shape[1]
    dtype = stats.grad_h.dtype
    n, d_in = init.hidden, init.inputs
    y_steps = steps if net.loss == RNN_ALL else 1
    wh = np.empty((n, GATES * n), dtype=dtype)
    wx = np.empty((d_in, GATES * n), dtype=dtype)
    bx = np.empty(GATES * n, dtype=dtype)
    bh = np.empty(GATES * n, dtype=dtype)
    square = np.empty((n, n), dtype=dtype)
    wide = np.empty((d_in, n), dtype=dtype)
    x = np.empty((steps, batch, d_in), dtype=dtype)
    y = np.empty((y_steps, batch, n), dtype=dtype)
    work = workspace(steps, batch, n, dtype)
    for t in range(lo, hi):
        draw_trial(wh, wx, bx, bh, x, y, square, wide, seed, trial0 + t, init)
        trial(wh, wx, bx, bh, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, wh: np.ndarray, wx: np.ndarray, bx: np.ndarray, bh: np.ndarray, x: np.ndarray, y: np.ndarray,
             stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1``: wh (T, n, 3n), wx (T, d, 3n), bx, bh (T, 3n), x (T, S, B, d), y (T, Sy, B, n)."""
    _, steps, batch, _ = x.shape
    work = workspace(steps, batch, wh.shape[1], x.dtype)
    for t in range(lo, hi):
        trial(wh[t], wx[t], bx[t], bh[t], x[t], y[t], net, work, stats, t)


@kernel
def draw_arrays(init: Init, seed: int, trials: np.ndarray, wh: np.ndarray, wx: np.ndarray, bx: np.ndarray,
                bh: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """The arrays of the given trials, exactly as :func:`generated` draws them."""
    n, d_in = init.hidden, init.inputs
    square = np.empty((n, n), dtype=wh.dtype)
    wide = np.empty((d_in, n), dtype=wh.dtype)
    for i in range(trials.size):
        draw_trial(wh[i], wx[i], bx[i], bh[i], x[i], y[i], square, wide, seed, trials[i], init)

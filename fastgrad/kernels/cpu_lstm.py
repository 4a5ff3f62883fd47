"""The LSTM's kernel file: backpropagation through time of an unrolled LSTM, per trial (CPU).

Gate equations and layout are PyTorch's (``torch.nn.LSTM``), gates in the order
i, f, g, o; with ``a_t = x_t @ W_x + h_{t-1} @ W_h + b`` (B, 4n)::

    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g             h_t = o * tanh(c_t)

``h_0 = c_0 = 0``. W_x is (d, 4n), W_h (n, 4n), gate k in columns ``k n .. (k+1) n``:
PyTorch's ``weight_ih_l0 = W_x.T``, ``weight_hh_l0 = W_h.T`` and ``bias_ih_l0 +
bias_hh_l0 = b``. Memory layout is time major, as for the vanilla RNN: x (S, B, d).

Backward, with ``g_t = dLoss/dh_t`` and ``e_t = dLoss/dc_t`` the total derivatives
through every later step: ``e_t = e_{t+1} * f_{t+1} + g_t * o_t * tanh'(c_t)``;
the pre-activation gradients are ``da_i = e_t g sigmoid'(a_i)``,
``da_f = e_t c_{t-1} sigmoid'(a_f)``, ``da_g = e_t i tanh'(a_g)``, ``da_o = g_t tanh(c_t)
sigmoid'(a_o)``; ``g_{t-1} = da_t @ W_h^T`` (+ the loss's direct term at
t - 1), ``dLoss/dW_h = sum_t h_{t-1}^T da_t``, ``dLoss/dW_x = sum_t x_t^T da_t``,
``dLoss/db = sum_t sum_batch da_t``.

Statistics per trial (rows of :class:`Stats`): ``||g_t||``, ``||e_t||``, mean(a_t^2),
and per step the norm of ``h_{t-1}^T da_t`` (step t's share of dLoss/dW_h) over
all gates and per gate; the totals of dW_h (all gates, per gate), dW_x and db.
The entry points run trials ``lo .. hi - 1`` of their output rows on the
calling thread, without the GIL, like every kernel file's. ``GATES``, ``BIASES``,
``READOUT``, :func:`workspace`, :func:`draw_params`, :func:`draw_inputs`, :func:`forward`,
:func:`train_backward` and :func:`jacobian_step` are the cell interface every recurrent
kernel file exposes with the same signatures (see :mod:`cpu_rnn`).
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

GATES = 4
"""Gate blocks of W_h (n, G n) and W_x (d, G n): i, f, g, o."""
BIASES = 1
"""Bias vectors of G n entries: b = b_ih + b_hh."""
READOUT = GATED_WO
"""The tensor of training's read-out W_o."""
draw_params = draw_weights
"""``draw_params(init, wh, wx, b, bh, square, wide, seed, trial)``: a trial's weights and biases (``bh`` empty)."""


class Net(NamedTuple):
    """What one LSTM trial computes, apart from its numbers.

    Attributes
    ----------
    sigmoid, tanh : FirstClass
        The activation loops (``activations.loop``) of the gates and the cell.
    loss : int
        ``codes.RNN_LAST``, ``RNN_ALL`` or ``RNN_PROBE`` (as the vanilla RNN's).
    jacobian : Choice
        ``cpu_rnn.JACOBIAN`` to compute ``||dh_S/dh_t||_F`` and ``||dc_S/dc_t||_F`` of the
        batch's first sequence, else ``cpu_rnn.NO_JACOBIAN``.
    """

    sigmoid: Any
    tanh: Any
    loss: int
    jacobian: Any


class Stats(NamedTuple):
    """Per-trial outputs.

    ``grad_h``, ``grad_c``, ``q`` (T, S); ``step`` (T, S, 5): the norm of
    ``h_{t-1}^T da_t`` over all gates, then gates i, f, g, o; ``totals`` (T, 7):
    the norms of dLoss/dW_h (all gates, then i, f, g, o), dLoss/dW_x and dLoss/db;
    ``jac``, ``jac_c`` (T, S) the Jacobian norms, (T, 0) without them.
    """

    grad_h: np.ndarray
    grad_c: np.ndarray
    q: np.ndarray
    step: np.ndarray
    totals: np.ndarray
    jac: np.ndarray
    jac_c: np.ndarray


class Work(NamedTuple):
    """One thread's buffers, reused from trial to trial.

    ``hs``, ``cs`` (S + 1, B, n): h_t and c_t; ``gates``, ``dgates`` (S, B, 4n): the
    gate values and their derivatives (sigmoid' or tanh') at a_t; ``tcs``, ``dtcs``
    (S, B, n): tanh(c_t) and its derivative; ``za`` (S B, 4n): the input products
    x_t W_x + b in the forward pass, then da_t in the backward pass; ``a`` (B, 4n);
    ``step_w`` (n, 4n); ``gh``, ``gc``, ``e`` (B, n); ``total_w`` (n 4n, float64) dLoss/dW_h.
    """

    hs: np.ndarray
    cs: np.ndarray
    gates: np.ndarray
    dgates: np.ndarray
    tcs: np.ndarray
    dtcs: np.ndarray
    za: np.ndarray
    a: np.ndarray
    step_w: np.ndarray
    gh: np.ndarray
    gc: np.ndarray
    e: np.ndarray
    total_w: np.ndarray


@jit(inline="always")
def workspace(steps: int, batch: int, n: int, dtype: Any) -> Work:
    """A :class:`Work` for ``steps`` x ``batch`` x ``n``: allocate once per block of trials."""
    g = GATES * n
    return Work(np.empty((steps + 1, batch, n), dtype=dtype), np.empty((steps + 1, batch, n), dtype=dtype),
                np.empty((steps, batch, g), dtype=dtype), np.empty((steps, batch, g), dtype=dtype),
                np.empty((steps, batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype),
                np.empty((steps * batch, g), dtype=dtype), np.empty((batch, g), dtype=dtype),
                np.empty((n, g), dtype=dtype), np.empty((batch, n), dtype=dtype), np.empty((batch, n), dtype=dtype),
                np.empty((batch, n), dtype=dtype), np.empty(n * g))


@jit(inline="always")
def forward(wh: np.ndarray, wx: np.ndarray, b: np.ndarray, bh: np.ndarray, x: np.ndarray, net: Net, work: Work,
            q: np.ndarray) -> None:
    """h_t, c_t, the gates and their derivatives for t = 1..S into ``work``; mean(a_t^2) into ``q``.

    ``bh`` is not read (one bias; the cells share this signature).
    """
    steps, batch, d_in = x.shape
    n = wh.shape[0]
    g4 = GATES * n
    hs, cs, za, a = work.hs, work.cs, work.za, work.a
    hs[0] = 0.0
    cs[0] = 0.0
    np.dot(x.reshape(steps * batch, d_in), wx, za)
    for r in range(steps * batch):
        for j in range(g4):
            za[r, j] += b[j]
    af = a.reshape(batch * g4)
    for t in range(steps):
        np.dot(hs[t], wh, a)
        zt = za[t * batch : (t + 1) * batch]
        for i in range(batch):
            for j in range(g4):
                a[i, j] += zt[i, j]
        q[t] = sum_squares(af) / af.size
        gt = work.gates[t].reshape(batch * g4)
        dt = work.dgates[t].reshape(batch * g4)
        for i in range(batch):
            r = i * g4
            call(net.sigmoid, af[r : r + 2 * n], gt[r : r + 2 * n], dt[r : r + 2 * n], 0.0)  # i, f
            call(net.tanh, af[r + 2 * n : r + 3 * n], gt[r + 2 * n : r + 3 * n], dt[r + 2 * n : r + 3 * n], 0.0)
            call(net.sigmoid, af[r + 3 * n : r + g4], gt[r + 3 * n : r + g4], dt[r + 3 * n : r + g4], 0.0)  # o
        gates = work.gates[t]
        c_prev, c = cs[t], cs[t + 1]
        for i in range(batch):
            for j in range(n):
                c[i, j] = gates[i, n + j] * c_prev[i, j] + gates[i, j] * gates[i, 2 * n + j]
        call(net.tanh, c.reshape(batch * n), work.tcs[t].reshape(batch * n), work.dtcs[t].reshape(batch * n), 0.0)
        tc, h = work.tcs[t], hs[t + 1]
        for i in range(batch):
            for j in range(n):
                h[i, j] = gates[i, 3 * n + j] * tc[i, j]


@jit(inline="always")
def backward(wh: np.ndarray, y: np.ndarray, loss: int, work: Work, grad_h: np.ndarray, grad_c: np.ndarray,
             step: np.ndarray) -> None:
    """Back through every step from ``work.gh = dLoss/dh_S`` (overwritten); da_t into ``work.za``.

    Writes ||g_t||, ||e_t|| and the per-step weight-gradient norms into the (S,) and
    (S, 5) rows, and accumulates dLoss/dW_h into ``work.total_w``. Under ``RNN_ALL``
    the loss's direct term at each earlier step is added from ``y`` (S, B, n); under
    ``RNN_DIRECT`` (training) ``y[t]`` is that term itself.
    """
    steps = work.gates.shape[0]
    batch, n = work.gh.shape
    g4 = GATES * n
    inv_b = 1.0 / batch
    gh, gc, hs, cs = work.gh, work.gc, work.hs, work.cs
    gc[:] = 0.0
    total_w = work.total_w
    total_w[:] = 0.0
    step_w = work.step_w
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
        gates, dgates, tc, dtc = work.gates[t], work.dgates[t], work.tcs[t], work.dtcs[t]
        c_prev = cs[t]
        da = work.za[t * batch : (t + 1) * batch]
        e_t = work.e
        for i in range(batch):
            for j in range(n):
                e = gc[i, j] + gh[i, j] * gates[i, 3 * n + j] * dtc[i, j]  # dLoss/dc_t
                e_t[i, j] = e
                da[i, j] = e * gates[i, 2 * n + j] * dgates[i, j]  # input gate
                da[i, n + j] = e * c_prev[i, j] * dgates[i, n + j]  # forget gate
                da[i, 2 * n + j] = e * gates[i, j] * dgates[i, 2 * n + j]  # candidate
                da[i, 3 * n + j] = gh[i, j] * tc[i, j] * dgates[i, 3 * n + j]  # output gate
                gc[i, j] = e * gates[i, n + j]  # e_t * f_t: the part of dLoss/dc_{t-1} through c_t
        grad_c[t] = np.sqrt(sum_squares(e_t.reshape(batch * n)))
        np.dot(hs[t].T, da, step_w)
        gate_parts(step_w.reshape(n * g4), total_w, n, GATES, parts)
        step[t, 0] = np.sqrt(parts.sum())
        for k in range(GATES):
            step[t, k + 1] = np.sqrt(parts[k])
        np.dot(da, wh.T, gh)


@jit(inline="always")
def jacobian_step(w64: np.ndarray, work: Work, t: int, gh: np.ndarray, gc: np.ndarray, da: np.ndarray) -> None:
    """Back through step ``t`` (0-based) of the batch's first sequence: rows of (gh, gc), (m, n) each, in place.

    Each row is a (dX/dh_{t+1}, dX/dc_{t+1}) pair; afterwards (dX/dh_t, dX/dc_t). ``da``
    (m, 4n) is scratch; ``w64`` is W_h in float64.
    """
    n = w64.shape[0]
    g, d, tc, dtc, c_prev = work.gates[t, 0], work.dgates[t, 0], work.tcs[t, 0], work.dtcs[t, 0], work.cs[t, 0]
    for r in range(gh.shape[0]):
        for j in range(n):
            e = gc[r, j] + gh[r, j] * g[3 * n + j] * dtc[j]
            da[r, j] = e * g[2 * n + j] * d[j]
            da[r, n + j] = e * c_prev[j] * d[n + j]
            da[r, 2 * n + j] = e * g[j] * d[2 * n + j]
            da[r, 3 * n + j] = gh[r, j] * tc[j] * d[3 * n + j]
            gc[r, j] = e * g[n + j]
    np.dot(da, w64.T, gh)


@jit(inline="always")
def jacobian_norms(wh: np.ndarray, work: Work, jac: np.ndarray, jac_c: np.ndarray) -> None:
    """``jac[t] = ||dh_S/dh_{t+1}||_F`` and ``jac_c[t] = ||dc_S/dc_{t+1}||_F`` for the batch's first sequence.

    The state is (h_t, c_t): each row of (G_h, G_c) is back-propagated like a
    gradient, through the first sequence's gates, starting from (I, 0) for
    dh_S and from (0, I) for dc_S. Two (n, 4n) x (4n, n) products per step, in
    float64 whatever the run's dtype: opt-in.
    """
    steps = work.gates.shape[0]
    n = wh.shape[0]
    w64 = wh.astype(np.float64)
    da = np.empty((n, GATES * n))
    for which in range(2):
        gh = np.zeros((n, n))
        gc = np.zeros((n, n))
        for k in range(n):
            if which == 0:
                gh[k, k] = 1.0
            else:
                gc[k, k] = 1.0
        out = jac if which == 0 else jac_c
        for t in range(steps - 1, -1, -1):
            out[t] = np.sqrt(sum_squares((gh if which == 0 else gc).reshape(n * n)))
            if t == 0:
                break
            jacobian_step(w64, work, t, gh, gc, da)


def _maybe_jacobian(choice: Any, wh: Any, work: Any, jac: Any, jac_c: Any) -> None:
    raise NotImplementedError("compiled code only")


@overload(_maybe_jacobian, inline="always")
def _maybe_jacobian_impl(choice, wh, work, jac, jac_c):  # type: ignore[no-untyped-def]
    name = chosen(choice, "jacobian")
    if name == "yes":
        return lambda choice, wh, work, jac, jac_c: jacobian_norms(wh, work, jac, jac_c)
    if name == "no":
        return lambda choice, wh, work, jac, jac_c: None
    return None


@jit(inline="always")
def trial(wh: np.ndarray, wx: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net, work: Work,
          stats: Stats, t: int) -> None:
    """One trial into row ``t`` of ``stats``. x (S, B, d); y (1, B, n) for LAST and PROBE, (S, B, n) for ALL."""
    steps, batch, d_in = x.shape
    n = wh.shape[0]
    g4 = GATES * n
    forward(wh, wx, b, b[:0], x, net, work, stats.q[t])
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
    backward(wh, y, net.loss, work, stats.grad_h[t], stats.grad_c[t], stats.step[t])
    _maybe_jacobian(net.jacobian, wh, work, stats.jac[t], stats.jac_c[t])
    totals = stats.totals[t]
    parts = np.empty(GATES + 1)
    gate_norms(work.total_w, n, GATES, parts)
    for k in range(GATES + 1):
        totals[k] = parts[k]
    dwx = np.empty((d_in, g4), dtype=x.dtype)
    np.dot(x.reshape(steps * batch, d_in).T, work.za, dwx)
    totals[GATES + 1] = np.sqrt(sum_squares(dwx.reshape(d_in * g4)))
    db = np.zeros(g4, dtype=x.dtype)
    for r in range(steps * batch):
        for j in range(g4):
            db[j] += work.za[r, j]
    totals[GATES + 2] = np.sqrt(sum_squares(db))


@jit(inline="always")
def train_backward(wh: np.ndarray, direct: np.ndarray, mode: int, work: Work, grad_h: np.ndarray,
                   grad_wh: np.ndarray, grad_bh: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Training's backward pass from ``work.gh = dLoss/dh_S``: returns da_t of every step, (S B, 4n).

    As :func:`cpu_rnn.train_backward`: dLoss/dW_h into the float64 ``grad_wh``, ||dLoss/dh_t||
    into ``grad_h``; ``norms`` (S, G + 2) is scratch; ``grad_bh`` is not written (one bias).
    """
    backward(wh, direct, mode, work, grad_h, norms[:, 0], norms[:, 1:])
    copy(grad_wh, work.total_w)
    return work.za


@jit(inline="always")
def draw_inputs(init: Init, x: np.ndarray, y: np.ndarray, seed: int, trial_id: int) -> None:
    """Trial ``trial_id``'s inputs x and targets (or probes) y ~ N(0, 1); either may be empty."""
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, GATED_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, GATED_Y)


@jit(inline="always")
def draw_trial(wh: np.ndarray, wx: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, square: np.ndarray,
               wide: np.ndarray, seed: int, trial_id: int, init: Init) -> None:
    """Every array of generated trial ``trial_id``: :func:`draw_params`, then :func:`draw_inputs`."""
    draw_params(init, wh, wx, b, b[:0], square, wide, seed, trial_id)
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
    b = np.empty(GATES * n, dtype=dtype)
    square = np.empty((n, n), dtype=dtype)
    wide = np.empty((d_in, n), dtype=dtype)
    x = np.empty((steps, batch, d_in), dtype=dtype)
    y = np.empty((y_steps, batch, n), dtype=dtype)
    work = workspace(steps, batch, n, dtype)
    for t in range(lo, hi):
        draw_trial(wh, wx, b, x, y, square, wide, seed, trial0 + t, init)
        trial(wh, wx, b, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, wh: np.ndarray, wx: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
             stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1``: wh (T, n, 4n), wx (T, d, 4n), b (T, 4n), x (T, S, B, d), y (T, Sy, B, n)."""
    _, steps, batch, _ = x.shape
    work = workspace(steps, batch, wh.shape[1], x.dtype)
    for t in range(lo, hi):
        trial(wh[t], wx[t], b[t], x[t], y[t], net, work, stats, t)


@kernel
def draw_arrays(init: Init, seed: int, trials: np.ndarray, wh: np.ndarray, wx: np.ndarray, b: np.ndarray,
                x: np.ndarray, y: np.ndarray) -> None:
    """The arrays of the given trials, exactly as :func:`generated` draws them."""
    n, d_in = init.hidden, init.inputs
    square = np.empty((n, n), dtype=wh.dtype)
    wide = np.empty((d_in, n), dtype=wh.dtype)
    for i in range(trials.size):
        draw_trial(wh[i], wx[i], b[i], x[i], y[i], square, wide, seed, trials[i], init)

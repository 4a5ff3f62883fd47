"""The vanilla RNN's kernel file: backpropagation through time, per trial (CPU).

Definitions (docs/architecture.md): ``z_t = h_{t-1} @ W_hh + x_t @ W_xh + b``,
``h_t = phi(z_t)``, ``h_0 = 0``; ``g_t = dLoss/dh_t`` is the total derivative
through every later step, ``delta_t = g_t * phi'(z_t)``,
``g_{t-1} = delta_t @ W_hh^T (+ the loss's direct term at t - 1)``,
``dLoss/dW_hh = sum_t h_{t-1}^T delta_t``, ``dLoss/dW_xh = sum_t x_t^T delta_t``,
``dLoss/db = sum_t sum_batch delta_t``. Memory layout: time major, x (S, B, d),
h (S + 1, B, n).

Only the recurrent products are done step by step; the input products of all
steps, and the totals for W_xh and b, are single large matrix products. Each
step's contribution ``h_{t-1}^T delta_t`` to dLoss/dW_hh is formed once: its
norm is the step's statistic and the sum of them (in float64) is the total, so
the total costs no product of its own.

The entry points run the trials ``lo .. hi - 1`` of their output rows on the
calling thread, without the GIL. Their arguments are :class:`Net`, :class:`Init`
and :class:`Stats`, built by :mod:`fastgrad.lowering`. The Jacobian norms are a
compile-time choice (``JACOBIAN``/``NO_JACOBIAN``): kernels that do not compute
them do not compile them.

The RNN is also a recurrent *cell* as the LSTM's and GRU's files are: the same
``GATES``, ``BIASES``, ``READOUT``, :func:`workspace`, :func:`draw_params`,
:func:`draw_inputs`, :func:`forward`, :func:`train_backward` and :func:`jacobian_step`,
with the same signatures, through which ``cpu_train_seq`` trains and ``cpu_spectrum``
takes the Jacobian spectra of every cell with one loop each. One gate: W_h = W_hh is
(n, n), W_x = W_xh (d, n), one bias.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba.extending import overload

from fastgrad._numba import Choice, call, chosen, jit, kernel
from fastgrad.codes import NORMAL, RNN_ALL, RNN_B, RNN_DIRECT, RNN_PROBE, RNN_WHH, RNN_WO, RNN_WXH, RNN_X, RNN_Y
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import accumulate_norm_squared, sum_squares

JACOBIAN = Choice("jacobian", "yes")
NO_JACOBIAN = Choice("jacobian", "no")

GATES = 1
"""Gate blocks of W_h (n, G n) and W_x (d, G n): the vanilla RNN's are W_hh and W_xh themselves."""
BIASES = 1
"""Bias vectors of G n entries: b."""
READOUT = RNN_WO
"""The tensor of training's read-out W_o."""


class Net(NamedTuple):
    """What one RNN trial computes, apart from its numbers.

    Attributes
    ----------
    act : FirstClass
        The activation's loop (``activations.loop``).
    alpha : float
        Its parameter.
    loss : int
        ``codes.RNN_LAST``, ``RNN_ALL`` or ``RNN_PROBE``.
    jacobian : Choice
        ``JACOBIAN`` to compute ``||dh_S/dh_t||_F`` of the batch's first sequence, else ``NO_JACOBIAN``.
    """

    act: Any
    alpha: float
    loss: int
    jacobian: Any


class Init(NamedTuple):
    """How a generated trial is drawn: W_hh by (draw, w_kind, w_scale), W_xh ~ N(0, x_scale^2), b by b_kind, b_scale.

    ``draw`` is the draw function (``draw.draw_function``): factored for orthogonal or spectral W_hh.

    ``hidden`` and ``inputs`` are the widths n and d.
    """

    draw: Any
    hidden: int
    inputs: int
    w_kind: int
    w_scale: float
    x_scale: float
    b_kind: int
    b_scale: float


class Stats(NamedTuple):
    """Per-trial outputs: grad_h, grad_whh_step, q (T, S); totals (T, 3) = norms of dW_hh, dW_xh, db.

    ``jac`` is (T, S) for the Jacobian norms, (T, 0) without them.
    """

    grad_h: np.ndarray
    grad_whh_step: np.ndarray
    q: np.ndarray
    totals: np.ndarray
    jac: np.ndarray


class Work(NamedTuple):
    """One thread's buffers, reused from trial to trial.

    ``hs`` (S + 1, B, n): h_t; ``ds`` (S, B, n): phi'(z_t); ``zx`` (S B, n): the input
    products x_t W_xh + b of all steps; ``deltas`` (S, B, n): delta_t; ``gh`` (B, n):
    dLoss/dh_t, from dLoss/dh_S down. The first four are ~S B n elements, above malloc's
    mmap threshold: allocated per trial, every page would fault in afresh.
    """

    hs: np.ndarray
    ds: np.ndarray
    zx: np.ndarray
    deltas: np.ndarray
    gh: np.ndarray


@jit(inline="always")
def forward(whh: np.ndarray, wxh: np.ndarray, b: np.ndarray, bh: np.ndarray, x: np.ndarray, net: Net, work: Work,
            q: np.ndarray) -> None:
    """h_1 .. h_S into ``work.hs[1:]`` (h_0 = 0), phi'(z_t) into ``work.ds[t - 1]``, mean(z_t^2) into ``q``.

    x (S, B, d); ``work.zx`` holds x_t @ W_xh + b of all steps, formed in one product.
    ``bh`` is not read (one bias; the cells share this signature).
    """
    steps, batch, d_in = x.shape
    n = whh.shape[0]
    hs, ds, zx = work.hs, work.ds, work.zx
    hs[0] = 0.0
    np.dot(x.reshape(steps * batch, d_in), wxh, zx)
    for r in range(steps * batch):
        for j in range(n):
            zx[r, j] += b[j]
    z = np.empty((batch, n), dtype=x.dtype)
    for t in range(steps):
        np.dot(hs[t], whh, z)
        zt = zx[t * batch : (t + 1) * batch]
        for i in range(batch):
            for j in range(n):
                z[i, j] += zt[i, j]
        zf = z.reshape(batch * n)
        q[t] = sum_squares(zf) / zf.size
        call(net.act, zf, hs[t + 1].reshape(batch * n), ds[t].reshape(batch * n), net.alpha)


@jit(inline="always")
def backward(whh: np.ndarray, hs: np.ndarray, ds: np.ndarray, g: np.ndarray, y: np.ndarray, loss: int,
             deltas: np.ndarray, grad_h: np.ndarray, grad_whh_step: np.ndarray, total_w: np.ndarray) -> None:
    """Back through every step from ``g = dLoss/dh_S`` (B, n), overwritten.

    Writes delta_t into ``deltas[t - 1]`` (S, B, n), ||g_t|| and ||h_{t-1}^T delta_t||
    into the (S,) rows, and accumulates dLoss/dW_hh (float64, n n) into ``total_w``.
    Under ``RNN_ALL`` the loss's direct term at each earlier step is added from
    ``y`` (S, B, n): (h_t - y_t) / B; under ``RNN_DIRECT`` (training) ``y_t`` is that term.
    """
    steps = ds.shape[0]
    batch, n = g.shape
    inv_b = 1.0 / batch
    step_w = np.empty((n, n), dtype=g.dtype)  # h_{t-1}^T delta_t
    for t in range(steps - 1, -1, -1):
        if loss == RNN_ALL and t < steps - 1:
            for i in range(batch):
                for j in range(n):
                    g[i, j] += (hs[t + 1, i, j] - y[t, i, j]) * inv_b
        elif loss == RNN_DIRECT and t < steps - 1:  # training's per-step read-out
            for i in range(batch):
                for j in range(n):
                    g[i, j] += y[t, i, j]
        grad_h[t] = np.sqrt(sum_squares(g.reshape(batch * n)))
        dt = deltas[t]
        for i in range(batch):
            for j in range(n):
                dt[i, j] = g[i, j] * ds[t, i, j]
        np.dot(hs[t].T, dt, step_w)
        grad_whh_step[t] = np.sqrt(accumulate_norm_squared(step_w.reshape(n * n), total_w))
        np.dot(dt, whh.T, g)


@jit(inline="always")
def jacobian_step(w64: np.ndarray, work: Work, t: int, m: np.ndarray, carry: np.ndarray, scaled: np.ndarray) -> None:
    """Back through step ``t`` (0-based) of the batch's first sequence: ``m`` (n, n), dh_S/dh_{t+1} -> dh_S/dh_t.

    ``m[i, k] = dh_{S,k} / dh_{t,i}`` (the transpose of the gated cells' rows, with the
    same singular values): ``M_{t-1} = W_hh diag(phi'(z_t)) M_t``. ``scaled`` (n, n) is
    scratch; ``carry`` is not read (the RNN's state is h alone); ``w64`` is W_hh in float64.
    """
    n = w64.shape[0]
    for i in range(n):
        d = np.float64(work.ds[t, 0, i])
        for k in range(n):
            scaled[i, k] = d * m[i, k]
    np.dot(w64, scaled, m)


@jit(inline="always")
def jacobian_norms(whh: np.ndarray, work: Work, jac: np.ndarray) -> None:
    """``jac[t] = ||dh_S / dh_{t+1}||_F`` for the first sequence of the batch (index 0 is h_1).

    From ``M_S = I``, one :func:`jacobian_step` per step: one (n, n) product, in
    float64 whatever the run's dtype: n times the cost of back-propagating one
    vector, so this is opt-in.
    """
    steps = work.ds.shape[0]
    n = whh.shape[0]
    w64 = whh.astype(np.float64)
    m = np.eye(n)
    scaled = np.empty((n, n))
    for t in range(steps - 1, -1, -1):
        jac[t] = np.sqrt(sum_squares(m.reshape(n * n)))
        if t > 0:
            jacobian_step(w64, work, t, m, m, scaled)


def _maybe_jacobian(choice: Any, whh: Any, work: Any, jac: Any) -> None:
    raise NotImplementedError("compiled code only")


@overload(_maybe_jacobian, inline="always")
def _maybe_jacobian_impl(choice, whh, work, jac):  # type: ignore[no-untyped-def]
    name = chosen(choice, "jacobian")
    if name == "yes":
        return lambda choice, whh, work, jac: jacobian_norms(whh, work, jac)
    if name == "no":
        return lambda choice, whh, work, jac: None
    return None


@jit(inline="always")
def trial(whh: np.ndarray, wxh: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net, work: Work,
          stats: Stats, t: int) -> None:
    """One trial into row ``t`` of ``stats``. x (S, B, d); y (1, B, n) for LAST and PROBE, (S, B, n) for ALL.

    ``work`` is the caller's :func:`workspace`, reused from trial to trial.
    """
    steps, batch, d_in = x.shape
    n = whh.shape[0]
    dtype = x.dtype
    hs, ds, deltas, g = work.hs, work.ds, work.deltas, work.gh
    forward(whh, wxh, b, b[:0], x, net, work, stats.q[t])
    inv_b = 1.0 / batch
    if net.loss == RNN_PROBE:
        for i in range(batch):
            for j in range(n):
                g[i, j] = y[0, i, j] * inv_b
    else:
        last_y = y[y.shape[0] - 1]
        for i in range(batch):
            for j in range(n):
                g[i, j] = (hs[steps, i, j] - last_y[i, j]) * inv_b
    total_w = np.zeros(n * n)  # dLoss/dW_hh
    backward(whh, hs, ds, g, y, net.loss, deltas, stats.grad_h[t], stats.grad_whh_step[t], total_w)
    _maybe_jacobian(net.jacobian, whh, work, stats.jac[t])

    totals = stats.totals[t]
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


@jit(inline="always")
def train_backward(whh: np.ndarray, direct: np.ndarray, mode: int, work: Work, grad_h: np.ndarray,
                   grad_wh: np.ndarray, grad_bh: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Training's backward pass from ``work.gh = dLoss/dh_S``: returns da_t of every step, (S B, n).

    dLoss/dW_hh goes into the float64 ``grad_wh`` (n n), ||dLoss/dh_t|| into ``grad_h``;
    ``direct`` (S, B, n) holds the read-out's direct term at each step (``mode``
    ``RNN_DIRECT``; ``RNN_LAST``: none). ``norms`` (S, G + 2) is scratch for the
    per-step norms the statistics keep; ``grad_bh`` is not written (one bias).
    """
    steps, batch, n = work.deltas.shape
    grad_wh[:] = 0.0
    backward(whh, work.hs, work.ds, work.gh, direct, mode, work.deltas, grad_h, norms[:, 0], grad_wh)
    return work.deltas.reshape(steps * batch, n)


@jit(inline="always")
def workspace(steps: int, batch: int, n: int, dtype: Any) -> Work:
    """A :class:`Work` for ``steps`` x ``batch`` x ``n``: allocate once per block of trials."""
    return Work(np.empty((steps + 1, batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype),
                np.empty((steps * batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype),
                np.empty((batch, n), dtype=dtype))


@jit(inline="always")
def draw_params(init: Init, whh: np.ndarray, wxh: np.ndarray, b: np.ndarray, bh: np.ndarray, square: np.ndarray,
                wide: np.ndarray, seed: int, trial_id: int) -> None:
    """Trial ``trial_id``'s W_hh (n, n), W_xh (d, n) and b (n): the order of the draws is trial identity.

    ``bh``, ``square`` and ``wide`` are not used: the gated cells' second bias and one gate
    block's scratch (the RNN draws its one block in place); the cells share this signature.
    """
    draw_matrix(init.draw, whh, init.w_kind, init.w_scale, seed, trial_id, RNN_WHH)
    draw_matrix(init.draw, wxh, NORMAL, init.x_scale, seed, trial_id, RNN_WXH)
    draw_vector(init.draw, b, init.b_kind, init.b_scale, seed, trial_id, RNN_B)


@jit(inline="always")
def draw_inputs(init: Init, x: np.ndarray, y: np.ndarray, seed: int, trial_id: int) -> None:
    """Trial ``trial_id``'s inputs x and targets (or probes) y ~ N(0, 1); either may be empty."""
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, RNN_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, RNN_Y)


@jit(inline="always")
def draw_trial(whh: np.ndarray, wxh: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int,
               trial_id: int, init: Init) -> None:
    """Every array of generated trial ``trial_id``: :func:`draw_params`, then :func:`draw_inputs`."""
    draw_params(init, whh, wxh, bias, bias[:0], whh, wxh, seed, trial_id)  # no scratch: one block, in place
    draw_inputs(init, x, y, seed, trial_id)


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, batch: int, stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``stats``: trials ``trial0 + lo ..`` drawn, then run; grad_h fixes S and the dtype."""
    steps = stats.grad_h.shape[1]
    dtype = stats.grad_h.dtype
    hidden, inputs = init.hidden, init.inputs
    y_steps = steps if net.loss == RNN_ALL else 1
    whh = np.empty((hidden, hidden), dtype=dtype)
    wxh = np.empty((inputs, hidden), dtype=dtype)
    bias = np.empty(hidden, dtype=dtype)
    x = np.empty((steps, batch, inputs), dtype=dtype)
    y = np.empty((y_steps, batch, hidden), dtype=dtype)
    work = workspace(steps, batch, hidden, dtype)
    for t in range(lo, hi):
        draw_trial(whh, wxh, bias, x, y, seed, trial0 + t, init)
        trial(whh, wxh, bias, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, whh: np.ndarray, wxh: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
             stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1``: whh (T, n, n), wxh (T, d, n), b (T, n), x (T, S, B, d), y (T, Sy, B, n)."""
    _, steps, batch, _ = x.shape
    work = workspace(steps, batch, whh.shape[1], x.dtype)
    for t in range(lo, hi):
        trial(whh[t], wxh[t], b[t], x[t], y[t], net, work, stats, t)


@kernel
def draw_arrays(init: Init, seed: int, trials: np.ndarray, whh: np.ndarray, wxh: np.ndarray, b: np.ndarray,
                x: np.ndarray, y: np.ndarray) -> None:
    """The arrays of the given trials, exactly as :func:`generated` draws them."""
    for i in range(trials.size):
        draw_trial(whh[i], wxh[i], b[i], x[i], y[i], seed, trials[i], init)

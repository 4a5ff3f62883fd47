"""The independently recurrent network's kernel file (IndRNN, Li et al. 2018): BPTT per trial (CPU).

Definitions: ``z_t = x_t @ W_x + u * h_{t-1} + b``, ``h_t = phi(z_t)``, ``h_0 = 0``, with a
recurrent *vector* u (each unit feeds back only to itself). With ``g_t = dLoss/dh_t`` (the total
derivative through every later step) and ``delta_t = g_t * phi'(z_t)``:
``g_{t-1} = delta_t * u (+ the loss's direct term at t - 1)``, ``dLoss/du = sum_t sum_batch
h_{t-1} * delta_t``, ``dLoss/dW_x = sum_t x_t^T delta_t``, ``dLoss/db = sum_t sum_batch delta_t``.
dh_S/dh_t is diagonal: ``prod_{s > t} u * phi'(z_s)`` unit by unit, so its norm costs O(n) a step
and its singular values are the absolute values of that product. Memory layout as the RNN's:
time major, x (S, B, d), h (S + 1, B, n).

Trials draw from the vanilla RNN's streams (``codes.RNN_*``): x, y, W_x and b are those of the
RNN's trial k, u is uniform from the stream of the RNN's W_hh. The entry points run trials
``lo .. hi - 1`` of their output rows on the calling thread, without the GIL; their arguments
are :class:`Net`, :class:`Init` and :class:`Stats`, built by ``fastgrad/models/indrnn.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._numba import call, jit, kernel
from fastgrad.codes import (
    NORMAL,
    RNN_ALL,
    RNN_B,
    RNN_DIRECT,
    RNN_LAST,
    RNN_PROBE,
    RNN_WHH,
    RNN_WO,
    RNN_WXH,
    RNN_X,
    RNN_Y,
    TRAIN_XENT,
)
from fastgrad.kernels import cpu_train_seq as seq
from fastgrad.kernels.cpu_train import (
    Data,
    Optimizer,
    Record,
    begin_epoch,
    begin_trial,
    diverged_epoch,
    epoch_order,
    second_size,
)
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import accumulate_norm_squared, sum_squares
from fastgrad.rng import fill_uniform, stream_key


class Net(NamedTuple):
    """What one IndRNN trial computes, apart from its numbers.

    Attributes
    ----------
    act : FirstClass
        The activation's loop (``activations.loop``).
    alpha : float
        Its parameter.
    loss : int
        ``codes.RNN_LAST``, ``RNN_ALL`` or ``RNN_PROBE`` (training: ``TRAIN_MSE`` or ``TRAIN_XENT``).
    """

    act: Any
    alpha: float
    loss: int


class Init(NamedTuple):
    """How a generated trial is drawn: u ~ U(u_low, u_high) per unit, W_x ~ N(0, x_scale^2), b by b_kind, b_scale.

    ``draw`` is the draw function for W_x and b (``draw.draw_function``); ``hidden`` and ``inputs`` are n, d.
    """

    draw: Any
    hidden: int
    inputs: int
    u_low: float
    u_high: float
    x_scale: float
    b_kind: int
    b_scale: float


class Stats(NamedTuple):
    """Per-trial outputs: grad_h, grad_u_step, q (T, S); totals (T, 3) = norms of du, dW_x, db.

    ``jac`` is (T, S) for the Jacobian norms ||dh_S/dh_t||_F of the first sequence, (T, 0) without them.
    """

    grad_h: np.ndarray
    grad_u_step: np.ndarray
    q: np.ndarray
    totals: np.ndarray
    jac: np.ndarray


@jit(inline="always")
def forward(u: np.ndarray, wx: np.ndarray, b: np.ndarray, x: np.ndarray, act: Any, alpha: float, hs: np.ndarray,
            ds: np.ndarray, zx: np.ndarray, q: np.ndarray) -> None:
    """h_1 .. h_S into ``hs[1:]`` (hs[0] = 0), phi'(z_t) into ``ds[t - 1]``, mean(z_t^2) into ``q``.

    zx (S B, n) is scratch for x_t @ W_x + b of all steps, formed in one product.
    """
    steps, batch, d_in = x.shape
    n = u.size
    hs[0] = 0.0
    np.dot(x.reshape(steps * batch, d_in), wx, zx)
    for r in range(steps * batch):
        for j in range(n):
            zx[r, j] += b[j]
    z = np.empty((batch, n), dtype=x.dtype)
    for t in range(steps):
        zt = zx[t * batch : (t + 1) * batch]
        h = hs[t]
        for i in range(batch):
            for j in range(n):
                z[i, j] = zt[i, j] + u[j] * h[i, j]
        zf = z.reshape(batch * n)
        q[t] = sum_squares(zf) / zf.size
        call(act, zf, hs[t + 1].reshape(batch * n), ds[t].reshape(batch * n), alpha)


@jit(inline="always")
def backward(u: np.ndarray, hs: np.ndarray, ds: np.ndarray, g: np.ndarray, y: np.ndarray, loss: int,
             deltas: np.ndarray, grad_h: np.ndarray, grad_u_step: np.ndarray, total_u: np.ndarray) -> None:
    """Back through every step from ``g = dLoss/dh_S`` (B, n), overwritten.

    Writes delta_t into ``deltas[t - 1]``, ||g_t|| and ||sum_batch h_{t-1} delta_t|| into the (S,)
    rows, and accumulates dLoss/du (float64, n) into ``total_u``. The loss's direct terms at earlier
    steps as the RNN's (``RNN_ALL``: (h_t - y_t) / B; ``RNN_DIRECT``: y_t itself).
    """
    steps = ds.shape[0]
    batch, n = g.shape
    inv_b = 1.0 / batch
    step_u = np.empty(n, dtype=g.dtype)
    for t in range(steps - 1, -1, -1):
        if loss == RNN_ALL and t < steps - 1:
            for i in range(batch):
                for j in range(n):
                    g[i, j] += (hs[t + 1, i, j] - y[t, i, j]) * inv_b
        elif loss == RNN_DIRECT and t < steps - 1:
            for i in range(batch):
                for j in range(n):
                    g[i, j] += y[t, i, j]
        grad_h[t] = np.sqrt(sum_squares(g.reshape(batch * n)))
        dt = deltas[t]
        step_u[:] = 0.0
        for i in range(batch):
            for j in range(n):
                dt[i, j] = g[i, j] * ds[t, i, j]
                step_u[j] += hs[t, i, j] * dt[i, j]
                g[i, j] = dt[i, j] * u[j]
        grad_u_step[t] = np.sqrt(accumulate_norm_squared(step_u, total_u))


@jit(inline="always")
def jacobian_products(u: np.ndarray, ds: np.ndarray, step: int, m: np.ndarray) -> None:
    """The diagonal of dh_S/dh_step for the first sequence, in float64: ``prod_{s > step} u * phi'(z_s)``."""
    steps = ds.shape[0]
    m[:] = 1.0
    for t in range(steps - 1, step - 1, -1):
        for j in range(u.size):
            m[j] *= np.float64(u[j]) * np.float64(ds[t, 0, j])


@jit(inline="always")
def trial(u: np.ndarray, wx: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net,
          work: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], stats: Stats, t: int) -> None:
    """One trial into row ``t`` of ``stats``. x (S, B, d); y (1, B, n) for LAST and PROBE, (S, B, n) for ALL."""
    steps, batch, d_in = x.shape
    n = u.size
    dtype = x.dtype
    hs, ds, zx, deltas = work
    forward(u, wx, b, x, net.act, net.alpha, hs, ds, zx, stats.q[t])
    inv_b = 1.0 / batch
    g = np.empty((batch, n), dtype=dtype)
    if net.loss == RNN_PROBE:
        for i in range(batch):
            for j in range(n):
                g[i, j] = y[0, i, j] * inv_b
    else:
        last_y = y[y.shape[0] - 1]
        for i in range(batch):
            for j in range(n):
                g[i, j] = (hs[steps, i, j] - last_y[i, j]) * inv_b
    total_u = np.zeros(n)
    backward(u, hs, ds, g, y, net.loss, deltas, stats.grad_h[t], stats.grad_u_step[t], total_u)
    jac = stats.jac[t]
    if jac.size:  # ||dh_S/dh_{s+1}||_F for each s: the diagonal products, O(n) a step
        m = np.ones(n)
        for s in range(steps - 1, -1, -1):
            jac[s] = np.sqrt(sum_squares(m))
            for j in range(n):
                m[j] *= np.float64(u[j]) * np.float64(ds[s, 0, j])
    totals = stats.totals[t]
    flat_d = deltas.reshape(steps * batch, n)
    totals[0] = np.sqrt(sum_squares(total_u))
    dwx = np.empty((d_in, n), dtype=dtype)
    np.dot(x.reshape(steps * batch, d_in).T, flat_d, dwx)
    totals[1] = np.sqrt(sum_squares(dwx.reshape(d_in * n)))
    db = np.zeros(n, dtype=dtype)
    for r in range(steps * batch):
        for j in range(n):
            db[j] += flat_d[r, j]
    totals[2] = np.sqrt(sum_squares(db))


@jit(inline="always")
def workspace(steps: int, batch: int, n: int, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The large buffers of :func:`trial` (hs, ds, zx, deltas): allocated once per block of trials."""
    return (np.empty((steps + 1, batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype),
            np.empty((steps * batch, n), dtype=dtype), np.empty((steps, batch, n), dtype=dtype))


@jit(inline="always")
def draw_u(u: np.ndarray, seed: int, trial_id: int, init: Init) -> None:
    """u of trial ``trial_id``: U(u_low, u_high) per unit in float64 (the RNN's W_hh stream), then rounded."""
    u64 = np.empty(u.size)
    fill_uniform(u64, stream_key(seed, trial_id, RNN_WHH), init.u_low, init.u_high)
    for j in range(u.size):
        u[j] = u64[j]


@jit(inline="always")
def draw_trial(u: np.ndarray, wx: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int,
               trial_id: int, init: Init) -> None:
    """Every array of generated trial ``trial_id``; inputs x and targets (or probes) y ~ N(0, 1)."""
    draw_u(u, seed, trial_id, init)
    draw_matrix(init.draw, wx, NORMAL, init.x_scale, seed, trial_id, RNN_WXH)
    draw_vector(init.draw, bias, init.b_kind, init.b_scale, seed, trial_id, RNN_B)
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, RNN_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, RNN_Y)


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, batch: int, stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``stats``: trials ``trial0 + lo ..`` drawn, then run; grad_h fixes S and the dtype."""
    steps = stats.grad_h.shape[1]
    dtype = stats.grad_h.dtype
    hidden, inputs = init.hidden, init.inputs
    y_steps = steps if net.loss == RNN_ALL else 1
    u = np.empty(hidden, dtype=dtype)
    wx = np.empty((inputs, hidden), dtype=dtype)
    bias = np.empty(hidden, dtype=dtype)
    x = np.empty((steps, batch, inputs), dtype=dtype)
    y = np.empty((y_steps, batch, hidden), dtype=dtype)
    work = workspace(steps, batch, hidden, dtype)
    for t in range(lo, hi):
        draw_trial(u, wx, bias, x, y, seed, trial0 + t, init)
        trial(u, wx, bias, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, u: np.ndarray, wx: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
             stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1``: u (T, n), wx (T, d, n), b (T, n), x (T, S, B, d), y (T, Sy, B, n)."""
    _, steps, batch, _ = x.shape
    work = workspace(steps, batch, u.shape[1], x.dtype)
    for t in range(lo, hi):
        trial(u[t], wx[t], b[t], x[t], y[t], net, work, stats, t)


@kernel
def draw_arrays(init: Init, seed: int, trials: np.ndarray, u: np.ndarray, wx: np.ndarray, b: np.ndarray,
                x: np.ndarray, y: np.ndarray) -> None:
    """The arrays of the given trials, exactly as :func:`generated` draws them."""
    for i in range(trials.size):
        draw_trial(u[i], wx[i], b[i], x[i], y[i], seed, trials[i], init)


@kernel
def spectrum_generated(net: Net, init: Init, seed: int, trial0: int, steps: int, batch: int, step: int,
                       sv: np.ndarray, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``sv`` (T, n): the singular values of dh_S/dh_step of the first sequence of trial
    ``trial0 + t``'s batch (diagonal: |prod_{s > step} u phi'(z_s)|, sorted descending; nan if not finite)."""
    dtype = sv.dtype
    n, d_in = init.hidden, init.inputs
    y_steps = steps if net.loss == RNN_ALL else 1
    u = np.empty(n, dtype=dtype)
    wx = np.empty((d_in, n), dtype=dtype)
    bias = np.empty(n, dtype=dtype)
    x = np.empty((steps, batch, d_in), dtype=dtype)
    y = np.empty((y_steps, batch, n), dtype=dtype)
    hs, ds, zx, _ = workspace(steps, batch, n, dtype)
    q = np.empty(steps)
    m = np.empty(n)
    for t in range(lo, hi):
        draw_trial(u, wx, bias, x, y, seed, trial0 + t, init)
        forward(u, wx, bias, x, net.act, net.alpha, hs, ds, zx, q)
        jacobian_products(u, ds, step, m)
        values = np.sort(np.abs(m))[::-1]
        finite = np.isfinite(sum_squares(m))
        for j in range(n):
            sv[t, j] = values[j] if finite else np.nan


@kernel
def train(net: Net, init: Init, seed: int, trial0: int, data: Data, opt: Optimizer, epochs: int, batch: int,
          out: Record, lo: int, hi: int) -> None:
    """Train IndRNNs, trials ``trial0 + lo ..`` into rows lo .. hi - 1 of ``out`` (``kernels/cpu_train_seq``'s way).

    Parameters packed per trial as ``[u, W_x, b, W_o, b_o]``; u, W_x and b drawn as in
    :func:`generated`, W_o ~ N(0, 1/hidden) from tensor RNN_WO, b_o = 0; weight decay on u, W_x, W_o.
    """
    x, y = data.x, data.y
    n_samples, steps, d_in = x.shape
    k_steps, k_out = y.shape[1], y.shape[2]
    n = init.hidden
    dtype = x.dtype
    bounds = np.empty(6, dtype=np.int64)
    bounds[0] = 0
    bounds[1] = n
    bounds[2] = n + d_in * n
    bounds[3] = bounds[2] + n
    bounds[4] = bounds[3] + n * k_out
    bounds[5] = bounds[4] + k_out
    p = np.empty(bounds[5], dtype=dtype)
    u = p[bounds[0] : bounds[1]]
    wx = p[bounds[1] : bounds[2]].reshape(d_in, n)
    b = p[bounds[2] : bounds[3]]
    wo = p[bounds[3] : bounds[4]].reshape(n, k_out)
    bo = p[bounds[4] :]
    grad = np.empty(p.size)
    first = np.empty(p.size)
    second = np.empty(second_size(opt.kind, p.size))
    buf = seq.buffers(data, batch, n, n)
    hs, ds, zx, deltas = workspace(steps, batch, n, dtype)
    g = np.empty((batch, n), dtype=dtype)
    q = np.empty(steps)
    step_norms = np.empty(steps)
    mode = RNN_LAST if k_steps == 1 else RNN_DIRECT
    minibatches = n_samples // batch
    m = data.x_test.shape[0]
    for k in range(lo, hi):
        trial_id = trial0 + k
        draw_u(u, seed, trial_id, init)
        draw_matrix(init.draw, wx, NORMAL, init.x_scale, seed, trial_id, RNN_WXH)
        draw_vector(init.draw, b, init.b_kind, init.b_scale, seed, trial_id, RNN_B)
        draw_vector(init.draw, wo.reshape(n * k_out), NORMAL, 1.0 / np.sqrt(n), seed, trial_id, RNN_WO)
        bo[:] = 0.0
        begin_trial(out, k, p, first, second)
        updates = 0
        for epoch in range(epochs):
            if out.diverged[k] >= 0:
                diverged_epoch(out, k, epoch)
                continue
            order = epoch_order(seed, trial_id, epoch, buf.keys)
            begin_epoch(out, k, epoch)
            total = 0.0
            hits = 0
            for s in range(minibatches):
                seq.gather(x, y, order, s * batch, buf)
                forward(u, wx, b, buf.xb, net.act, net.alpha, hs, ds, zx, q)
                value, correct = seq.readout(hs, wo, bo, net.loss, buf, grad[bounds[3] : bounds[4]],
                                             grad[bounds[4] :], g)
                total += value
                hits += correct
                total_u = grad[: bounds[1]]
                total_u[:] = 0.0
                backward(u, hs, ds, g, buf.direct, mode, deltas, buf.grad_h, step_norms, total_u)
                seq.input_grads(buf.xb, deltas.reshape(steps * batch, n), buf, grad[bounds[1] : bounds[2]],
                                grad[bounds[2] : bounds[3]])
                updates += 1
                seq.update(p, grad, first, second, bounds, opt, updates, out, k, epoch, buf, minibatches)
            seq.end_epoch(out, k, epoch, total, hits, minibatches, minibatches * batch * k_steps, net.loss, p)
            if net.loss == TRAIN_XENT and m > 0:
                hits = 0
                for c in range(0, m, batch):
                    seq.gather(data.x_test, data.y_test, buf.test_order, c, buf)
                    forward(u, wx, b, buf.xb, net.act, net.alpha, hs, ds, zx, q)
                    hits += seq.readout_hits(hs, wo, bo, net.loss, buf, min(batch, m - c))
                out.test_accuracy[k, epoch] = hits / (m * k_steps)
        for i in range(p.size):
            out.params1[k, i] = p[i]

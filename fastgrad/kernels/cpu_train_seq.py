"""Training recurrent networks: the vanilla RNN, the LSTM and the GRU, by BPTT, one block of trials per thread (CPU).

Every cell trains the same way. A linear read-out ``o_t = h_t W_o + b_o`` is applied to
the last K steps (K = 1: h_S alone, a regressor or classifier of the whole sequence;
K > 1: sequence targets, e.g. the copy task's recall phase). The loss is the mean over
those K steps of the per-step loss of :func:`cpu_train.loss_gradient` (mse, or softmax
cross-entropy on the logits o_t), each a mean over the minibatch. The passes are the
statistics kernels' own (``cpu_rnn``, ``cpu_lstm``, ``cpu_gru`` ``forward``/``backward``;
the read-out's gradient at an earlier step enters their backward pass as
``codes.RNN_DIRECT``), and the optimiser, clipping and epoch order are
:mod:`cpu_train`'s. Only the weight gradients the statistics do not need are formed
here: dLoss/dW_x = x^T da and dLoss/db = the column sums of da, one product each over all steps.

Parameters are packed per trial as ``[W_h, W_x, (cell biases), W_o, b_o]``: the RNN's
``[W_hh, W_xh, b, ...]``, the LSTM's ``[W_h, W_x, b, ...]``, the GRU's
``[W_h, W_x, b_ih, b_hh, ...]``; L2 weight decay applies to W_h, W_x and W_o only. Records
per epoch: ``grad_w`` the mean norms of dLoss/dW_x, dLoss/dW_h, dLoss/dW_o; ``grad_b`` those of
the cell's biases then dLoss/db_o; ``grad_h`` the mean ||dLoss/dh_t|| per step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastgrad._numba import copy, jit, kernel
from fastgrad.codes import GATED_WO, NORMAL, RNN_B, RNN_DIRECT, RNN_LAST, RNN_WHH, RNN_WO, RNN_WXH, TRAIN_XENT
from fastgrad.kernels import cpu_gru, cpu_lstm, cpu_rnn, gates
from fastgrad.kernels.cpu_train import (
    Data,
    Optimizer,
    Record,
    clip_scale,
    diverged_epoch,
    epoch_order,
    loss_gradient,
    optimizer_step,
    second_size,
)
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import sum_squares


class Buffers(NamedTuple):
    """One thread's buffers for the minibatch and the read-out, besides the cell's own workspace.

    ``xb`` (S, B, d) and ``yb`` (K, B, k): the minibatch, time major; ``direct`` (S, B, n): the
    read-out's direct term dLoss/dh_t of each step before the last (zero outside the read-out
    steps); ``logits``, ``dl`` (B, k); ``gwo`` (n, k); ``gwx`` (d, G n); ``keys`` (N,) for the
    epoch order; ``test_order`` (M,) the held-out rows in order; ``grad_h`` (S,) ||dLoss/dh_t||.
    """

    xb: np.ndarray
    yb: np.ndarray
    direct: np.ndarray
    logits: np.ndarray
    dl: np.ndarray
    gwo: np.ndarray
    gwx: np.ndarray
    keys: np.ndarray
    test_order: np.ndarray
    grad_h: np.ndarray


@jit(inline="always")
def buffers(data: Data, batch: int, n: int, g: int) -> Buffers:
    """A :class:`Buffers` for ``data`` (x (N, S, d), y (N, K, k)), minibatches of ``batch``, n = ``n``, G n = ``g``."""
    n_samples, steps, d_in = data.x.shape
    _, k_steps, k_out = data.y.shape
    dtype = data.x.dtype
    return Buffers(np.empty((steps, batch, d_in), dtype=dtype), np.empty((k_steps, batch, k_out), dtype=dtype),
                   np.zeros((steps, batch, n), dtype=dtype), np.empty((batch, k_out), dtype=dtype),
                   np.empty((batch, k_out), dtype=dtype), np.empty((n, k_out), dtype=dtype),
                   np.empty((d_in, g), dtype=dtype), np.empty(n_samples), np.arange(data.x_test.shape[0]),
                   np.empty(steps))


@jit(inline="always")
def layout(n: int, g: int, d_in: int, k_out: int, cell_biases: int) -> np.ndarray:
    """Where each packed part starts, then the end: W_h (n, g), W_x (d, g), ``cell_biases`` x (g), W_o (n, k), b_o."""
    parts = 4 + cell_biases
    bounds = np.empty(parts + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[1] = n * g
    bounds[2] = bounds[1] + d_in * g
    for i in range(cell_biases):
        bounds[3 + i] = bounds[2 + i] + g
    bounds[parts - 1] = bounds[parts - 2] + n * k_out
    bounds[parts] = bounds[parts - 1] + k_out
    return bounds


@jit(inline="always")
def gather(x: np.ndarray, y: np.ndarray, order: np.ndarray, first: int, buf: Buffers) -> None:
    """Rows ``order[first ..]`` (B of them, wrapping round the end of ``order``) into ``buf.xb`` and ``buf.yb``."""
    steps, batch, d_in = buf.xb.shape
    k_steps, _, k_out = buf.yb.shape
    for r in range(batch):
        row = order[(first + r) % order.size]
        for t in range(steps):
            for j in range(d_in):
                buf.xb[t, r, j] = x[row, t, j]
        for t in range(k_steps):
            for j in range(k_out):
                buf.yb[t, r, j] = y[row, t, j]


@jit(inline="always")
def readout(hs: np.ndarray, wo: np.ndarray, bo: np.ndarray, loss: int, buf: Buffers, grad_wo: np.ndarray,
            grad_bo: np.ndarray, g_last: np.ndarray) -> tuple[float, int]:
    """The read-out's loss on the last K steps of ``hs`` (S + 1, B, n), its gradients, and the hits.

    dLoss/dW_o and dLoss/db_o go into the (float64) ``grad_wo`` and ``grad_bo``;
    dLoss/dh_S's direct term into ``g_last``, and step t's (t < S) into ``buf.direct[t - 1]``.
    """
    steps = hs.shape[0] - 1
    k_steps, batch, k_out = buf.yb.shape
    n = wo.shape[0]
    inv_k = 1.0 / k_steps
    logits, dl = buf.logits, buf.dl
    grad_wo[:] = 0.0
    grad_bo[:] = 0.0
    total = 0.0
    hits = 0
    for r in range(k_steps):
        t = steps - k_steps + r  # h_{t+1}: 0-based position of the read-out step
        h = hs[t + 1]
        np.dot(h, wo, logits)
        for i in range(batch):
            for j in range(k_out):
                logits[i, j] += bo[j]
        value, correct = loss_gradient(logits, buf.yb[r], loss, dl)
        total += value
        hits += correct
        if k_steps > 1:
            for i in range(batch):
                for j in range(k_out):
                    dl[i, j] *= inv_k
        np.dot(h.T, dl, buf.gwo)
        flat = buf.gwo.reshape(n * k_out)
        for i in range(n * k_out):
            grad_wo[i] += flat[i]
        for j in range(k_out):
            acc = 0.0
            for i in range(batch):
                acc += dl[i, j]
            grad_bo[j] += acc
        np.dot(dl, wo.T, g_last if t == steps - 1 else buf.direct[t])
    return total * inv_k, hits


@jit(inline="always")
def readout_hits(hs: np.ndarray, wo: np.ndarray, bo: np.ndarray, loss: int, buf: Buffers, valid: int) -> int:
    """Correct arg-max predictions of the read-out on the first ``valid`` rows of the minibatch (held-out data)."""
    steps = hs.shape[0] - 1
    k_steps, batch, k_out = buf.yb.shape
    hits = 0
    for r in range(k_steps):
        np.dot(hs[steps - k_steps + r + 1], wo, buf.logits)
        for i in range(batch):
            for j in range(k_out):
                buf.logits[i, j] += bo[j]
        _, correct = loss_gradient(buf.logits[:valid], buf.yb[r, :valid], loss, buf.dl[:valid])
        hits += correct
    return hits


@jit(inline="always")
def input_grads(xb: np.ndarray, da: np.ndarray, buf: Buffers, grad_wx: np.ndarray, grad_b: np.ndarray) -> None:
    """dLoss/dW_x = x^T da and dLoss/db = the column sums of da (S B, G n) into the float64 ``grad_wx``, ``grad_b``."""
    steps, batch, d_in = xb.shape
    g = da.shape[1]
    np.dot(xb.reshape(steps * batch, d_in).T, da, buf.gwx)
    copy(grad_wx, buf.gwx.reshape(d_in * g))
    grad_b[:] = 0.0
    for r in range(steps * batch):
        for j in range(g):
            grad_b[j] += da[r, j]


@jit(inline="always")
def begin_trial(out: Record, k: int, p: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Record trial row ``k``'s initial parameters and zero its optimiser state."""
    for i in range(p.size):
        out.params0[k, i] = p[i]
    first[:] = 0.0
    second[:] = 0.0
    out.diverged[k] = -1


@jit(inline="always")
def begin_epoch(out: Record, k: int, epoch: int) -> None:
    """Zero the epoch's gradient-norm accumulators."""
    out.grad_w[k, epoch] = 0.0
    out.grad_b[k, epoch] = 0.0
    out.grad_h[k, epoch] = 0.0


@jit(inline="always")
def update(p: np.ndarray, grad: np.ndarray, first: np.ndarray, second: np.ndarray, bounds: np.ndarray,
           opt: Optimizer, step: int, out: Record, k: int, epoch: int, buf: Buffers, minibatches: int) -> None:
    """Record the minibatch's gradient norms (each divided by ``minibatches``), clip, and take the optimiser step.

    ``grad_w`` gets (W_x, W_h, W_o), ``grad_b`` the cell's biases then b_o. L2 decay on the
    weights only; each part through one call site, so the optimisers' loops compile once
    (``second`` is empty, and so its slices, unless Adam or RMSprop).
    """
    parts = bounds.size - 1
    for part in range(parts):
        norm = np.sqrt(sum_squares(grad[bounds[part] : bounds[part + 1]])) / minibatches
        if part < 2:
            out.grad_w[k, epoch, 1 - part] += norm
        elif part == parts - 2:
            out.grad_w[k, epoch, 2] += norm
        else:
            out.grad_b[k, epoch, part - 2 if part < parts - 1 else parts - 4] += norm
    for t in range(buf.grad_h.size):
        out.grad_h[k, epoch, t] += buf.grad_h[t] / minibatches
    scale = clip_scale(sum_squares(grad), opt.clip)
    for part in range(parts):
        start, stop = bounds[part], bounds[part + 1]
        decay = opt.weight_decay if part < 2 or part == parts - 2 else 0.0
        optimizer_step(p[start:stop], grad[start:stop], first[start:stop], second[start:stop], opt, decay, scale,
                       step)


@jit(inline="always")
def end_epoch(out: Record, k: int, epoch: int, total: float, hits: int, minibatches: int, scored: int, loss: int,
              p: np.ndarray) -> None:
    """The epoch's mean loss and training accuracy (classification; nan otherwise); mark divergence."""
    out.loss[k, epoch] = total / minibatches
    out.accuracy[k, epoch] = hits / scored if loss == TRAIN_XENT else np.nan
    out.test_accuracy[k, epoch] = np.nan
    if not (np.isfinite(total) and np.isfinite(sum_squares(p))):
        out.diverged[k] = epoch


@kernel
def train_rnn(net: cpu_rnn.Net, init: cpu_rnn.Init, seed: int, trial0: int, data: Data, opt: Optimizer,
              epochs: int, batch: int, out: Record, lo: int, hi: int) -> None:
    """Train vanilla RNNs, trials ``trial0 + lo .. trial0 + hi - 1`` into rows lo .. hi - 1 of ``out``.

    W_hh, W_xh and b are drawn as in ``cpu_rnn.generated``, W_o ~ N(0, 1/hidden) from tensor
    RNN_WO, b_o = 0. ``net.loss`` is codes.TRAIN_MSE or TRAIN_XENT; ``data.x`` is (N, S, d),
    ``data.y`` (N, K, k); held-out accuracy is measured for TRAIN_XENT.
    """
    x, y = data.x, data.y
    n_samples, steps, d_in = x.shape
    k_steps, k_out = y.shape[1], y.shape[2]
    n = init.hidden
    dtype = x.dtype
    bounds = layout(n, n, d_in, k_out, 1)
    p = np.empty(bounds[-1], dtype=dtype)
    whh = p[bounds[0] : bounds[1]].reshape(n, n)
    wxh = p[bounds[1] : bounds[2]].reshape(d_in, n)
    b = p[bounds[2] : bounds[3]]
    wo = p[bounds[3] : bounds[4]].reshape(n, k_out)
    bo = p[bounds[4] :]
    grad = np.empty(p.size)
    first = np.empty(p.size)
    second = np.empty(second_size(opt.kind, p.size))
    buf = buffers(data, batch, n, n)
    hs, ds, zx, deltas = cpu_rnn.workspace(steps, batch, n, dtype)
    g = np.empty((batch, n), dtype=dtype)
    q = np.empty(steps)
    step_norms = np.empty(steps)
    mode = RNN_LAST if k_steps == 1 else RNN_DIRECT
    minibatches = n_samples // batch
    m = data.x_test.shape[0]
    for k in range(lo, hi):
        trial = trial0 + k
        draw_matrix(init.draw, whh, init.w_kind, init.w_scale, seed, trial, RNN_WHH)
        draw_matrix(init.draw, wxh, NORMAL, init.x_scale, seed, trial, RNN_WXH)
        draw_vector(init.draw, b, init.b_kind, init.b_scale, seed, trial, RNN_B)
        draw_vector(init.draw, wo.reshape(n * k_out), NORMAL, 1.0 / np.sqrt(n), seed, trial, RNN_WO)
        bo[:] = 0.0
        begin_trial(out, k, p, first, second)
        updates = 0
        for epoch in range(epochs):
            if out.diverged[k] >= 0:
                diverged_epoch(out, k, epoch)
                continue
            order = epoch_order(seed, trial, epoch, buf.keys)
            begin_epoch(out, k, epoch)
            total = 0.0
            hits = 0
            for s in range(minibatches):
                gather(x, y, order, s * batch, buf)
                cpu_rnn.forward(whh, wxh, b, buf.xb, net.act, net.alpha, hs, ds, zx, q)
                value, correct = readout(hs, wo, bo, net.loss, buf, grad[bounds[3] : bounds[4]], grad[bounds[4] :], g)
                total += value
                hits += correct
                total_w = grad[: bounds[1]]
                total_w[:] = 0.0
                cpu_rnn.backward(whh, hs, ds, g, buf.direct, mode, deltas, buf.grad_h, step_norms, total_w)
                input_grads(buf.xb, deltas.reshape(steps * batch, n), buf, grad[bounds[1] : bounds[2]],
                            grad[bounds[2] : bounds[3]])
                updates += 1
                update(p, grad, first, second, bounds, opt, updates, out, k, epoch, buf, minibatches)
            end_epoch(out, k, epoch, total, hits, minibatches, minibatches * batch * k_steps, net.loss, p)
            if net.loss == TRAIN_XENT and m > 0:
                hits = 0
                for c in range(0, m, batch):
                    gather(data.x_test, data.y_test, buf.test_order, c, buf)
                    cpu_rnn.forward(whh, wxh, b, buf.xb, net.act, net.alpha, hs, ds, zx, q)
                    hits += readout_hits(hs, wo, bo, net.loss, buf, min(batch, m - c))
                out.test_accuracy[k, epoch] = hits / (m * k_steps)
        for i in range(p.size):
            out.params1[k, i] = p[i]


@kernel
def train_lstm(net: cpu_lstm.Net, init: gates.Init, seed: int, trial0: int, data: Data, opt: Optimizer,
               epochs: int, batch: int, out: Record, lo: int, hi: int) -> None:
    """Train LSTMs, as :func:`train_rnn`: W_h, W_x and b drawn as in ``cpu_lstm.generated``, W_o from GATED_WO."""
    x, y = data.x, data.y
    n_samples, steps, d_in = x.shape
    k_steps, k_out = y.shape[1], y.shape[2]
    n = init.hidden
    g4 = cpu_lstm.GATES * n
    dtype = x.dtype
    bounds = layout(n, g4, d_in, k_out, 1)
    p = np.empty(bounds[-1], dtype=dtype)
    wh = p[bounds[0] : bounds[1]].reshape(n, g4)
    wx = p[bounds[1] : bounds[2]].reshape(d_in, g4)
    b = p[bounds[2] : bounds[3]]
    wo = p[bounds[3] : bounds[4]].reshape(n, k_out)
    bo = p[bounds[4] :]
    grad = np.empty(p.size)
    first = np.empty(p.size)
    second = np.empty(second_size(opt.kind, p.size))
    buf = buffers(data, batch, n, g4)
    work = cpu_lstm.workspace(steps, batch, n, dtype)
    square = np.empty((n, n), dtype=dtype)
    wide = np.empty((d_in, n), dtype=dtype)
    no_bh = np.empty(0, dtype=dtype)
    q = np.empty(steps)
    grad_c = np.empty(steps)
    step_norms = np.empty((steps, cpu_lstm.GATES + 1))
    mode = RNN_LAST if k_steps == 1 else RNN_DIRECT
    minibatches = n_samples // batch
    m = data.x_test.shape[0]
    for k in range(lo, hi):
        trial = trial0 + k
        gates.draw_weights(init, wh, wx, b, no_bh, square, wide, seed, trial)
        draw_vector(init.draw, wo.reshape(n * k_out), NORMAL, 1.0 / np.sqrt(n), seed, trial, GATED_WO)
        bo[:] = 0.0
        begin_trial(out, k, p, first, second)
        updates = 0
        for epoch in range(epochs):
            if out.diverged[k] >= 0:
                diverged_epoch(out, k, epoch)
                continue
            order = epoch_order(seed, trial, epoch, buf.keys)
            begin_epoch(out, k, epoch)
            total = 0.0
            hits = 0
            for s in range(minibatches):
                gather(x, y, order, s * batch, buf)
                cpu_lstm.forward(wh, wx, b, buf.xb, net, work, q)
                value, correct = readout(work.hs, wo, bo, net.loss, buf, grad[bounds[3] : bounds[4]],
                                         grad[bounds[4] :], work.gh)
                total += value
                hits += correct
                cpu_lstm.backward(wh, buf.direct, mode, work, buf.grad_h, grad_c, step_norms)
                copy(grad[: bounds[1]], work.total_w)
                input_grads(buf.xb, work.za, buf, grad[bounds[1] : bounds[2]], grad[bounds[2] : bounds[3]])
                updates += 1
                update(p, grad, first, second, bounds, opt, updates, out, k, epoch, buf, minibatches)
            end_epoch(out, k, epoch, total, hits, minibatches, minibatches * batch * k_steps, net.loss, p)
            if net.loss == TRAIN_XENT and m > 0:
                hits = 0
                for c in range(0, m, batch):
                    gather(data.x_test, data.y_test, buf.test_order, c, buf)
                    cpu_lstm.forward(wh, wx, b, buf.xb, net, work, q)
                    hits += readout_hits(work.hs, wo, bo, net.loss, buf, min(batch, m - c))
                out.test_accuracy[k, epoch] = hits / (m * k_steps)
        for i in range(p.size):
            out.params1[k, i] = p[i]


@kernel
def train_gru(net: cpu_gru.Net, init: gates.Init, seed: int, trial0: int, data: Data, opt: Optimizer,
              epochs: int, batch: int, out: Record, lo: int, hi: int) -> None:
    """Train GRUs, as :func:`train_rnn`: W_h, W_x, b_ih, b_hh drawn as in ``cpu_gru.generated``, W_o from GATED_WO."""
    x, y = data.x, data.y
    n_samples, steps, d_in = x.shape
    k_steps, k_out = y.shape[1], y.shape[2]
    n = init.hidden
    g3 = cpu_gru.GATES * n
    dtype = x.dtype
    bounds = layout(n, g3, d_in, k_out, 2)
    p = np.empty(bounds[-1], dtype=dtype)
    wh = p[bounds[0] : bounds[1]].reshape(n, g3)
    wx = p[bounds[1] : bounds[2]].reshape(d_in, g3)
    bx = p[bounds[2] : bounds[3]]
    bh = p[bounds[3] : bounds[4]]
    wo = p[bounds[4] : bounds[5]].reshape(n, k_out)
    bo = p[bounds[5] :]
    grad = np.empty(p.size)
    first = np.empty(p.size)
    second = np.empty(second_size(opt.kind, p.size))
    buf = buffers(data, batch, n, g3)
    work = cpu_gru.workspace(steps, batch, n, dtype)
    square = np.empty((n, n), dtype=dtype)
    wide = np.empty((d_in, n), dtype=dtype)
    q = np.empty(steps)
    step_norms = np.empty((steps, cpu_gru.GATES + 1))
    mode = RNN_LAST if k_steps == 1 else RNN_DIRECT
    minibatches = n_samples // batch
    m = data.x_test.shape[0]
    for k in range(lo, hi):
        trial = trial0 + k
        gates.draw_weights(init, wh, wx, bx, bh, square, wide, seed, trial)
        draw_vector(init.draw, wo.reshape(n * k_out), NORMAL, 1.0 / np.sqrt(n), seed, trial, GATED_WO)
        bo[:] = 0.0
        begin_trial(out, k, p, first, second)
        updates = 0
        for epoch in range(epochs):
            if out.diverged[k] >= 0:
                diverged_epoch(out, k, epoch)
                continue
            order = epoch_order(seed, trial, epoch, buf.keys)
            begin_epoch(out, k, epoch)
            total = 0.0
            hits = 0
            for s in range(minibatches):
                gather(x, y, order, s * batch, buf)
                cpu_gru.forward(wh, wx, bx, bh, buf.xb, net, work, q)
                value, correct = readout(work.hs, wo, bo, net.loss, buf, grad[bounds[4] : bounds[5]],
                                         grad[bounds[5] :], work.gh)
                total += value
                hits += correct
                cpu_gru.backward(wh, buf.direct, mode, work, buf.grad_h, step_norms)
                copy(grad[: bounds[1]], work.total_w)
                input_grads(buf.xb, work.za, buf, grad[bounds[1] : bounds[2]], grad[bounds[2] : bounds[3]])
                copy(grad[bounds[3] : bounds[4]], work.dbh)
                updates += 1
                update(p, grad, first, second, bounds, opt, updates, out, k, epoch, buf, minibatches)
            end_epoch(out, k, epoch, total, hits, minibatches, minibatches * batch * k_steps, net.loss, p)
            if net.loss == TRAIN_XENT and m > 0:
                hits = 0
                for c in range(0, m, batch):
                    gather(data.x_test, data.y_test, buf.test_order, c, buf)
                    cpu_gru.forward(wh, wx, bx, bh, buf.xb, net, work, q)
                    hits += readout_hits(work.hs, wo, bo, net.loss, buf, min(batch, m - c))
                out.test_accuracy[k, epoch] = hits / (m * k_steps)
        for i in range(p.size):
            out.params1[k, i] = p[i]

"""Training recurrent networks: the vanilla RNN, the LSTM and the GRU, by BPTT, one block of trials per thread (CPU).

Every cell trains the same way. A linear read-out ``o_t = h_t W_o + b_o`` is applied to
the last K steps (K = 1: h_S alone, a regressor or classifier of the whole sequence;
K > 1: sequence targets, e.g. the copy task's recall phase). The loss is the mean over
those K steps of the per-step loss of :func:`cpu_train.loss_gradient` (mse, or softmax
cross-entropy on the logits o_t), each a mean over the minibatch. One loop trains every cell
(:func:`train_kernel`): it is compiled with the cell's kernel file (``cpu_rnn``, ``cpu_lstm``,
``cpu_gru``), each of which exposes the same interface (``GATES``, ``BIASES``, ``READOUT``,
``workspace``, ``draw_params``, ``forward``, ``train_backward`` around its ``backward``; the
read-out's gradient at an earlier step enters it as ``codes.RNN_DIRECT``), into one kernel per
cell (:data:`train_rnn`, :data:`train_lstm`, :data:`train_gru`). The optimiser, clipping and
epoch order are :mod:`cpu_train`'s. Only the weight gradients the statistics do not need are
formed here: dLoss/dW_x = x^T da and dLoss/db = the column sums of da, one product each over
all steps.

Parameters are packed per trial as ``[W_h, W_x, (cell biases), W_o, b_o]``: the RNN's
``[W_hh, W_xh, b, ...]``, the LSTM's ``[W_h, W_x, b, ...]``, the GRU's
``[W_h, W_x, b_ih, b_hh, ...]``; L2 weight decay applies to W_h, W_x and W_o only. Records
per epoch: ``grad_w`` the mean norms of dLoss/dW_x, dLoss/dW_h, dLoss/dW_o; ``grad_b`` those of
the cell's biases then dLoss/db_o; ``grad_h`` the mean ||dLoss/dh_t|| per step.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from fastgrad._numba import copy, jit, kernel
from fastgrad.codes import NORMAL, RNN_DIRECT, RNN_LAST, TRAIN_XENT
from fastgrad.kernels import cpu_gru, cpu_lstm, cpu_rnn
from fastgrad.kernels.cpu_train import (
    Data,
    Optimizer,
    Record,
    begin_epoch,
    begin_trial,
    clip_scale,
    diverged_epoch,
    epoch_order,
    loss_gradient,
    optimizer_step,
    second_size,
)
from fastgrad.kernels.draw import draw_vector
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


def train_kernel(cell: ModuleType) -> Any:
    """The training kernel of a recurrent cell: the loop below, compiled with the functions of ``cell``.

    ``cell`` is the cell's kernel file (``cpu_rnn``, ``cpu_lstm``, ``cpu_gru``): the loop calls its
    ``workspace``, ``draw_params``, ``forward`` and ``train_backward`` and reads its ``GATES``,
    ``BIASES`` and ``READOUT``, which compile into it as if the loop were written out for that cell.
    One kernel per cell, cached on disk as ``train_<cell>``.

    Parameters
    ----------
    cell : module
        A recurrent kernel file.

    Returns
    -------
    numba dispatcher
        ``train(net, init, seed, trial0, data, opt, epochs, batch, out, lo, hi)``: trains trials
        ``trial0 + lo .. trial0 + hi - 1`` into rows lo .. hi - 1 of ``out``. ``net`` and ``init``
        are the cell's ``Net`` and ``Init``: its weights are drawn as its ``generated`` draws them,
        W_o ~ N(0, 1/hidden) from its READOUT tensor, b_o = 0. ``net.loss`` is codes.TRAIN_MSE or
        TRAIN_XENT; ``data.x`` is (N, S, d), ``data.y`` (N, K, k); held-out accuracy is measured
        for TRAIN_XENT.
    """

    def train(net: Any, init: Any, seed: int, trial0: int, data: Data, opt: Optimizer, epochs: int, batch: int,
              out: Record, lo: int, hi: int) -> None:
        x, y = data.x, data.y
        n_samples, steps, d_in = x.shape
        k_steps, k_out = y.shape[1], y.shape[2]
        n = init.hidden
        g = cell.GATES * n
        dtype = x.dtype
        bounds = layout(n, g, d_in, k_out, cell.BIASES)
        wo_at = bounds.size - 3  # the part W_o
        p = np.empty(bounds[-1], dtype=dtype)
        wh = p[bounds[0] : bounds[1]].reshape(n, g)
        wx = p[bounds[1] : bounds[2]].reshape(d_in, g)
        b = p[bounds[2] : bounds[3]]
        bh = p[bounds[3] : bounds[wo_at]]  # the GRU's b_hh; empty for one bias
        wo = p[bounds[wo_at] : bounds[wo_at + 1]].reshape(n, k_out)
        bo = p[bounds[wo_at + 1] :]
        grad = np.empty(p.size)
        first = np.empty(p.size)
        second = np.empty(second_size(opt.kind, p.size))
        buf = buffers(data, batch, n, g)
        work = cell.workspace(steps, batch, n, dtype)
        square = np.empty((n, n), dtype=dtype)
        wide = np.empty((d_in, n), dtype=dtype)
        q = np.empty(steps)
        norms = np.empty((steps, cell.GATES + 2))
        mode = RNN_LAST if k_steps == 1 else RNN_DIRECT
        minibatches = n_samples // batch
        m = data.x_test.shape[0]
        test_chunks = (m + batch - 1) // batch if net.loss == TRAIN_XENT else 0
        for k in range(lo, hi):
            trial = trial0 + k
            cell.draw_params(init, wh, wx, b, bh, square, wide, seed, trial)
            draw_vector(init.draw, wo.reshape(n * k_out), NORMAL, 1.0 / np.sqrt(n), seed, trial, cell.READOUT)
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
                test_hits = 0
                # The held-out chunks follow the minibatches in one loop, so that the cell's forward
                # pass (inlined) has one call site: compiled once, not twice.
                for s in range(minibatches + test_chunks):
                    held_out = s >= minibatches
                    c = (s - minibatches) * batch
                    if held_out:
                        gather(data.x_test, data.y_test, buf.test_order, c, buf)
                    else:
                        gather(x, y, order, s * batch, buf)
                    cell.forward(wh, wx, b, bh, buf.xb, net, work, q)
                    if held_out:
                        test_hits += readout_hits(work.hs, wo, bo, net.loss, buf, min(batch, m - c))
                        continue
                    value, correct = readout(work.hs, wo, bo, net.loss, buf, grad[bounds[wo_at] : bounds[wo_at + 1]],
                                             grad[bounds[wo_at + 1] :], work.gh)
                    total += value
                    hits += correct
                    da = cell.train_backward(wh, buf.direct, mode, work, buf.grad_h, grad[: bounds[1]],
                                             grad[bounds[3] : bounds[wo_at]], norms)
                    input_grads(buf.xb, da, buf, grad[bounds[1] : bounds[2]], grad[bounds[2] : bounds[3]])
                    updates += 1
                    update(p, grad, first, second, bounds, opt, updates, out, k, epoch, buf, minibatches)
                end_epoch(out, k, epoch, total, hits, minibatches, minibatches * batch * k_steps, net.loss, p)
                if test_chunks > 0:
                    out.test_accuracy[k, epoch] = test_hits / (m * k_steps)
            for i in range(p.size):
                out.params1[k, i] = p[i]

    train.__qualname__ = f"train_{cell.__name__.rsplit('.', 1)[-1].removeprefix('cpu_')}"  # its cache files
    return kernel(train)


# A kernel per cell, built by a factory around one loop: the cell's functions are then constants of
# the loop, inlined as if it were written out for each cell. Measured alternatives, on an empty cache:
# one kernel dispatching on the type of Net through @overload compiled each call as a function of its
# own (the RNN's spectrum kernel 4.0-4.2 s against 2.7 s); the cell's module passed to an inline loop
# made Numba's inlining pass 2.8x slower (train_rnn 20.6 s against 15.9 s).
train_rnn = train_kernel(cpu_rnn)
train_lstm = train_kernel(cpu_lstm)
train_gru = train_kernel(cpu_gru)

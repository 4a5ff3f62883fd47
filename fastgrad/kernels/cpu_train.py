"""Training many small networks at once, one block of trials per thread (CPU).

This module holds what every training loop shares: the loss and its gradient
(:func:`loss_gradient`), each trial's epoch order (:func:`epoch_order`), the records kept at the
start of a trial and of an epoch (:func:`begin_trial`, :func:`begin_epoch`), global-norm
clipping (:func:`clip_scale`, PyTorch's ``clip_grad_norm_`` before the step, without its
1e-6 added to the norm) and the optimiser step (:func:`optimizer_step`: SGD, momentum,
Nesterov momentum, Adam or RMSprop in PyTorch's form, L2 weight decay on the weights
only). It also holds the training loop of the feed-forward nets, the MLP and the residual
MLP (:func:`train_mlp`, compiled once for each model's ``Net``); the recurrent cells' loops
are in :mod:`cpu_train_seq`. The forward and backward passes are the statistics kernels'
own (``cpu_mlp.forward``/``backward``, ``cpu_resmlp.forward``/``backward``), with their
memory layout, chosen at compile time by the type of ``Net`` (:func:`model_forward` and
its siblings).

Each trial starts from its own drawn weights (trial k of the same spec's
``run``), visits the training set in its own order (a permutation from the
trial's stream) and takes minibatch steps.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from fastgrad._numba import copy, jit, kernel
from fastgrad.codes import ADAM, NESTEROV, ORDER, RMSPROP, SGD, TRAIN_XENT
from fastgrad.kernels import cpu_mlp, cpu_resmlp
from fastgrad.kernels.norms import sum_squares
from fastgrad.rng import stream_key, uniform


class Optimizer(NamedTuple):
    """The optimiser: ``kind`` (codes.SGD, MOMENTUM, NESTEROV, ADAM, RMSPROP), learning rate,
    momentum (MOMENTUM, NESTEROV), L2 coefficient on the weights, the global-norm clipping
    threshold (0: none), Adam's ``beta1`` and ``beta2``, the ``eps`` of Adam and RMSprop,
    RMSprop's smoothing constant ``alpha``, and the linear warm-up's length in updates (0: none):
    update t (1, 2, ...) uses the rate ``lr * min(1, t / warmup)``."""

    kind: int
    lr: float
    momentum: float
    weight_decay: float
    clip: float
    beta1: float
    beta2: float
    eps: float
    alpha: float
    warmup: int


class Data(NamedTuple):
    """Training inputs and targets, and held-out inputs and targets (may be empty)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Record(NamedTuple):
    """What a training run records per trial.

    ``params0``, ``params1`` (T, P): packed parameters before and after training;
    ``loss``, ``accuracy``, ``test_accuracy`` (T, E); ``grad_w``, ``grad_b`` (T, E, layers);
    ``grad_h`` (T, E, steps) for recurrent cells, (T, E, L) for residual MLPs (mean
    ||dLoss/dh_{l-1}|| per layer), (T, 0, 0) for MLPs; ``diverged`` (T,).
    """

    params0: np.ndarray
    params1: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    test_accuracy: np.ndarray
    grad_w: np.ndarray
    grad_b: np.ndarray
    grad_h: np.ndarray
    diverged: np.ndarray


@jit(inline="always")
def loss_gradient(h: np.ndarray, y: np.ndarray, loss: int, dh: np.ndarray) -> tuple[float, int]:
    """Loss of a minibatch (mean over rows) and dLoss/dh_L into ``dh``; also the correct count.

    ``h`` and ``y`` are (B, out); for TRAIN_XENT ``y`` is one-hot and ``h`` the logits,
    otherwise the loss is 0.5 * sum((h - y)^2) / B.
    """
    batch, width = h.shape
    total = 0.0
    correct = 0
    for i in range(batch):
        if loss == TRAIN_XENT:
            top = h[i, 0]
            best = 0
            for j in range(1, width):
                if h[i, j] > top:
                    top = h[i, j]
                    best = j
            norm = 0.0
            for j in range(width):
                norm += np.exp(h[i, j] - top)
            label = 0
            for j in range(width):
                if y[i, j] > 0.5:
                    label = j
            for j in range(width):
                p = np.exp(h[i, j] - top) / norm
                dh[i, j] = (p - y[i, j]) / batch
            total += np.log(norm) + top - h[i, label]
            correct += 1 if best == label else 0
        else:
            for j in range(width):
                diff = h[i, j] - y[i, j]
                dh[i, j] = diff / batch
                total += 0.5 * diff * diff
    return total / batch, correct


@jit(inline="always")
def epoch_order(seed: int, trial: int, epoch: int, keys: np.ndarray) -> np.ndarray:
    """The trial's visiting order of the training set in this epoch (a seeded permutation).

    The indices of the stream's uniforms in increasing order: ``np.argsort(keys, kind="stable")``.
    """
    key = stream_key(seed, trial, ORDER + epoch)
    for i in range(keys.size):
        keys[i] = uniform(key, i)
    return argsort_stable(keys)


@jit
def argsort_stable(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` of a 1-D float array without nan, by a bottom-up merge sort.

    Written out because NumPy's sorts cost every training kernel ~4 s of compilation (Numba's
    quicksort and its helpers); this loop compiles in a fraction of a second.
    """
    n = keys.size
    order = np.arange(n)
    spare = np.empty(n, dtype=order.dtype)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j = lo, mid
            for k in range(lo, hi):
                if i < mid and (j >= hi or keys[order[i]] <= keys[order[j]]):
                    spare[k] = order[i]
                    i += 1
                else:
                    spare[k] = order[j]
                    j += 1
        order, spare = spare, order
        width *= 2
    return order


@jit(inline="always")
def clip_scale(norm_squared: float, clip: float) -> float:
    """The factor that clips a gradient of squared norm ``norm_squared`` to ``clip`` (1 if ``clip`` is 0)."""
    if clip > 0.0:
        norm = np.sqrt(norm_squared)
        if norm > clip:
            return clip / norm
    return 1.0


@jit(inline="always")
def second_size(kind: int, size: int) -> int:
    """Length of the second state array of ``size`` parameters: ``size`` for Adam and RMSprop, else 0."""
    return size if kind == ADAM or kind == RMSPROP else 0


@jit(inline="always")
def optimizer_step(param: np.ndarray, grad: np.ndarray, first: np.ndarray, second: np.ndarray, opt: Optimizer,
                   decay: float, scale: float, step: int) -> None:
    """One update of a packed parameter vector, in PyTorch's form (``torch.optim``).

    ``scale`` is the clipping factor and ``decay`` the L2 coefficient: every optimiser sees
    ``g = grad * scale + decay * param``. ``first`` is the momentum buffer (MOMENTUM,
    NESTEROV) or Adam's first moment m; ``second`` the running mean of g^2 (Adam's v,
    RMSprop's square average; may be empty for the others). Both start at 0 for each trial.
    ``step`` counts this trial's updates, this one included (1, 2, ...): Adam's bias correction and
    the warm-up's rate ``lr * min(1, step / warmup)`` (PyTorch's ``LambdaLR`` stepped after each update).
    """
    lr = opt.lr if opt.warmup <= 0 else opt.lr * min(1.0, step / opt.warmup)
    if opt.kind == ADAM:
        _adam_step(param, grad, first, second, opt, lr, decay, scale, step)
        return
    if opt.kind == RMSPROP:
        _rmsprop_step(param, grad, second, opt, lr, decay, scale)
        return
    momentum = opt.momentum
    velocity = first
    for i in range(param.size):
        g = grad[i] * scale + decay * param[i]
        if opt.kind == SGD:
            param[i] -= lr * g
        else:
            velocity[i] = momentum * velocity[i] + g
            param[i] -= lr * (g + momentum * velocity[i] if opt.kind == NESTEROV else velocity[i])


@jit(inline="always")
def _adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, opt: Optimizer, lr: float,
               decay: float, scale: float, step: int) -> None:
    """Adam (``torch.optim.Adam``, amsgrad=False): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    p -= lr m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t).

    Evaluated in PyTorch's order: m moves towards g by (1 - b1) (``lerp``), and
    p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """
    b1, b2, eps = opt.beta1, opt.beta2, opt.eps
    t = float(step)  # a float power, as PyTorch's (not repeated multiplication)
    step_size = lr / (1.0 - b1**t)
    root2 = math.sqrt(1.0 - b2**t)
    w1 = 1.0 - b1
    w2 = 1.0 - b2
    for i in range(param.size):
        g = grad[i] * scale + decay * param[i]
        m[i] += w1 * (g - m[i])
        v[i] = v[i] * b2 + w2 * g * g
        param[i] -= step_size * (m[i] / (math.sqrt(v[i]) / root2 + eps))


@jit(inline="always")
def _rmsprop_step(param: np.ndarray, grad: np.ndarray, v: np.ndarray, opt: Optimizer, lr: float, decay: float,
                  scale: float) -> None:
    """RMSprop (``torch.optim.RMSprop``, centered=False, momentum=0): v = a v + (1 - a) g^2,
    p -= lr g / (sqrt(v) + eps)."""
    a, eps = opt.alpha, opt.eps
    w = 1.0 - a
    for i in range(param.size):
        g = grad[i] * scale + decay * param[i]
        v[i] = v[i] * a + w * g * g
        param[i] -= lr * (g / (math.sqrt(v[i]) + eps))


@jit(inline="always")
def begin_trial(out: Record, k: int, p: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Record trial row ``k``'s initial parameters (packed in ``p``) and zero its optimiser state."""
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
def diverged_epoch(out: Record, k: int, epoch: int) -> None:
    """Mark epoch ``epoch`` of row ``k`` as after divergence: every record nan."""
    out.loss[k, epoch] = np.nan
    out.accuracy[k, epoch] = np.nan
    out.test_accuracy[k, epoch] = np.nan
    out.grad_w[k, epoch] = np.nan
    out.grad_b[k, epoch] = np.nan
    if out.grad_h.shape[1] > 0:
        out.grad_h[k, epoch] = np.nan


def _is(net: Any, cls: type) -> bool:
    """Whether the Numba type ``net`` is the named tuple ``cls`` (a kernel file's ``Net`` or ``Work``)."""
    return isinstance(net, types.BaseNamedTuple) and getattr(net, "instance_class", None) is cls


def model_workspace(net: Any, batch: int, dtype: Any) -> Any:
    """The ``Work`` of ``net``'s model (MLP or residual MLP) for ``batch`` rows (compiled code only)."""
    raise NotImplementedError("compiled code only")


def model_forward(w: np.ndarray, b: np.ndarray, x: np.ndarray, net: Any, work: Any, q: np.ndarray) -> None:
    """``net``'s model's ``forward`` (compiled code only)."""
    raise NotImplementedError("compiled code only")


def model_backward(w: np.ndarray, net: Any, work: Any, gw: np.ndarray, gb: np.ndarray, grad_w: np.ndarray,
                   grad_b: np.ndarray, delta: np.ndarray, grad_h: np.ndarray) -> None:
    """``net``'s model's ``backward``; ``grad_h`` (L,) is written by the residual MLP only (compiled code only)."""
    raise NotImplementedError("compiled code only")


def mlp_work(work: Any) -> cpu_mlp.Work:
    """The MLP buffers of a ``Work`` (h_l at ``hoff``, dLoss/dh_L in ``dh``): itself, or the residual MLP's ``mlp``."""
    raise NotImplementedError("compiled code only")


# The four dispatchers are called, not IR-inlined: inlining a lambda around an inline="always" pass
# raised Numba's NumbaIRAssumptionWarning (variables out of scope); as calls, the MLP's training
# kernel compiles as before (10 s, fresh cache) and its records are bitwise unchanged.


@overload(model_workspace)
def _model_workspace_impl(net, batch, dtype):  # type: ignore[no-untyped-def]
    if _is(net, cpu_resmlp.Net):
        return lambda net, batch, dtype: cpu_resmlp.workspace(net.dims, batch, dtype, net.layer_norm)
    if _is(net, cpu_mlp.Net):
        return lambda net, batch, dtype: cpu_mlp.workspace(net.dims, batch, dtype)
    return None


@overload(model_forward)
def _model_forward_impl(w, b, x, net, work, q):  # type: ignore[no-untyped-def]
    if _is(net, cpu_resmlp.Net):
        return lambda w, b, x, net, work, q: cpu_resmlp.forward(w, b, x, net, work, q)
    if _is(net, cpu_mlp.Net):
        return lambda w, b, x, net, work, q: cpu_mlp.forward(w, b, x, net, work, q)
    return None


@overload(model_backward)
def _model_backward_impl(w, net, work, gw, gb, grad_w, grad_b, delta, grad_h):  # type: ignore[no-untyped-def]
    if _is(net, cpu_resmlp.Net):
        return lambda w, net, work, gw, gb, grad_w, grad_b, delta, grad_h: cpu_resmlp.backward(
            w, net, work, gw, gb, grad_w, grad_b, delta, grad_h)
    if _is(net, cpu_mlp.Net):
        return lambda w, net, work, gw, gb, grad_w, grad_b, delta, grad_h: cpu_mlp.backward(
            w, net.dims, work, gw, gb, grad_w, grad_b, delta)
    return None


@overload(mlp_work)
def _mlp_work_impl(work):  # type: ignore[no-untyped-def]
    if _is(work, cpu_resmlp.Work):
        return lambda work: work.mlp
    if _is(work, cpu_mlp.Work):
        return lambda work: work
    return None


@kernel
def train_mlp(net: cpu_mlp.Net | cpu_resmlp.Net, init: cpu_mlp.Init, seed: int, trial0: int, data: Data,
              opt: Optimizer, epochs: int, batch: int, out: Record, lo: int, hi: int) -> None:
    """Train trials ``trial0 + lo .. trial0 + hi - 1`` into rows lo .. hi - 1 of ``out``.

    ``net`` is an MLP's or a residual MLP's ``Net`` (the kernel compiles once for each);
    ``net.loss`` is codes.TRAIN_MSE or TRAIN_XENT. Parameters are packed [W_1 .. W_L, b_1 .. b_L]
    (both models: the residual MLP has the MLP's layers and draws). Per epoch: mean minibatch
    loss and accuracy, test accuracy, mean per-layer ||dL/dW_l|| and ||dL/db_l|| (and, when
    ``out.grad_h`` has epochs, the residual MLP's ||dL/dh_{l-1}||); ``out.diverged`` the first
    non-finite epoch or -1.
    """
    dims = net.dims
    depth = dims.size - 1
    x, y, x_test = data.x, data.y, data.x_test
    n, n_out = y.shape
    n_w, n_b = cpu_mlp.sizes(dims)
    steps = n // batch
    dtype = x.dtype
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    vw = np.empty(n_w)
    vb = np.empty(n_b)
    sw = np.empty(second_size(opt.kind, n_w))
    sb = np.empty(second_size(opt.kind, n_b))
    gw = np.empty(n_w)
    gb = np.empty(n_b)
    work = model_workspace(net, batch, dtype)
    base = mlp_work(work)
    xb = np.empty((batch, dims[0]), dtype=dtype)
    yb = np.empty((batch, n_out), dtype=dtype)
    dh = np.empty((batch, n_out), dtype=dtype)
    q = np.empty(depth)
    nw = np.empty(depth)
    nb = np.empty(depth)
    nd = np.empty(depth)
    nh = np.empty(depth)
    keep_h = out.grad_h.shape[1] > 0
    keys = np.empty(n)
    m = x_test.shape[0]
    test_work = model_workspace(net, max(m, 1), dtype)
    test_base = mlp_work(test_work)
    tdh = np.empty((max(m, 1), n_out), dtype=dtype)
    for k in range(lo, hi):
        trial = trial0 + k
        cpu_mlp.draw_weights(w, b, seed, trial, dims, init)
        for i in range(n_w):
            out.params0[k, i] = w[i]
        for i in range(n_b):
            out.params0[k, n_w + i] = b[i]
        vw[:] = 0.0
        vb[:] = 0.0
        sw[:] = 0.0
        sb[:] = 0.0
        updates = 0
        out.diverged[k] = -1
        for epoch in range(epochs):
            if out.diverged[k] >= 0:
                diverged_epoch(out, k, epoch)
                continue
            order = epoch_order(seed, trial, epoch, keys)
            total = 0.0
            correct = 0
            out.grad_w[k, epoch] = 0.0
            out.grad_b[k, epoch] = 0.0
            if keep_h:
                out.grad_h[k, epoch] = 0.0
            for s in range(steps):
                for r in range(batch):
                    row = order[s * batch + r]
                    for j in range(dims[0]):
                        xb[r, j] = x[row, j]
                    for j in range(n_out):
                        yb[r, j] = y[row, j]
                model_forward(w, b, xb, net, work, q)
                logits = base.hs[base.hoff[depth]:base.hoff[depth + 1]].reshape(batch, n_out)
                value, hits = loss_gradient(logits, yb, net.loss, dh)
                total += value
                correct += hits
                copy(base.dh[: batch * n_out], dh.reshape(batch * n_out))
                model_backward(w, net, work, gw, gb, nw, nb, nd, nh)
                for l in range(depth):
                    out.grad_w[k, epoch, l] += nw[l] / steps
                    out.grad_b[k, epoch, l] += nb[l] / steps
                if keep_h:
                    for l in range(depth):
                        out.grad_h[k, epoch, l] += nh[l] / steps
                scale = clip_scale(sum_squares(gw) + sum_squares(gb), opt.clip)
                updates += 1
                for part in range(2):  # the weights (with L2), then the biases: one call site, compiled once
                    weights = part == 0
                    optimizer_step(w if weights else b, gw if weights else gb, vw if weights else vb,
                                   sw if weights else sb, opt, opt.weight_decay if weights else 0.0, scale, updates)
            out.loss[k, epoch] = total / steps
            out.accuracy[k, epoch] = correct / (steps * batch)
            if not (np.isfinite(total) and np.isfinite(sum_squares(w))):
                out.diverged[k] = epoch
            out.test_accuracy[k, epoch] = np.nan
            if net.loss == TRAIN_XENT and m > 0:
                model_forward(w, b, x_test, net, test_work, q)
                logits = test_base.hs[test_base.hoff[depth]:test_base.hoff[depth + 1]].reshape(m, n_out)
                _, hits = loss_gradient(logits, data.y_test, net.loss, tdh)
                out.test_accuracy[k, epoch] = hits / m
        for i in range(n_w):
            out.params1[k, i] = w[i]
        for i in range(n_b):
            out.params1[k, n_w + i] = b[i]

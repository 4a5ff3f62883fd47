"""Training many small MLPs at once, one trial per thread (CPU).

Each trial starts from its own drawn weights, visits the training set in its
own order (a permutation from the trial's stream) and takes minibatch steps
with SGD, momentum or Nesterov momentum, optional L2 weight decay (weights
only) and optional clipping of the global gradient norm (PyTorch's
``clip_grad_norm_`` before the optimizer step). Forward and backward are the
engine's (``cpu_mlp.forward``/``backward``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastgrad._numba import jit
from fastgrad.activations import apply
from fastgrad.kernels.cpu_mlp import backward, draw_weights, forward, layer_offsets
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import sum_squares
from fastgrad.rng import stream_key, uniform

MSE, XENT = 0, 2
SGD, MOMENTUM, NESTEROV = 0, 1, 2
ORDER_TENSOR = 1_000_000  # epoch e's order comes from tensor ORDER_TENSOR + e


@jit
def loss_gradient(h: np.ndarray, y: np.ndarray, loss: int, dh: np.ndarray) -> tuple[float, int]:
    """Loss of a minibatch (mean over rows) and dLoss/dh_L into ``dh``; also the correct count.

    ``h`` and ``y`` are (B, out); for XENT ``y`` is one-hot and ``h`` the logits.
    """
    batch, width = h.shape
    total = 0.0
    correct = 0
    for i in range(batch):
        if loss == XENT:
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


@jit
def epoch_order(seed: int, trial: int, epoch: int, keys: np.ndarray) -> np.ndarray:
    """The trial's visiting order of the training set in this epoch (a seeded permutation)."""
    key = stream_key(seed, trial, ORDER_TENSOR + epoch)
    for i in range(keys.size):
        keys[i] = uniform(key, i)
    return np.argsort(keys)


@jit
def sgd_step(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, opt: int, lr: float, momentum: float,
             decay: float, scale: float) -> None:
    """One update of a packed parameter vector; ``scale`` is the clipping factor (1 if none)."""
    for i in range(param.size):
        g = grad[i] * scale + decay * param[i]
        if opt == SGD:
            param[i] -= lr * g
        else:
            velocity[i] = momentum * velocity[i] + g
            param[i] -= lr * (g + momentum * velocity[i] if opt == NESTEROV else velocity[i])


@jit(parallel=True)
def train_mlp(seed, trial0, dims, w_kind, w_scale, b_kind, b_scale, act, alpha, loss, x, y, x_test, y_test,  # type: ignore[no-untyped-def]
              opt, lr, momentum, weight_decay, clip, epochs, batch, w_init, w_final, out_loss, out_acc,
              out_test_acc, out_gw, out_gb, out_diverged):
    """Train trials ``trial0 ..``; per epoch: mean minibatch loss and accuracy, test accuracy,
    mean per-layer ||dL/dW_l|| and ||dL/db_l||; ``out_diverged`` the first non-finite epoch or -1.

    ``w_init``, ``w_final`` (T, P + Pb): the packed weights and biases before and after training.
    """
    depth = dims.size - 1
    n, n_out = y.shape
    n_w = 0
    for l in range(depth):
        n_w += dims[l] * dims[l + 1]
    n_b = 0
    for l in range(depth):
        n_b += dims[l + 1]
    steps = n // batch
    for k in prange(out_loss.shape[0]):
        trial = trial0 + k
        w = np.empty(n_w, dtype=x.dtype)
        b = np.empty(n_b, dtype=x.dtype)
        draw_weights(w, b, seed, trial, dims, w_kind, w_scale, b_kind, b_scale)
        w_init[k, :n_w] = w
        w_init[k, n_w:] = b
        vw = np.zeros(n_w)
        vb = np.zeros(n_b)
        gw = np.empty(n_w)
        gb = np.empty(n_b)
        hoff = layer_offsets(dims, batch)
        hs = np.empty(hoff[depth + 1], dtype=x.dtype)
        ds = np.empty(hoff[depth + 1] - hoff[1], dtype=x.dtype)
        xb = np.empty((batch, dims[0]), dtype=x.dtype)
        yb = np.empty((batch, n_out), dtype=x.dtype)
        dh = np.empty((batch, n_out), dtype=x.dtype)
        q = np.empty(depth)
        nw = np.empty(depth)
        nb = np.empty(depth)
        nd = np.empty(depth)
        out_diverged[k] = -1
        keys = np.empty(n)
        for epoch in range(epochs):
            if out_diverged[k] >= 0:
                out_loss[k, epoch] = np.nan
                out_acc[k, epoch] = np.nan
                out_test_acc[k, epoch] = np.nan
                out_gw[k, epoch] = np.nan
                out_gb[k, epoch] = np.nan
                continue
            order = epoch_order(seed, trial, epoch, keys)
            total = 0.0
            correct = 0
            out_gw[k, epoch] = 0.0
            out_gb[k, epoch] = 0.0
            for s in range(steps):
                for r in range(batch):
                    xb[r] = x[order[s * batch + r]]
                    yb[r] = y[order[s * batch + r]]
                forward(w, b, xb, dims, act, alpha, hoff, hs, ds, q)
                value, hits = loss_gradient(hs[hoff[depth]:hoff[depth + 1]].reshape(batch, n_out), yb, loss, dh)
                total += value
                correct += hits
                backward(w, dims, hoff, hs, ds, dh.copy().reshape(batch * n_out), gw, gb, nw, nb, nd)
                out_gw[k, epoch] += nw / steps
                out_gb[k, epoch] += nb / steps
                scale = 1.0
                if clip > 0.0:
                    norm = np.sqrt(sum_squares(gw) + sum_squares(gb))
                    if norm > clip:
                        scale = clip / norm
                sgd_step(w, gw, vw, opt, lr, momentum, weight_decay, scale)
                sgd_step(b, gb, vb, opt, lr, momentum, 0.0, scale)
            out_loss[k, epoch] = total / steps
            out_acc[k, epoch] = correct / (steps * batch)
            if not (np.isfinite(total) and np.isfinite(sum_squares(w))):
                out_diverged[k] = epoch
            out_test_acc[k, epoch] = np.nan
            if loss == XENT and x_test.shape[0] > 0:
                m = x_test.shape[0]
                thoff = layer_offsets(dims, m)
                ths = np.empty(thoff[depth + 1], dtype=x.dtype)
                tds = np.empty(thoff[depth + 1] - thoff[1], dtype=x.dtype)
                forward(w, b, x_test, dims, act, alpha, thoff, ths, tds, q)
                logits = ths[thoff[depth]:thoff[depth + 1]].reshape(m, n_out)
                tdh = np.empty((m, n_out), dtype=x.dtype)
                _, hits = loss_gradient(logits, y_test, loss, tdh)
                out_test_acc[k, epoch] = hits / m
        w_final[k, :n_w] = w
        w_final[k, n_w:] = b


@jit
def _rnn_forward_backward(whh: np.ndarray, wxh: np.ndarray, b: np.ndarray, wo: np.ndarray, bo: np.ndarray,
                          x: np.ndarray, y: np.ndarray, act: int, alpha: float, hs: np.ndarray, ds: np.ndarray,
                          g_whh: np.ndarray, g_wxh: np.ndarray, g_b: np.ndarray, g_wo: np.ndarray,
                          g_bo: np.ndarray, grad_h: np.ndarray) -> float:
    """One minibatch of the RNN regressor: x (B, S, d), y (B, k); the read-out is linear on h_S.

    Returns the loss 0.5 * sum((h_S W_o + b_o - y)^2) / B; writes the gradients and ||dL/dh_t||.
    """
    batch, steps, d_in = x.shape
    n = whh.shape[0]
    z = np.empty((batch, n), dtype=hs.dtype)
    hs[0] = 0.0
    for t in range(steps):
        np.dot(hs[t], whh, z)
        z += np.dot(np.ascontiguousarray(x[:, t, :]), wxh)
        for i in range(batch):
            for j in range(n):
                z[i, j] += b[j]
        apply(act, alpha, z.reshape(batch * n), hs[t + 1].reshape(batch * n), ds[t].reshape(batch * n))
    out = np.dot(hs[steps], wo)
    total = 0.0
    err = np.empty_like(out)
    for i in range(batch):
        for j in range(out.shape[1]):
            e = out[i, j] + bo[j] - y[i, j]
            err[i, j] = e / batch
            total += 0.5 * e * e
    np.dot(hs[steps].T, err, g_wo)
    for j in range(err.shape[1]):
        g_bo[j] = np.sum(err[:, j])
    g = np.dot(err, wo.T)
    g_whh[:, :] = 0.0
    g_wxh[:, :] = 0.0
    g_b[:] = 0.0
    for t in range(steps - 1, -1, -1):
        grad_h[t] = np.sqrt(sum_squares(g.reshape(batch * n)))
        g *= ds[t]
        g_whh += np.dot(hs[t].T, g)
        g_wxh += np.dot(np.ascontiguousarray(x[:, t, :]).T, g)
        for j in range(n):
            g_b[j] += np.sum(g[:, j])
        g = np.dot(g, whh.T)
    return total / batch


@jit(parallel=True)
def train_rnn(seed, trial0, hidden, w_kind, w_scale, x_scale, b_kind, b_scale, act, alpha, x, y, opt, lr,  # type: ignore[no-untyped-def]
              momentum, weight_decay, clip, epochs, batch, p_init, p_final, out_loss, out_gw, out_gb, out_gh,
              out_diverged):
    """Train trials of an RNN with a linear read-out on h_S (regression, e.g. the adding task).

    Parameters are packed [W_hh, W_xh, b, W_o, b_o]; W_o ~ N(0, 1/hidden), b_o = 0. Per epoch: mean
    minibatch loss, mean norms of dL/dW_xh, dL/dW_hh, dL/dW_o (``out_gw``) and dL/db, dL/db_o
    (``out_gb``), and the mean ||dL/dh_t|| per step (``out_gh``).
    """
    n_samples, steps, d_in = x.shape
    k_out = y.shape[1]
    n = hidden
    sizes = (n * n, d_in * n, n, n * k_out, k_out)
    total_size = sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4]
    n_steps = n_samples // batch
    for k in prange(out_loss.shape[0]):
        trial = trial0 + k
        p = np.zeros(total_size, dtype=x.dtype)
        whh = p[: sizes[0]].reshape(n, n)
        wxh = p[sizes[0] : sizes[0] + sizes[1]].reshape(d_in, n)
        b = p[sizes[0] + sizes[1] : sizes[0] + sizes[1] + n]
        o3 = sizes[0] + sizes[1] + n
        wo = p[o3 : o3 + sizes[3]].reshape(n, k_out)
        bo = p[o3 + sizes[3] :]
        draw_matrix(whh, w_kind, w_scale, seed, trial, 2)
        draw_matrix(wxh, 0, x_scale, seed, trial, 3)
        draw_vector(b, b_kind, b_scale, seed, trial, 4)
        draw_matrix(wo, 0, 1.0 / np.sqrt(n), seed, trial, 5)
        p_init[k] = p
        grad = np.zeros(total_size)
        vel = np.zeros(total_size)
        gwhh = grad[: sizes[0]].reshape(n, n)
        gwxh = grad[sizes[0] : sizes[0] + sizes[1]].reshape(d_in, n)
        gb = grad[sizes[0] + sizes[1] : o3]
        gwo = grad[o3 : o3 + sizes[3]].reshape(n, k_out)
        gbo = grad[o3 + sizes[3] :]
        hs = np.empty((steps + 1, batch, n), dtype=x.dtype)
        ds = np.empty((steps, batch, n), dtype=x.dtype)
        gh = np.empty(steps)
        xb = np.empty((batch, steps, d_in), dtype=x.dtype)
        yb = np.empty((batch, k_out), dtype=x.dtype)
        keys = np.empty(n_samples)
        out_diverged[k] = -1
        for epoch in range(epochs):
            if out_diverged[k] >= 0:
                out_loss[k, epoch] = np.nan
                out_gw[k, epoch] = np.nan
                out_gb[k, epoch] = np.nan
                out_gh[k, epoch] = np.nan
                continue
            order = epoch_order(seed, trial, epoch, keys)
            total = 0.0
            out_gw[k, epoch] = 0.0
            out_gb[k, epoch] = 0.0
            out_gh[k, epoch] = 0.0
            for s in range(n_steps):
                for r in range(batch):
                    xb[r] = x[order[s * batch + r]]
                    yb[r] = y[order[s * batch + r]]
                total += _rnn_forward_backward(whh, wxh, b, wo, bo, xb, yb, act, alpha, hs, ds, gwhh, gwxh, gb,
                                               gwo, gbo, gh)
                out_gw[k, epoch, 0] += np.sqrt(sum_squares(gwxh.ravel())) / n_steps
                out_gw[k, epoch, 1] += np.sqrt(sum_squares(gwhh.ravel())) / n_steps
                out_gw[k, epoch, 2] += np.sqrt(sum_squares(gwo.ravel())) / n_steps
                out_gb[k, epoch, 0] += np.sqrt(sum_squares(gb)) / n_steps
                out_gb[k, epoch, 1] += np.sqrt(sum_squares(gbo)) / n_steps
                out_gh[k, epoch] += gh / n_steps
                scale = 1.0
                if clip > 0.0:
                    norm = np.sqrt(sum_squares(grad))
                    if norm > clip:
                        scale = clip / norm
                # L2 on W_hh, W_xh and W_o; not on the biases.
                for lo, hi, wd in ((0, sizes[0] + sizes[1], weight_decay), (sizes[0] + sizes[1], o3, 0.0),
                                   (o3, o3 + sizes[3], weight_decay), (o3 + sizes[3], total_size, 0.0)):
                    sgd_step(p[lo:hi], grad[lo:hi], vel[lo:hi], opt, lr, momentum, wd, scale)
            out_loss[k, epoch] = total / n_steps
            if not (np.isfinite(total) and np.isfinite(sum_squares(p))):
                out_diverged[k] = epoch
        p_final[k] = p

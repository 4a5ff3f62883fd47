"""The residual MLP's kernel file: forward and backward pass of a residual MLP, per trial (CPU).

Definitions (docs/architecture.md). Widths n_0, n (hidden), n_L as the MLP's.
Layer 1 (n_0 -> n) and layer L (n -> n_L) are plain MLP layers,
``z_l = h_{l-1} W_l + b_l``, ``h_l = phi(z_l)``. Layers l = 2 .. L - 1 are
residual blocks: ``h_l = h_{l-1} + a phi(z_l)`` with ``z_l = x_l W_l + b_l``,
``x_l = h_{l-1}``, or with pre-LayerNorm ``x_l = LN(h_{l-1})``,
``LN(h) = (h - mean(h)) / s``, ``s = sqrt(var(h) + eps)`` over each row's n
units (biased variance, no affine parameters).

Backward, with ``g = dLoss/dh_l``: a plain layer has ``delta_l = g phi'(z_l)``,
``dLoss/dh_{l-1} = delta_l W_l^T``; a block has ``delta_l = a g phi'(z_l)``,
``du = delta_l W_l^T`` and ``dLoss/dh_{l-1} = g + du`` (without LN) or
``g + (du - mean(du) - u mean(du u)) / s`` row by row (with LN, u = x_l).
Always ``dLoss/dW_l = x_l^T delta_l``, ``dLoss/db_l = sum_batch delta_l``.

The draws are the MLP's, by design: trial k of a residual net uses the weights,
biases, inputs and targets of trial k of the plain MLP of the same widths and
init (:func:`fastgrad.kernels.cpu_mlp.draw_trial`, the same packed layout and
tensor ids), so the two are paired trial by trial. :class:`Init`,
:func:`draw_trial` and :func:`draw_arrays` are the MLP's.

Index l is 0-based in the code: blocks are ``0 < l < L - 1``. Entry points
(:func:`generated`, :func:`explicit`) run the rows ``lo .. hi - 1`` on the
calling thread without the GIL, with buffers allocated once per block of trials.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._numba import REDUCE_FASTMATH, call, copy, jit, kernel
from fastgrad.codes import MLP_MSE
from fastgrad.kernels import cpu_mlp
from fastgrad.kernels.cpu_mlp import Init, draw_arrays, draw_trial, sizes
from fastgrad.kernels.norms import gram_pays, product_norm, sum_squares

__all__ = ["Init", "Net", "Stats", "Work", "backward", "draw_arrays", "draw_trial", "explicit", "forward",
           "generated", "trial", "workspace"]


class Net(NamedTuple):
    """What one residual-MLP trial computes, apart from its numbers.

    Attributes
    ----------
    dims : int64 array (L + 1,)
        Widths n_0 .. n_L (n_1 = .. = n_{L-1}).
    hidden, last : FirstClass
        Activation loop (``activations.loop``) of layers 0 .. L - 2, and of layer L - 1.
    alpha : float64 array (L,)
        Activation parameter per layer.
    loss : int
        ``codes.MLP_MSE`` or ``codes.MLP_PROBE``.
    residual : float
        The branch scale a.
    layer_norm : bool
        Pre-LayerNorm in the blocks.
    eps : float
        LayerNorm's eps.
    """

    dims: np.ndarray
    hidden: Any
    last: Any
    alpha: np.ndarray
    loss: int
    residual: float
    layer_norm: bool
    eps: float


class Stats(NamedTuple):
    """The per-trial outputs, each (T, L) in the run's dtype.

    Norms of dLoss/dW_l, dLoss/db_l, delta_l = dLoss/dz_l, mean(z_l^2), and
    ``grad_h[l] = ||dLoss/dh_l||_F`` (0-based: the gradient reaching layer l's
    input; column 0 is dLoss/dh_0, the input's).
    """

    grad_w: np.ndarray
    grad_b: np.ndarray
    delta: np.ndarray
    q: np.ndarray
    grad_h: np.ndarray


class Work(NamedTuple):
    """One thread's buffers, reused from trial to trial.

    ``mlp`` is the MLP's :class:`~fastgrad.kernels.cpu_mlp.Work` (h_l, phi'(z_l),
    z, dLoss/dh, dLoss/db, dLoss/dW, at its offsets ``hoff``); ``us`` holds the
    LayerNorm output x_l = LN(h_{l-1}) of every block at ``us[hoff[l] - hoff[1]:
    hoff[l+1] - hoff[1]]`` (empty without LN) and ``inv_std`` its rows' 1/s at
    ``inv_std[l B:(l+1) B]``; ``branch`` holds one block's phi(z_l) (forward)
    or delta_l (backward, where dLoss/dh_l is still needed for the skip).
    """

    mlp: cpu_mlp.Work
    us: np.ndarray
    inv_std: np.ndarray
    branch: np.ndarray


@jit(inline="always")
def workspace(dims: np.ndarray, batch: int, dtype: Any, layer_norm: bool) -> Work:
    """A :class:`Work` for residual MLPs of widths ``dims`` and ``batch`` rows: allocate once per block of trials."""
    base = cpu_mlp.workspace(dims, batch, dtype)
    depth = dims.size - 1
    n_u = base.hoff[depth - 1] - base.hoff[1] if layer_norm else 0
    return Work(base, np.empty(n_u, dtype=dtype), np.empty(depth * batch), np.empty(base.z.size, dtype=dtype))


@jit(fastmath=REDUCE_FASTMATH)
def row_sum(a: np.ndarray) -> float:
    """sum(a) in float64 (``reassoc``: vector lanes; not inlined, so the flag stays here, as in ``sum_squares``)."""
    acc = 0.0
    for j in range(a.size):
        acc += np.float64(a[j])
    return acc


@jit(fastmath=REDUCE_FASTMATH)
def row_dot(a: np.ndarray, b: np.ndarray, shift: float) -> float:
    """sum((a - shift) * (b - shift)) in float64, vectorised like :func:`row_sum`."""
    acc = 0.0
    for j in range(a.size):
        acc += (np.float64(a[j]) - shift) * (np.float64(b[j]) - shift)
    return acc


@jit(inline="always")
def layer_norm(h: np.ndarray, u: np.ndarray, inv_std: np.ndarray, n: int, eps: float) -> None:
    """u = (h - mean(h)) / sqrt(var(h) + eps) per row of n units (biased variance); ``inv_std`` gets each row's 1/s.

    Two passes, in float64: the mean, then the squared deviations (no cancellation of a large mean).
    """
    for i in range(inv_std.size):
        row = h[i * n : (i + 1) * n]
        mean = row_sum(row) / n
        inv = 1.0 / np.sqrt(row_dot(row, row, mean) / n + eps)
        inv_std[i] = inv
        out = u[i * n : (i + 1) * n]
        for j in range(n):
            out[j] = (row[j] - mean) * inv


@jit(inline="always")
def layer_norm_backward(du: np.ndarray, u: np.ndarray, inv_std: np.ndarray, n: int) -> None:
    """du <- (du - mean(du) - u mean(du u)) / s per row, in place: dLoss/dh from dLoss/du, u = LN(h)."""
    for i in range(inv_std.size):
        row = du[i * n : (i + 1) * n]
        ur = u[i * n : (i + 1) * n]
        m1 = row_sum(row) / n
        m2 = row_dot(row, ur, 0.0) / n
        inv = inv_std[i]
        for j in range(n):
            row[j] = (row[j] - m1 - ur[j] * m2) * inv


@jit(inline="always")
def forward(w: np.ndarray, b: np.ndarray, x: np.ndarray, net: Net, work: Work, q: np.ndarray) -> None:
    """Keeps h_l in ``work.mlp.hs``, phi'(z_l) in ``work.mlp.ds``, LN(h_{l-1}) in ``work.us``; mean(z_l^2) in ``q``."""
    dims = net.dims
    depth = dims.size - 1
    batch = x.shape[0]
    hoff, hs, ds = work.mlp.hoff, work.mlp.hs, work.mlp.ds
    h0 = hoff[1]
    copy(hs[:h0], x.reshape(h0))
    woff = 0
    boff = 0
    for l in range(depth):
        n_in, n_out = dims[l], dims[l + 1]
        block = 0 < l < depth - 1
        h_in = hs[hoff[l] : hoff[l + 1]]
        x_in = h_in
        if block and net.layer_norm:
            x_in = work.us[hoff[l] - h0 : hoff[l + 1] - h0]
            layer_norm(h_in, x_in, work.inv_std[l * batch : (l + 1) * batch], n_in, net.eps)
        zf = work.mlp.z[: batch * n_out]
        zl = zf.reshape(batch, n_out)
        np.dot(x_in.reshape(batch, n_in), w[woff : woff + n_in * n_out].reshape(n_in, n_out), zl)
        for i in range(batch):
            for j in range(n_out):
                zl[i, j] += b[boff + j]
        q[l] = sum_squares(zf) / zf.size
        h_out = hs[hoff[l + 1] : hoff[l + 2]]
        # A block's phi(z_l) goes to `branch`, then onto the stream; a plain layer's straight to h_l.
        out = work.branch[: batch * n_out] if block else h_out
        call(net.last if l == depth - 1 else net.hidden, zf, out, ds[hoff[l + 1] - h0 : hoff[l + 2] - h0],
             net.alpha[l])
        if block:
            for i in range(h_out.size):
                h_out[i] = h_in[i] + net.residual * out[i]
        woff += n_in * n_out
        boff += n_out


@jit(inline="always")
def backward(w: np.ndarray, net: Net, work: Work, gw: np.ndarray, gb: np.ndarray, grad_w: np.ndarray,
             grad_b: np.ndarray, delta: np.ndarray, grad_h: np.ndarray) -> None:
    """Back-propagate dLoss/dh_L, given in ``work.mlp.dh[:B n_L]`` (overwritten); write the (L,) rows of norms.

    Writes dLoss/dW and dLoss/db, packed like w and b, into ``gw`` and ``gb`` (float64;
    pass empty arrays to skip), as :func:`fastgrad.kernels.cpu_mlp.backward` does.
    """
    dims = net.dims
    depth = dims.size - 1
    hoff, hs, ds = work.mlp.hoff, work.mlp.hs, work.mlp.ds
    batch = (hoff[depth + 1] - hoff[depth]) // dims[depth]
    h0 = hoff[1]
    woff = w.size
    boff = 0
    for l in range(depth):
        boff += dims[l + 1]
    dh_buf, prev_buf = work.mlp.dh, work.mlp.dh_prev
    for l in range(depth - 1, -1, -1):
        n_in, n_out = dims[l], dims[l + 1]
        woff -= n_in * n_out
        boff -= n_out
        block = 0 < l < depth - 1
        g = dh_buf[: batch * n_out]  # dLoss/dh_l (1-based: the output of layer l + 1)
        dl = ds[hoff[l + 1] - h0 : hoff[l + 2] - h0]
        if block:  # g is kept for the skip: delta_l goes to `branch`
            df = work.branch[: batch * n_out]
            for i in range(df.size):
                df[i] = net.residual * g[i] * dl[i]
        else:
            for i in range(g.size):
                g[i] *= dl[i]
            df = g
        d = df.reshape(batch, n_out)  # delta_l = dLoss/dz_l
        ss_delta = sum_squares(df)
        delta[l] = np.sqrt(ss_delta)
        colsum = work.mlp.colsum[:n_out]
        colsum[:] = 0.0
        for i in range(batch):
            for j in range(n_out):
                colsum[j] += d[i, j]
        grad_b[l] = np.sqrt(sum_squares(colsum))
        x_in = hs[hoff[l] : hoff[l + 1]]
        if block and net.layer_norm:
            x_in = work.us[hoff[l] - h0 : hoff[l + 1] - h0]
        dwf = work.mlp.dw[: n_in * n_out]
        norm = -1.0  # as cpu_mlp.backward: the Gram form at small batches, for statistics
        if gw.size == 0 and gram_pays(batch, n_in, n_out):
            norm = product_norm(x_in.reshape(batch, n_in), d, ss_delta, work.mlp.z, work.mlp.dw)
        if norm >= 0.0:
            grad_w[l] = norm
        else:
            np.dot(x_in.reshape(batch, n_in).T, d, dwf.reshape(n_in, n_out))
            grad_w[l] = np.sqrt(sum_squares(dwf))
        if gw.size:  # training keeps the gradients; statistics need only their norms
            copy(gw[woff : woff + n_in * n_out], dwf)
            copy(gb[boff : boff + n_out], colsum)
        prev = prev_buf[: batch * n_in]
        np.dot(d, w[woff : woff + n_in * n_out].reshape(n_in, n_out).T, prev.reshape(batch, n_in))
        if block:
            if net.layer_norm:
                layer_norm_backward(prev, x_in, work.inv_std[l * batch : (l + 1) * batch], n_in)
            for i in range(prev.size):
                prev[i] += g[i]
        grad_h[l] = np.sqrt(sum_squares(prev))  # dLoss/dh_{l-1} (1-based), the input's at l = 0
        dh_buf, prev_buf = prev_buf, dh_buf


@jit(inline="always")
def trial(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net, work: Work, stats: Stats,
          t: int) -> None:
    """One trial: write its per-layer statistics into row ``t`` of ``stats``; ``y`` is the target (mse) or g (probe)."""
    depth = net.dims.size - 1
    batch = x.shape[0]
    forward(w, b, x, net, work, stats.q[t])
    h_last = work.mlp.hs[work.mlp.hoff[depth] : work.mlp.hoff[depth + 1]]
    yf = y.reshape(h_last.size)
    dh = work.mlp.dh[: h_last.size]
    inv_b = 1.0 / batch
    if net.loss == MLP_MSE:
        for i in range(dh.size):
            dh[i] = (h_last[i] - yf[i]) * inv_b
    else:
        for i in range(dh.size):
            dh[i] = yf[i] * inv_b
    backward(w, net, work, np.empty(0), np.empty(0), stats.grad_w[t], stats.grad_b[t], stats.delta[t],
             stats.grad_h[t])


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, batch: int, stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``stats``: trials ``trial0 + lo ..`` drawn as the MLP draws them, then run."""
    dims = net.dims
    depth = dims.size - 1
    dtype = stats.grad_w.dtype
    n_w, n_b = sizes(dims)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, dims[0]), dtype=dtype)
    y = np.empty((batch, dims[depth]), dtype=dtype)
    work = workspace(dims, batch, dtype, net.layer_norm)
    for t in range(lo, hi):
        draw_trial(w, b, x, y, seed, trial0 + t, dims, init)
        trial(w, b, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, stats: Stats, lo: int,
             hi: int) -> None:
    """Rows ``lo .. hi - 1``: trials given as packed arrays w (T, P), b (T, Pb), x (T, B, n0), y (T, B, nL)."""
    work = workspace(net.dims, x.shape[1], x.dtype, net.layer_norm)
    for t in range(lo, hi):
        trial(w[t], b[t], x[t], y[t], net, work, stats, t)

"""The convolutional network's kernel file (CNN, Xiao et al. 2018): forward and backward per trial (CPU).

Definitions: ``z_l = conv(h_{l-1}, W_l) + b_l``, ``h_l = phi(z_l)``, ``h_0 = x``, stride 1,
"same" padding (circular or zeros), cross-correlation as PyTorch's ``conv1d``/``conv2d``:
``z_l[o, p] = sum_{c, t} W_l[o, c, t] h_{l-1}[c, p + t - r] + b_l[o]`` with r = k // 2.

Layout here is position-major, channels last: one trial's h_l is (B P, c) with P = N^D
positions, and W_l is kept as (K, c_in, c_out) with K = k^D taps (tap t = a k + b in 2-D,
PyTorch's ``weight[o, c, a, b]``), i.e. the (K c_in, c_out) matrix of im2col. So a layer is
one product ``z = col(h) @ W`` with ``col(h)[(b, p), (t, c)] = h[b, src[p, t], c]``
(``src[p, t] = -1``: a zero pad). Backward: ``delta_l = dLoss/dh_l * phi'(z_l)``,
``dLoss/dW_l = col(h_{l-1})^T delta_l``, ``dLoss/db_l = sum_{b, p} delta_l``, and
``dLoss/dh_{l-1}`` is ``delta_l @ W_l^T`` scattered back through ``src`` (col2im).

Memory: a trial keeps its weights and only its pre-activations z_l (one (B P, c) array per
layer); the backward pass recomputes h_{l-1} and phi'(z_l) from them (one activation call per
layer), half of what keeping h and phi' would take: what lets 10,000 layers run.

Trials draw from the MLP's streams (``codes.MLP_*``): W_l from tensor MLP_W0 + 2l as one
(K c_in, c_out) matrix, or, delta-orthogonal, a (c_in, c_out) orthogonal matrix (the MLP's own
orthogonal draw of that layer) at the centre tap and zeros elsewhere; b_l from MLP_B0 + 2l,
x (B, P, c_in) from MLP_X, y (B, P, c_L) from MLP_Y. The entry points run trials
``lo .. hi - 1`` of their output rows on the calling thread, without the GIL; their
arguments are :class:`Net`, :class:`Init` and :class:`Stats`, built by ``fastgrad/models/cnn.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._numba import call, copy, jit, kernel
from fastgrad.codes import MLP_B0, MLP_MSE, MLP_W0, MLP_X, MLP_Y, NORMAL, ORTHOGONAL, TRAIN_XENT
from fastgrad.kernels.cpu_spectrum import singular_values
from fastgrad.kernels.cpu_train import (
    Data,
    Optimizer,
    Record,
    clip_scale,
    diverged_epoch,
    epoch_order,
    optimizer_step,
    second_size,
)
from fastgrad.kernels.cpu_train import loss_gradient as train_loss_gradient
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import sum_squares


class Net(NamedTuple):
    """What one CNN trial computes, apart from its numbers.

    Attributes
    ----------
    dims : int64 array (L + 1,)
        Channels c_0 (in_channels) .. c_L.
    src : int64 array (P, K)
        The input position of output position p under tap t, -1 for a zero pad.
    pairs : int64 array (M, 2)
        Neighbouring positions (p, p + e_d) along each axis, not across the edge: the neighbour correlation's pairs.
    act : FirstClass
        The activation's loop (``activations.loop``).
    alpha : float
    loss : int
        ``codes.MLP_MSE`` or ``codes.MLP_PROBE``.
    """

    dims: np.ndarray
    src: np.ndarray
    pairs: np.ndarray
    act: Any
    alpha: float
    loss: int


class Init(NamedTuple):
    """How a generated trial's weights and biases are drawn.

    Attributes
    ----------
    draw : FirstClass
        The draw function (``draw.draw_function``): factored for delta-orthogonal weights.
    w_kind, b_kind : int64 arrays (L,)
        ``NORMAL`` or ``UNIFORM`` over the whole kernel, or ``ORTHOGONAL``: delta-orthogonal.
    w_scale, b_scale : float64 arrays (L,)
    centre : int
        The centre tap's index, (K - 1) / 2.
    """

    draw: Any
    w_kind: np.ndarray
    w_scale: np.ndarray
    b_kind: np.ndarray
    b_scale: np.ndarray
    centre: int


class Stats(NamedTuple):
    """Per-trial outputs, each (T, L): ||dLoss/dW_l||_F, ||dLoss/db_l||, ||delta_l||_F, mean(z_l^2), and the
    correlation of z_l between neighbouring positions."""

    grad_w: np.ndarray
    grad_b: np.ndarray
    delta: np.ndarray
    q: np.ndarray
    corr: np.ndarray


class Work(NamedTuple):
    """One thread's buffers, reused from trial to trial: every layer's z (``zs``, layer l at
    ``zoff[l]:zoff[l + 1]``), one im2col matrix, and single-layer h, phi', dLoss/dh and dLoss/dW."""

    zoff: np.ndarray
    zs: np.ndarray
    col: np.ndarray
    h: np.ndarray
    hn: np.ndarray
    d: np.ndarray
    dn: np.ndarray
    g: np.ndarray
    gp: np.ndarray
    colsum: np.ndarray
    dw: np.ndarray


@jit(inline="always")
def sizes(dims: np.ndarray, taps: int) -> tuple[int, int]:
    """Number of packed weights and of packed biases."""
    n_w = 0
    n_b = 0
    for l in range(dims.size - 1):
        n_w += taps * dims[l] * dims[l + 1]
        n_b += dims[l + 1]
    return n_w, n_b


@jit(inline="always")
def workspace(dims: np.ndarray, rows: int, taps: int, dtype: Any) -> Work:
    """A :class:`Work` for ``rows`` = B P rows: allocate once per block of trials."""
    depth = dims.size - 1
    zoff = np.zeros(depth + 1, dtype=np.int64)
    widest = dims[0]
    for l in range(depth):
        zoff[l + 1] = zoff[l] + rows * dims[l + 1]
        widest = max(widest, dims[l + 1])
    n = rows * widest
    return Work(zoff, np.empty(zoff[depth], dtype=dtype), np.empty(n * taps, dtype=dtype), np.empty(n, dtype=dtype),
                np.empty(n, dtype=dtype), np.empty(n, dtype=dtype), np.empty(n, dtype=dtype),
                np.empty(n, dtype=dtype), np.empty(n, dtype=dtype), np.empty(widest),
                np.empty(taps * widest * widest, dtype=dtype))


@jit(inline="always")
def im2col(h: np.ndarray, src: np.ndarray, batch: int, c: int, col: np.ndarray) -> None:
    """``col[(b, p), (t, ch)] = h[(b, src[p, t]), ch]`` (0 where src is -1); h (B P, c), col (B P, K c)."""
    positions, taps = src.shape
    for bb in range(batch):
        for p in range(positions):
            r = bb * positions + p
            for t in range(taps):
                s = src[p, t]
                base = t * c
                if s < 0:
                    for ch in range(c):
                        col[r, base + ch] = 0.0
                else:
                    sr = bb * positions + s
                    for ch in range(c):
                        col[r, base + ch] = h[sr, ch]


@jit(inline="always")
def col2im(dcol: np.ndarray, src: np.ndarray, batch: int, c: int, g: np.ndarray) -> None:
    """The adjoint of :func:`im2col`: ``g[(b, src[p, t]), ch] += dcol[(b, p), (t, ch)]``, g zeroed first."""
    positions, taps = src.shape
    for i in range(g.shape[0]):
        for ch in range(c):
            g[i, ch] = 0.0
    for bb in range(batch):
        for p in range(positions):
            r = bb * positions + p
            for t in range(taps):
                s = src[p, t]
                if s >= 0:
                    base = t * c
                    sr = bb * positions + s
                    for ch in range(c):
                        g[sr, ch] += dcol[r, base + ch]


@jit(inline="always")
def neighbour_corr(z: np.ndarray, pairs: np.ndarray, batch: int, positions: int, q: float) -> float:
    """mean over batch, channels and neighbouring pairs of z_p z_p', over q = mean(z^2) (nan without pairs)."""
    c = z.shape[1]
    acc = 0.0
    for bb in range(batch):
        base = bb * positions
        for m in range(pairs.shape[0]):
            a = base + pairs[m, 0]
            b = base + pairs[m, 1]
            for ch in range(c):
                acc += np.float64(z[a, ch]) * np.float64(z[b, ch])
    return acc / (batch * pairs.shape[0] * c) / q


@jit(inline="always")
def forward(w: np.ndarray, b: np.ndarray, x: np.ndarray, net: Net, work: Work, q: np.ndarray,
            corr: np.ndarray) -> np.ndarray:
    """Every layer's z into ``work.zs``, mean(z_l^2) into ``q`` and the neighbour correlation into ``corr``;
    returns h_L, flat (B P c_L), in one of ``work.h``, ``work.hn``. ``x`` is (B, P, c_0)."""
    dims = net.dims
    depth = dims.size - 1
    positions, taps = net.src.shape
    batch = x.shape[0]
    rows = batch * positions
    hin = x.reshape(rows, dims[0])
    hout = work.h[:0]
    woff = 0
    boff = 0
    for l in range(depth):
        n_in, n_out = dims[l], dims[l + 1]
        col = work.col[: rows * taps * n_in].reshape(rows, taps * n_in)
        im2col(hin, net.src, batch, n_in, col)
        zf = work.zs[work.zoff[l] : work.zoff[l] + rows * n_out]  # a batch may be smaller than the workspace's
        z = zf.reshape(rows, n_out)
        np.dot(col, w[woff : woff + taps * n_in * n_out].reshape(taps * n_in, n_out), z)
        for i in range(rows):
            for j in range(n_out):
                z[i, j] += b[boff + j]
        q[l] = sum_squares(zf) / zf.size
        corr[l] = neighbour_corr(z, net.pairs, batch, positions, q[l])
        hout = (work.h if l % 2 == 0 else work.hn)[: rows * n_out]
        call(net.act, zf, hout, work.d[: rows * n_out], net.alpha)
        hin = hout.reshape(rows, n_out)
        woff += taps * n_in * n_out
        boff += n_out
    return hout


@jit(inline="always")
def backward(w: np.ndarray, x: np.ndarray, net: Net, work: Work, gw: np.ndarray, gb: np.ndarray,
             grad_w: np.ndarray, grad_b: np.ndarray, delta: np.ndarray) -> None:
    """Back-propagate dLoss/dh_L, given in ``work.g[:B P c_L]`` (overwritten), after :func:`forward`.

    Writes the per-layer norms into the (L,) rows, and dLoss/dW, dLoss/db packed like w and b
    into ``gw``, ``gb`` (float64; empty arrays skip them).
    """
    dims = net.dims
    depth = dims.size - 1
    positions, taps = net.src.shape
    batch = x.shape[0]
    rows = batch * positions
    woff, boff = sizes(dims, taps)
    g, gp, d, dn = work.g, work.gp, work.d, work.dn
    n_last = dims[depth]
    call(net.act, work.zs[work.zoff[depth - 1] : work.zoff[depth - 1] + rows * n_last], work.h[: rows * n_last],
         d[: rows * n_last],
         net.alpha)
    for l in range(depth - 1, -1, -1):
        n_in, n_out = dims[l], dims[l + 1]
        woff -= taps * n_in * n_out
        boff -= n_out
        gl = g[: rows * n_out]
        dl = d[: rows * n_out]
        for i in range(gl.size):
            gl[i] *= dl[i]  # delta_l = dLoss/dz_l
        dmat = gl.reshape(rows, n_out)
        delta[l] = np.sqrt(sum_squares(gl))
        colsum = work.colsum[:n_out]
        colsum[:] = 0.0
        for i in range(rows):
            for j in range(n_out):
                colsum[j] += dmat[i, j]
        grad_b[l] = np.sqrt(sum_squares(colsum))
        if l > 0:  # h_{l-1} and phi'(z_{l-1}) from the kept z_{l-1}
            call(net.act, work.zs[work.zoff[l - 1] : work.zoff[l - 1] + rows * n_in], work.h[: rows * n_in],
                 dn[: rows * n_in],
                 net.alpha)
            hin = work.h[: rows * n_in].reshape(rows, n_in)
        else:
            hin = x.reshape(rows, n_in)
        col = work.col[: rows * taps * n_in].reshape(rows, taps * n_in)
        im2col(hin, net.src, batch, n_in, col)
        dwf = work.dw[: taps * n_in * n_out]
        np.dot(col.T, dmat, dwf.reshape(taps * n_in, n_out))
        grad_w[l] = np.sqrt(sum_squares(dwf))
        if gw.size:
            for i in range(dwf.size):
                gw[woff + i] = dwf[i]
            for j in range(n_out):
                gb[boff + j] = colsum[j]
        if l > 0:
            np.dot(dmat, w[woff : woff + taps * n_in * n_out].reshape(taps * n_in, n_out).T, col)  # col is free
            col2im(col, net.src, batch, n_in, gp[: rows * n_in].reshape(rows, n_in))
            g, gp = gp, g
            d, dn = dn, d
    return


@jit(inline="always")
def loss_gradient(h_last: np.ndarray, y: np.ndarray, loss: int, batch: int, out: np.ndarray) -> None:
    """dLoss/dh_L into ``out``: (h_L - y) / B for mse, g / B for the probe."""
    yf = y.reshape(h_last.size)
    inv_b = 1.0 / batch
    if loss == MLP_MSE:
        for i in range(h_last.size):
            out[i] = (h_last[i] - yf[i]) * inv_b
    else:
        for i in range(h_last.size):
            out[i] = yf[i] * inv_b


@jit(inline="always")
def trial(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net, work: Work, stats: Stats,
          t: int) -> None:
    """One trial: its per-layer statistics into row ``t`` of ``stats``; x (B, P, c_0), y (B, P, c_L)."""
    h_last = forward(w, b, x, net, work, stats.q[t], stats.corr[t])
    loss_gradient(h_last, y, net.loss, x.shape[0], work.g)
    backward(w, x, net, work, np.empty(0), np.empty(0), stats.grad_w[t], stats.grad_b[t], stats.delta[t])


@jit(inline="always")
def draw_weights(w: np.ndarray, b: np.ndarray, seed: int, trial_id: int, dims: np.ndarray, taps: int,
                 init: Init) -> None:
    """Trial ``trial_id``'s weights (K c_in, c_out per layer) and biases, packed, from the MLP's W_l and b_l streams."""
    woff = 0
    boff = 0
    for l in range(dims.size - 1):
        n_in, n_out = dims[l], dims[l + 1]
        wl = w[woff : woff + taps * n_in * n_out]
        if init.w_kind[l] == ORTHOGONAL:  # delta-orthogonal: the MLP's orthogonal W_l at the centre tap
            for i in range(wl.size):
                wl[i] = 0.0
            centre = wl[init.centre * n_in * n_out : (init.centre + 1) * n_in * n_out]
            draw_matrix(init.draw, centre.reshape(n_in, n_out), ORTHOGONAL, init.w_scale[l], seed, trial_id,
                        MLP_W0 + 2 * l)
        else:
            draw_matrix(init.draw, wl.reshape(taps * n_in, n_out), init.w_kind[l], init.w_scale[l], seed, trial_id,
                        MLP_W0 + 2 * l)
        draw_vector(init.draw, b[boff : boff + n_out], init.b_kind[l], init.b_scale[l], seed, trial_id,
                    MLP_B0 + 2 * l)
        woff += taps * n_in * n_out
        boff += n_out


@jit(inline="always")
def draw_trial(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int, trial_id: int,
               dims: np.ndarray, taps: int, init: Init) -> None:
    """Every array of generated trial ``trial_id``: weights, biases, x and y ~ N(0, 1) in the kernel's layout."""
    draw_weights(w, b, seed, trial_id, dims, taps, init)
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, MLP_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, MLP_Y)


DRAW_RUN, DRAW_KEEP, GIVEN_RUN = 0, 1, 2
"""What :func:`trials` does with each trial: draw and run it, draw it into the given arrays, or run the given arrays."""


@kernel
def trials(net: Net, init: Init, seed: int, ids: np.ndarray, batch: int, stats: Stats, w_all: np.ndarray,
           b_all: np.ndarray, x_all: np.ndarray, y_all: np.ndarray, mode: int, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1``: trial ``ids[t]`` drawn from its streams and run (``DRAW_RUN``), drawn into row t of
    w_all (T, P_w), b_all (T, P_b), x_all (T, B, P, c_0), y_all (T, B, P, c_L) (``DRAW_KEEP``), or run from those
    rows (``GIVEN_RUN``); statistics into row t of ``stats``.

    One kernel for the generated run, the trial arrays and given arrays: as three kernels they
    compiled the same forward and backward passes three times (the test file's first calls).
    """
    dims = net.dims
    depth = dims.size - 1
    positions, taps = net.src.shape
    dtype = x_all.dtype
    n_w, n_b = sizes(dims, taps)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, positions, dims[0]), dtype=dtype)
    y = np.empty((batch, positions, dims[depth]), dtype=dtype)
    work = workspace(dims, batch * positions, taps, dtype)
    for t in range(lo, hi):
        if mode == GIVEN_RUN:
            wt, bt, xt, yt = w_all[t], b_all[t], x_all[t], y_all[t]
        else:
            draw_trial(w, b, x, y, seed, ids[t], dims, taps, init)
            wt, bt, xt, yt = w, b, x, y
            if mode == DRAW_KEEP:
                copy(w_all[t], w)
                copy(b_all[t], b)
                copy(x_all[t].reshape(x.size), x.reshape(x.size))
                copy(y_all[t].reshape(y.size), y.reshape(y.size))
                continue
        trial(wt, bt, xt, yt, net, work, stats, t)


@jit(inline="always")
def jacobian(w: np.ndarray, net: Net, work: Work, out: np.ndarray, scratch: np.ndarray,
             col: np.ndarray) -> np.ndarray:
    """J = dh_L/dh_0 of a one-input forward pass, as (P c_0, P c_L) row-vector Jacobian, in float64.

    Its rows are the P c_0 input units; each row is pushed through the layers as one input map
    (no bias): ``J <- col(J) @ W_l`` then times phi'(z_l) unit by unit. ``out`` and ``scratch``
    hold P c_0 x P max(c) floats, ``col`` K times as many.
    """
    dims = net.dims
    depth = dims.size - 1
    positions, taps = net.src.shape
    m = positions * dims[0]
    cur = out[: m * m]
    for i in range(m * m):
        cur[i] = 0.0
    for i in range(m):
        cur[i * m + i] = 1.0
    a, s = out, scratch
    woff = 0
    for l in range(depth):
        n_in, n_out = dims[l], dims[l + 1]
        rows = m * positions
        c = col[: rows * taps * n_in].reshape(rows, taps * n_in)
        im2col(a[: rows * n_in].reshape(rows, n_in), net.src, m, n_in, c)
        wl = w[woff : woff + taps * n_in * n_out].reshape(taps * n_in, n_out).astype(np.float64)
        nxt = s[: rows * n_out].reshape(rows, n_out)
        np.dot(c, wl, nxt)
        zf = work.zs[work.zoff[l] : work.zoff[l + 1]]
        call(net.act, zf, work.h[: zf.size], work.d[: zf.size], net.alpha)
        d = work.d[: zf.size].reshape(positions, n_out)
        for r in range(m):
            for p in range(positions):
                for j in range(n_out):
                    nxt[r * positions + p, j] *= d[p, j]
        a, s = s, a
        woff += taps * n_in * n_out
    return a[: m * positions * dims[depth]].reshape(m, positions * dims[depth])


@kernel
def spectrum_generated(net: Net, init: Init, seed: int, trial0: int, batch: int, sv: np.ndarray, lo: int,
                       hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``sv`` (T, P min(c_0, c_L)): the singular values of J at the first input of
    trial ``trial0 + t``."""
    dims = net.dims
    depth = dims.size - 1
    positions, taps = net.src.shape
    dtype = sv.dtype
    n_w, n_b = sizes(dims, taps)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, positions, dims[0]), dtype=dtype)
    y = np.empty((batch, positions, dims[depth]), dtype=dtype)
    first = np.empty((1, positions, dims[0]), dtype=dtype)
    work = workspace(dims, positions, taps, dtype)
    q = np.empty(depth, dtype=dtype)
    corr = np.empty(depth, dtype=dtype)
    widest = 0
    for l in range(depth + 1):
        widest = max(widest, dims[l])
    m = positions * dims[0]
    size = m * positions * widest
    buf, scratch, col = np.empty(size), np.empty(size), np.empty(size * taps)
    s = np.empty(sv.shape[1])
    for t in range(lo, hi):
        draw_trial(w, b, x, y, seed, trial0 + t, dims, taps, init)
        for p in range(positions):
            for i in range(dims[0]):
                first[0, p, i] = x[0, p, i]
        forward(w, b, first, net, work, q, corr)
        jac = jacobian(w, net, work, buf, scratch, col)
        singular_values(jac, s, sv[t])


@jit(inline="always")
def readout(h_last: np.ndarray, wo: np.ndarray, bo: np.ndarray, batch: int, positions: int, pooled: np.ndarray,
            logits: np.ndarray) -> None:
    """Training's read-out: ``pooled = mean over positions of h_L`` (B, c), ``logits = pooled @ W_o + b_o``."""
    c, n_out = wo.shape
    h = h_last.reshape(batch * positions, c)
    inv = 1.0 / positions
    for bb in range(batch):
        for ch in range(c):
            acc = 0.0
            for p in range(positions):
                acc += h[bb * positions + p, ch]
            pooled[bb, ch] = acc * inv
        for j in range(n_out):
            acc = bo[j]
            for ch in range(c):
                acc += pooled[bb, ch] * wo[ch, j]
            logits[bb, j] = acc


@jit(inline="always")
def readout_backward(dlogits: np.ndarray, pooled: np.ndarray, wo: np.ndarray, batch: int, positions: int,
                     gwo: np.ndarray, gbo: np.ndarray, g: np.ndarray) -> None:
    """dL/dW_o = pooled^T dlogits, dL/db_o = sum dlogits; dL/dh_L = (dlogits W_o^T) / P at every position, into g."""
    c, n_out = wo.shape
    for ch in range(c):
        for j in range(n_out):
            acc = 0.0
            for bb in range(batch):
                acc += pooled[bb, ch] * dlogits[bb, j]
            gwo[ch * n_out + j] = acc
    for j in range(n_out):
        acc = 0.0
        for bb in range(batch):
            acc += dlogits[bb, j]
        gbo[j] = acc
    inv = 1.0 / positions
    for bb in range(batch):
        for ch in range(c):
            acc = 0.0
            for j in range(n_out):
                acc += dlogits[bb, j] * wo[ch, j]
            for p in range(positions):
                g[(bb * positions + p) * c + ch] = acc * inv


@kernel
def train(net: Net, init: Init, seed: int, trial0: int, data: Data, opt: Optimizer, epochs: int, batch: int,
          out: Record, lo: int, hi: int) -> None:
    """Train trials ``trial0 + lo .. trial0 + hi - 1`` into rows lo .. hi - 1 of ``out``.

    The CNN, then a read-out: the mean of h_L over positions (global average pooling), times
    W_o (c_L x outputs, N(0, 1 / c_L) from the tensor the MLP would use for layer L + 1) plus b_o = 0;
    ``net.loss`` is codes.TRAIN_MSE or TRAIN_XENT on those logits. Parameters are packed
    [W_1 .. W_L (kernel layout), W_o, b_1 .. b_L, b_o]. ``data.x`` rows are maps in the kernel's
    layout (P c_0). Records per epoch as the MLP's training kernel, the read-out as layer L + 1.
    """
    dims = net.dims
    depth = dims.size - 1
    positions, taps = net.src.shape
    x, y, x_test = data.x, data.y, data.x_test
    n, n_out = y.shape
    c = dims[depth]
    n_w, n_b = sizes(dims, taps)
    nw_all, nb_all = n_w + c * n_out, n_b + n_out
    dtype = x.dtype
    w = np.empty(nw_all, dtype=dtype)
    b = np.empty(nb_all, dtype=dtype)
    vw, vb, gw, gb = np.empty(nw_all), np.empty(nb_all), np.empty(nw_all), np.empty(nb_all)
    sw, sb = np.empty(second_size(opt.kind, nw_all)), np.empty(second_size(opt.kind, nb_all))
    work = workspace(dims, batch * positions, taps, dtype)
    xb = np.empty((batch, positions, dims[0]), dtype=dtype)
    yb = np.empty((batch, n_out), dtype=dtype)
    logits = np.empty((batch, n_out), dtype=dtype)
    dlogits = np.empty((batch, n_out), dtype=dtype)
    pooled = np.empty((batch, c), dtype=dtype)
    q, corr = np.empty(depth, dtype=dtype), np.empty(depth, dtype=dtype)
    nw, nb, nd = np.empty(depth), np.empty(depth), np.empty(depth)
    row = positions * dims[0]
    steps = n // batch
    keys = np.empty(n)
    m = x_test.shape[0]
    for k in range(lo, hi):
        trial = trial0 + k
        draw_weights(w, b, seed, trial, dims, taps, init)
        wo = w[n_w:].reshape(c, n_out)
        bo = b[n_b:]
        draw_matrix(init.draw, wo, NORMAL, 1.0 / np.sqrt(c), seed, trial, MLP_W0 + 2 * depth)
        bo[:] = 0.0
        for i in range(nw_all):
            out.params0[k, i] = w[i]
        for i in range(nb_all):
            out.params0[k, nw_all + i] = b[i]
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
            for s in range(steps):
                xf = xb.reshape(batch, row)
                for r in range(batch):
                    src = order[s * batch + r]
                    for i in range(row):
                        xf[r, i] = x[src, i]
                    for j in range(n_out):
                        yb[r, j] = y[src, j]
                h_last = forward(w, b, xb, net, work, q, corr)
                readout(h_last, wo, bo, batch, positions, pooled, logits)
                value, hits = train_loss_gradient(logits, yb, net.loss, dlogits)
                total += value
                correct += hits
                readout_backward(dlogits, pooled, wo, batch, positions, gw[n_w:], gb[n_b:], work.g)
                backward(w, xb, net, work, gw, gb, nw, nb, nd)
                for l in range(depth):
                    out.grad_w[k, epoch, l] += nw[l] / steps
                    out.grad_b[k, epoch, l] += nb[l] / steps
                out.grad_w[k, epoch, depth] += np.sqrt(sum_squares(gw[n_w:])) / steps
                out.grad_b[k, epoch, depth] += np.sqrt(sum_squares(gb[n_b:])) / steps
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
                hits_test = 0
                for start in range(0, m, batch):
                    rows = min(batch, m - start)
                    xt = xb[:rows]
                    xf = xt.reshape(rows, row)
                    for r in range(rows):
                        for i in range(row):
                            xf[r, i] = x_test[start + r, i]
                    h_last = forward(w, b, xt, net, work, q, corr)
                    readout(h_last, wo, bo, rows, positions, pooled, logits)
                    _, hits = train_loss_gradient(logits[:rows], data.y_test[start:start + rows], net.loss,
                                                  dlogits[:rows])
                    hits_test += hits
                out.test_accuracy[k, epoch] = hits_test / m
        for i in range(nw_all):
            out.params1[k, i] = w[i]
        for i in range(nb_all):
            out.params1[k, nw_all + i] = b[i]

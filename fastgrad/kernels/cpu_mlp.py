"""The MLP's kernel file: forward and backward pass of a deep MLP, per trial (CPU).

Definitions (docs/architecture.md): ``z_l = h_{l-1} @ W_l + b_l``, ``h_l = phi(z_l)``;
``delta_l = dLoss/dz_l``, ``dLoss/dW_l = h_{l-1}^T delta_l``,
``dLoss/db_l = sum_batch delta_l``, ``dLoss/dh_{l-1} = delta_l @ W_l^T``.

Layers are packed flat: layer l's weights are ``w[woff[l]:woff[l+1]]``
reshaped to (dims[l], dims[l+1]) and its biases ``b[boff[l]:boff[l+1]]``,
with ``boff = cumsum(dims[1:])``. Index l is 0-based everywhere.

The entry points (:func:`generated`, :func:`explicit`) run the trials ``lo .. hi - 1``
of their output rows on the calling thread, without the GIL; the engine runs one
block of consecutive trials per thread. Their arguments are the structures
:class:`Net`, :class:`Init` and :class:`Stats`, built by :mod:`fastgrad.lowering`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._math import F32
from fastgrad._numba import call, copy, is_float32, jit, kernel
from fastgrad.codes import MLP_B0, MLP_MSE, MLP_W0, MLP_X, MLP_Y, NORMAL
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import gram_pays, product_norm, sum_squares


class Net(NamedTuple):
    """What one MLP trial computes, apart from its numbers.

    Attributes
    ----------
    dims : int64 array (L + 1,)
        Widths n_0 .. n_L.
    hidden, last : FirstClass
        Activation loop (``activations.loop``) of layers 0 .. L - 2, and of layer L - 1.
    alpha : float64 array (L,)
        Activation parameter per layer.
    loss : int
        ``codes.MLP_MSE`` or ``codes.MLP_PROBE``.
    """

    dims: np.ndarray
    hidden: Any
    last: Any
    alpha: np.ndarray
    loss: int


class Init(NamedTuple):
    """How a generated trial's weights and biases are drawn.

    Attributes
    ----------
    draw : FirstClass
        The draw function (``draw.draw_function``): plain, or factored if a layer is orthogonal.
    w_kind, b_kind : int64 arrays (L,)
        Init kinds (``codes``) per layer.
    w_scale, b_scale : float64 arrays (L,)
    """

    draw: Any
    w_kind: np.ndarray
    w_scale: np.ndarray
    b_kind: np.ndarray
    b_scale: np.ndarray


class Stats(NamedTuple):
    """The per-trial outputs, each (T, L) in the run's dtype: norms of dLoss/dW_l, dLoss/db_l, delta_l, and q_l."""

    grad_w: np.ndarray
    grad_b: np.ndarray
    delta: np.ndarray
    q: np.ndarray


@jit(inline="always")
def layer_offsets(dims: np.ndarray, batch: int) -> np.ndarray:
    """hoff: h_l lives at hs[hoff[l]:hoff[l+1]] (l = 0..L), phi'(z_l) at ds[hoff[l]-hoff[1] ...]."""
    depth = dims.size - 1
    hoff = np.zeros(depth + 2, dtype=np.int64)
    for l in range(depth + 1):
        hoff[l + 1] = hoff[l] + batch * dims[l]
    return hoff


class Work(NamedTuple):
    """One thread's buffers for :func:`forward` and :func:`backward`, reused from trial to trial.

    ``hoff``: h_l lives at ``hs[hoff[l]:hoff[l+1]]`` (l = 0..L) and phi'(z_l) at
    ``ds[hoff[l]-hoff[1]:...]``; ``z`` holds one layer's pre-activations, ``dh``
    and ``dh_prev`` one layer's dLoss/dh (swapped layer by layer), ``colsum``
    (float64) one layer's dLoss/db and ``dw`` one layer's dLoss/dW.

    A trial's activations are hundreds of kB, above malloc's mmap threshold:
    allocated per trial, every page faults in afresh (A/B against per-trial
    buffers: 1.07-1.13x on one thread, 1.42x for float64 W-mlp on two); the
    per-layer buffers were ~150 allocations per W-mlp trial.
    """

    hoff: np.ndarray
    hs: np.ndarray
    ds: np.ndarray
    z: np.ndarray
    dh: np.ndarray
    dh_prev: np.ndarray
    colsum: np.ndarray
    dw: np.ndarray


@jit(inline="always")
def workspace(dims: np.ndarray, batch: int, dtype: Any) -> Work:
    """A :class:`Work` for MLPs of widths ``dims`` and ``batch`` rows: allocate once per block of trials."""
    depth = dims.size - 1
    hoff = layer_offsets(dims, batch)
    widest = 0
    for l in range(depth + 1):
        widest = max(widest, dims[l])
    return Work(hoff, np.empty(hoff[depth + 1], dtype=dtype), np.empty(hoff[depth + 1] - hoff[1], dtype=dtype),
                np.empty(batch * widest, dtype=dtype), np.empty(batch * widest, dtype=dtype),
                np.empty(batch * widest, dtype=dtype), np.empty(widest), np.empty(widest * widest, dtype=dtype))


@jit(inline="always")
def forward(w: np.ndarray, b: np.ndarray, x: np.ndarray, net: Net, work: Work, q: np.ndarray) -> None:
    """z_l = h_{l-1} W_l + b_l; keeps h_l in ``work.hs``, phi'(z_l) in ``work.ds`` and mean(z_l^2) in ``q``.

    z itself is not kept: the backward pass needs only h and phi'(z).
    """
    dims = net.dims
    depth = dims.size - 1
    batch = x.shape[0]
    hoff, hs, ds = work.hoff, work.hs, work.ds
    h0 = hoff[1]
    copy(hs[:h0], x.reshape(h0))
    woff = 0
    boff = 0
    for l in range(depth):
        n_in, n_out = dims[l], dims[l + 1]
        zf = work.z[: batch * n_out]
        zl = zf.reshape(batch, n_out)
        np.dot(hs[hoff[l] : hoff[l + 1]].reshape(batch, n_in), w[woff : woff + n_in * n_out].reshape(n_in, n_out), zl)
        for i in range(batch):
            for j in range(n_out):
                zl[i, j] += b[boff + j]
        q[l] = sum_squares(zf) / zf.size
        h_out = hs[hoff[l + 1] : hoff[l + 2]]
        d_out = ds[hoff[l + 1] - h0 : hoff[l + 2] - h0]
        call(net.last if l == depth - 1 else net.hidden, zf, h_out, d_out, net.alpha[l])
        woff += n_in * n_out
        boff += n_out


@jit(inline="always")
def backward(w: np.ndarray, dims: np.ndarray, work: Work, gw: np.ndarray, gb: np.ndarray, grad_w: np.ndarray,
             grad_b: np.ndarray, delta: np.ndarray) -> None:
    """Back-propagate dLoss/dh_L, given in ``work.dh[:B n_L]`` (overwritten).

    Writes dLoss/dW and dLoss/db, packed like w and b, into ``gw`` and ``gb``
    (float64; pass empty arrays to skip), and their per-layer norms and
    ||delta_l|| into the (L,) rows.
    """
    depth = dims.size - 1
    hoff, hs, ds = work.hoff, work.hs, work.ds
    batch = (hoff[depth + 1] - hoff[depth]) // dims[depth]
    h0 = hoff[1]
    woff = w.size
    boff = 0
    for l in range(depth):
        boff += dims[l + 1]
    dh_buf, prev_buf = work.dh, work.dh_prev
    for l in range(depth - 1, -1, -1):
        n_in, n_out = dims[l], dims[l + 1]
        woff -= n_in * n_out
        boff -= n_out
        dh = dh_buf[: batch * n_out]
        dl = ds[hoff[l + 1] - h0 : hoff[l + 2] - h0]
        for i in range(dh.size):
            dh[i] *= dl[i]
        d = dh.reshape(batch, n_out)  # delta_l = dLoss/dz_l
        ss_delta = sum_squares(dh)
        delta[l] = np.sqrt(ss_delta)
        # Column sums row by row, so the inner loop is contiguous and vectorises.
        colsum = work.colsum[:n_out]
        colsum[:] = 0.0
        for i in range(batch):
            for j in range(n_out):
                colsum[j] += d[i, j]
        grad_b[l] = np.sqrt(sum_squares(colsum))
        h_in = hs[hoff[l] : hoff[l + 1]].reshape(batch, n_in)
        dwf = work.dw[: n_in * n_out]
        norm = -1.0  # statistics need only ||dLoss/dW||; at small batches the Gram form is cheaper
        if gw.size == 0 and gram_pays(batch, n_in, n_out):
            norm = product_norm(h_in, d, ss_delta, work.z, work.dw)  # z and dw are free in the backward pass
        if norm >= 0.0:
            grad_w[l] = norm
        else:
            np.dot(h_in.T, d, dwf.reshape(n_in, n_out))
            grad_w[l] = np.sqrt(sum_squares(dwf))
        if gw.size:  # training keeps the gradients; statistics need only their norms
            copy(gw[woff : woff + n_in * n_out], dwf)
            copy(gb[boff : boff + n_out], colsum)
        if l > 0:
            np.dot(d, w[woff : woff + n_in * n_out].reshape(n_in, n_out).T,
                   prev_buf[: batch * n_in].reshape(batch, n_in))
            dh_buf, prev_buf = prev_buf, dh_buf


@jit(inline="always")
def trial(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net, work: Work, stats: Stats,
          t: int) -> None:
    """One trial: write its per-layer statistics into row ``t`` of ``stats``.

    ``y`` is the target (mse) or g (probe). ``work`` is the caller's
    :func:`workspace`, reused from trial to trial.
    """
    depth = net.dims.size - 1
    batch = x.shape[0]
    forward(w, b, x, net, work, stats.q[t])
    h_last = work.hs[work.hoff[depth] : work.hoff[depth + 1]]
    yf = y.reshape(h_last.size)
    dh = work.dh[: h_last.size]
    inv_b = 1.0 / batch
    if net.loss == MLP_MSE:
        for i in range(dh.size):
            dh[i] = (h_last[i] - yf[i]) * inv_b
    else:
        for i in range(dh.size):
            dh[i] = yf[i] * inv_b
    backward(w, net.dims, work, np.empty(0), np.empty(0), stats.grad_w[t], stats.grad_b[t], stats.delta[t])


@jit(inline="always")
def sizes(dims: np.ndarray) -> tuple[int, int]:
    """Number of packed weights and of packed biases."""
    n_w = 0
    n_b = 0
    for l in range(dims.size - 1):
        n_w += dims[l] * dims[l + 1]
        n_b += dims[l + 1]
    return n_w, n_b


@jit(inline="always")
def draw_weights(w: np.ndarray, b: np.ndarray, seed: int, trial_id: int, dims: np.ndarray, init: Init) -> None:
    """Trial ``trial_id``'s weights and biases, packed: W_l from tensor MLP_W0 + 2l, b_l from MLP_B0 + 2l.

    This order of draws (with :func:`draw_trial`'s inputs and targets after it) defines trial
    identity; :func:`generated_cells` draws its standard normals through it too.
    """
    woff = 0
    boff = 0
    for l in range(dims.size - 1):
        n_in, n_out = dims[l], dims[l + 1]
        draw_matrix(init.draw, w[woff : woff + n_in * n_out].reshape(n_in, n_out), init.w_kind[l], init.w_scale[l],
                    seed, trial_id, MLP_W0 + 2 * l)
        draw_vector(init.draw, b[boff : boff + n_out], init.b_kind[l], init.b_scale[l], seed, trial_id,
                    MLP_B0 + 2 * l)
        woff += n_in * n_out
        boff += n_out


@jit(inline="always")
def draw_trial(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int, trial_id: int,
               dims: np.ndarray, init: Init) -> None:
    """Every array of generated trial ``trial_id``: weights, biases, inputs x and targets (or probes) y ~ N(0, 1)."""
    draw_weights(w, b, seed, trial_id, dims, init)
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, MLP_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, MLP_Y)


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, batch: int, stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``stats``: trials ``trial0 + lo ..`` drawn from their streams, then run.

    The dtype of the statistics arrays is the dtype of the whole run; the
    buffers are allocated once for the block.
    """
    dims = net.dims
    depth = dims.size - 1
    dtype = stats.grad_w.dtype
    n_w, n_b = sizes(dims)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, dims[0]), dtype=dtype)
    y = np.empty((batch, dims[depth]), dtype=dtype)
    work = workspace(dims, batch, dtype)
    for t in range(lo, hi):
        draw_trial(w, b, x, y, seed, trial0 + t, dims, init)
        trial(w, b, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, stats: Stats, lo: int,
             hi: int) -> None:
    """Rows ``lo .. hi - 1``: trials given as packed arrays w (T, P), b (T, Pb), x (T, B, n0), y (T, B, nL)."""
    work = workspace(net.dims, x.shape[1], x.dtype)
    for t in range(lo, hi):
        trial(w[t], b[t], x[t], y[t], net, work, stats, t)


@kernel
def draw_arrays(init: Init, dims: np.ndarray, seed: int, trials: np.ndarray, w: np.ndarray, b: np.ndarray,
                x: np.ndarray, y: np.ndarray) -> None:
    """The packed arrays of the given trials, exactly as :func:`generated` draws them: w (T, P), b (T, Pb), x, y."""
    for i in range(trials.size):
        draw_trial(w[i], b[i], x[i], y[i], seed, trials[i], dims, init)


@jit(inline="always")
def _scale_into(dst: np.ndarray, src: np.ndarray, scale: float) -> None:
    """dst = scale * src, as ``fill_normal`` scales: in float32 arithmetic (scale rounded) for float32."""
    if is_float32(dst):
        s32 = F32(scale)
        for i in range(dst.size):
            dst[i] = s32 * src[i]
    else:
        for i in range(dst.size):
            dst[i] = scale * src[i]


@jit(inline="always")
def scale_cell(zw: np.ndarray, zb: np.ndarray, dims: np.ndarray, w_kind: np.ndarray, w_scale: np.ndarray,
               b_kind: np.ndarray, b_scale: np.ndarray, w: np.ndarray, b: np.ndarray) -> None:
    """One cell's weights and biases from the trial's standard normals ``zw``, ``zb`` (the run's dtype).

    Exactly what :func:`draw_weights` draws for NORMAL tensors (``fill_normal`` writes
    ``scale * z``, in the run's dtype) and CONSTANT ones (the value); no other kind comes here.
    """
    woff = 0
    boff = 0
    for l in range(dims.size - 1):
        n_w, n_b = dims[l] * dims[l + 1], dims[l + 1]
        if w_kind[l] == NORMAL:
            _scale_into(w[woff : woff + n_w], zw[woff : woff + n_w], w_scale[l])
        else:
            w[woff : woff + n_w] = w_scale[l]
        if b_kind[l] == NORMAL:
            _scale_into(b[boff : boff + n_b], zb[boff : boff + n_b], b_scale[l])
        else:
            b[boff : boff + n_b] = b_scale[l]
        woff += n_w
        boff += n_b


@kernel
def generated_cells(net: Net, init: Init, w_kind: np.ndarray, w_scale: np.ndarray, b_kind: np.ndarray,
                    b_scale: np.ndarray, seed: int, trial0: int, batch: int, grad_w: np.ndarray, grad_b: np.ndarray,
                    delta: np.ndarray, q: np.ndarray, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of K cells that differ only in their scales, from one draw per trial.

    Trial k's standard normals (every layer's weights and biases, in the run's dtype, by
    ``init.draw``, the plain draw function) and its inputs and targets are drawn once, by
    :func:`draw_trial` itself with every tensor N(0, 1): the schedule of draws, which defines
    the trial, is written once. Each cell c then scales them by its ``w_scale[c]``,
    ``b_scale[c]`` (kinds NORMAL or CONSTANT per layer, (K, L) arrays) and runs the trial into
    ``grad_w[c]`` ... ``q[c]`` (K, T, L). Bitwise equal to :func:`generated` of each cell alone.
    """
    dims = net.dims
    depth = dims.size - 1
    dtype = grad_w.dtype
    n_w, n_b = sizes(dims)
    zw = np.empty(n_w, dtype=dtype)
    zb = np.empty(n_b, dtype=dtype)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, dims[0]), dtype=dtype)
    y = np.empty((batch, dims[depth]), dtype=dtype)
    work = workspace(dims, batch, dtype)
    normal = np.full(depth, NORMAL, dtype=np.int64)
    unit = np.ones(depth)
    standard = Init(init.draw, normal, unit, normal, unit)  # every tensor N(0, 1)
    cells = w_scale.shape[0]
    for t in range(lo, hi):
        draw_trial(zw, zb, x, y, seed, trial0 + t, dims, standard)
        for c in range(cells):
            scale_cell(zw, zb, dims, w_kind[c], w_scale[c], b_kind[c], b_scale[c], w, b)
            trial(w, b, x, y, net, work, Stats(grad_w[c], grad_b[c], delta[c], q[c]), t)

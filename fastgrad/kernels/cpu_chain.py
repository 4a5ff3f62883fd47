"""The chain's kernel file: one neuron per layer, vectorised across trials (CPU).

At width 1 a trial is a chain of scalars, so the loops run over a block of
trials for each layer (contiguous, vectorisable) instead of over the layers of
one trial. Definitions: ``z_l = w_l a_{l-1} + b_l``, ``a_l = phi(z_l)``,
``a_0 = x``, cost ``C = (a_L - y)^2 / 2``; the signed bias gradient is
``dC/db_l = phi'(z_l) * w_{l+1} * phi'(z_{l+1}) * ... * (a_L - y)``.

The entry points run the trials ``lo .. hi - 1`` of their output rows, in
sub-blocks of ``BLOCK`` trials, on the calling thread without the GIL.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._numba import call, jit, kernel
from fastgrad.codes import CHAIN_CENTERED, CHAIN_NORMAL, CHAIN_WB, CHAIN_XY
from fastgrad.rng import normal_pair, stream_key

BLOCK = 256  # trials per sub-block: the sub-block's (L, BLOCK) buffers stay in L2


class Net(NamedTuple):
    """The activation's loop (``activations.loop``) and its parameter."""

    act: Any
    alpha: float


class Init(NamedTuple):
    """``w_const``: every w is ``w_scale``, else w ~ N(0, w_scale^2); ``b_kind`` a ``codes.CHAIN_*``, ``b_scale``."""

    w_const: bool
    w_scale: float
    b_kind: int
    b_scale: float


class Stats(NamedTuple):
    """Per-trial outputs (T, L): signed dC/db_l, |dC/db_l|, |dC/dw_l| and q_l = z_l^2."""

    dc_db: np.ndarray
    grad_b: np.ndarray
    grad_w: np.ndarray
    q: np.ndarray


@jit  # not inlined into the kernels: inlined, a chain trial ran 7-8% slower (single-thread A/B)
def _chain_block(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, net: Net, centered: bool,
                 db: np.ndarray, gb: np.ndarray, gw: np.ndarray, q: np.ndarray) -> None:
    """One sub-block: w, b and the outputs are (L, n); x, y are (n,).

    Writes the signed dC/db_l, |dC/db_l|, |dC/dw_l| = |dC/db_l * a_{l-1}| and q_l = z_l^2.
    """
    depth, n = w.shape
    a = np.empty((depth + 1, n), dtype=w.dtype)  # a[l] = a_l, a[0] = x
    d = np.empty((depth, n), dtype=w.dtype)
    z = np.empty(n, dtype=w.dtype)
    for i in range(n):
        a[0, i] = x[i]
    for l in range(depth):
        if centered:
            for i in range(n):
                b[l, i] = -w[l, i] * a[l, i]
        for i in range(n):
            z[i] = w[l, i] * a[l, i] + b[l, i]
            q[l, i] = z[i] * z[i]
        call(net.act, z, a[l + 1], d[l], net.alpha)
    g = a[depth] - y  # dC/da_L
    for l in range(depth - 1, -1, -1):
        for i in range(n):
            g[i] *= d[l, i]
            db[l, i] = g[i]
            gb[l, i] = abs(g[i])
            gw[l, i] = abs(g[i] * a[l, i])
            g[i] *= w[l, i]


@jit(inline="always")
def _store(bufs: np.ndarray, stats: Stats, lo: int) -> None:
    """Transpose a sub-block's (4, L, n) results into rows lo .. lo + n - 1 of the (T, L) outputs."""
    depth, n = bufs.shape[1], bufs.shape[2]
    for k, out in enumerate((stats.dc_db, stats.grad_b, stats.grad_w, stats.q)):
        for i in range(n):
            row = out[lo + i]
            src = bufs[k]
            for l in range(depth):
                row[l] = src[l, i]


@jit(inline="always")
def _transposed(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows lo .. hi - 1 of a (T, L) array as a contiguous (L, hi - lo) array."""
    out = np.empty((a.shape[1], hi - lo), dtype=a.dtype)
    for i in range(hi - lo):
        for l in range(a.shape[1]):
            out[l, i] = a[lo + i, l]
    return out


@kernel
def explicit(net: Net, w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, stats: Stats, lo: int,
             hi: int) -> None:
    """Rows ``lo .. hi - 1``: trials given as arrays w, b (T, L) and x, y (T,)."""
    depth = w.shape[1]
    for start in range(lo, hi, BLOCK):
        end = min(start + BLOCK, hi)
        bufs = np.empty((4, depth, end - start), dtype=stats.dc_db.dtype)
        _chain_block(_transposed(w, start, end), _transposed(b, start, end), x[start:end].copy(),
                     y[start:end].copy(), net, False, bufs[0], bufs[1], bufs[2], bufs[3])
        _store(bufs, stats, start)


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, stats: Stats, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1``: trials ``trial0 + lo ..`` drawn from their streams (w_l, b_l from pair l of tensor WB)."""
    depth = stats.dc_db.shape[1]
    dtype = stats.dc_db.dtype
    for start in range(lo, hi, BLOCK):
        end = min(start + BLOCK, hi)
        n = end - start
        w = np.empty((depth, n), dtype=dtype)
        b = np.empty((depth, n), dtype=dtype)
        x = np.empty(n, dtype=dtype)
        y = np.empty(n, dtype=dtype)
        keys = np.empty(n, dtype=np.uint64)
        for i in range(n):
            x[i], y[i] = normal_pair(stream_key(seed, trial0 + start + i, CHAIN_XY), 0)
            keys[i] = stream_key(seed, trial0 + start + i, CHAIN_WB)
        for l in range(depth):
            for i in range(n):
                gw_, gb_ = normal_pair(keys[i], l)  # w_l is element l, b_l element l + L
                w[l, i] = init.w_scale if init.w_const else init.w_scale * gw_
                b[l, i] = init.b_scale * gb_ if init.b_kind == CHAIN_NORMAL else init.b_scale
        bufs = np.empty((4, depth, n), dtype=dtype)
        _chain_block(w, b, x, y, net, init.b_kind == CHAIN_CENTERED, bufs[0], bufs[1], bufs[2], bufs[3])
        _store(bufs, stats, start)

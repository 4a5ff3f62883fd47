"""The one-neuron-per-layer chain, vectorised across trials (CPU).

At width 1 a trial is a chain of scalars, so the loops run over a block of
trials for each layer (contiguous, vectorisable) instead of over the layers of
one trial. Definitions: ``z_l = w_l a_{l-1} + b_l``, ``a_l = phi(z_l)``,
``a_0 = x``, cost ``C = (a_L - y)^2 / 2``; the signed bias gradient is
``dC/db_l = phi'(z_l) * w_{l+1} * phi'(z_{l+1}) * ... * (a_L - y)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastgrad._numba import jit
from fastgrad.activations import apply
from fastgrad.rng import normal_pair, stream_key

BLOCK = 256  # trials per block: the block's (L, BLOCK) buffers stay in L2
CENTERED = -1  # bias kind: b_l = -w_l a_{l-1}, so every z_l = 0 (the exploding example)
XY_TENSOR, WB_TENSOR = 0, 1  # chain tensors: (x, y) and the 2L numbers (w_1..w_L, b_1..b_L)


@jit
def _chain_block(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, act: int, alpha: float,
                 centered: bool, db: np.ndarray, gb: np.ndarray, gw: np.ndarray, q: np.ndarray) -> None:
    """One block: w, b and the outputs are (L, n); x, y are (n,).

    Writes the signed dC/db_l, |dC/db_l|, |dC/dw_l| = |dC/db_l * a_{l-1}| and q_l = z_l^2.
    """
    depth, n = w.shape
    a = np.empty((depth + 1, n), dtype=w.dtype)  # a[l] = a_l, a[0] = x
    d = np.empty((depth, n), dtype=w.dtype)
    z = np.empty(n, dtype=w.dtype)
    a[0] = x
    for l in range(depth):
        if centered:
            for i in range(n):
                b[l, i] = -w[l, i] * a[l, i]
        for i in range(n):
            z[i] = w[l, i] * a[l, i] + b[l, i]
            q[l, i] = z[i] * z[i]
        apply(act, alpha, z, a[l + 1], d[l])
    g = a[depth] - y  # dC/da_L
    for l in range(depth - 1, -1, -1):
        for i in range(n):
            g[i] *= d[l, i]
            db[l, i] = g[i]
            gb[l, i] = abs(g[i])
            gw[l, i] = abs(g[i] * a[l, i])
            g[i] *= w[l, i]


@jit(parallel=True)
def chain_explicit(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, act: int, alpha: float,
                   db: np.ndarray, gb: np.ndarray, gw: np.ndarray, q: np.ndarray) -> None:
    """Trials given as arrays: w, b and the outputs (N, L); x, y (N,)."""
    n_trials, depth = w.shape
    n_blocks = (n_trials + BLOCK - 1) // BLOCK
    for k in prange(n_blocks):
        lo = k * BLOCK
        hi = min(lo + BLOCK, n_trials)
        bufs = np.empty((4, depth, hi - lo), dtype=db.dtype)
        _chain_block(np.ascontiguousarray(w[lo:hi].T), np.ascontiguousarray(b[lo:hi].T),
                     x[lo:hi].copy(), y[lo:hi].copy(), act, alpha, False, bufs[0], bufs[1], bufs[2], bufs[3])
        db[lo:hi] = bufs[0].T
        gb[lo:hi] = bufs[1].T
        gw[lo:hi] = bufs[2].T
        q[lo:hi] = bufs[3].T


@jit(parallel=True)
def chain_generated(seed: int, trial0: int, act: int, alpha: float, w_const: bool, w_scale: float,
                    b_kind: int, b_scale: float, db: np.ndarray, gb: np.ndarray, gw: np.ndarray,
                    q: np.ndarray) -> None:
    """Trials ``trial0 ..`` drawn from their streams: w_l, b_l from pair l of tensor WB.

    ``w_const``: every w is ``w_scale``; else w ~ N(0, w_scale^2). ``b_kind``:
    0 normal (std ``b_scale``), 1 constant ``b_scale``, ``CENTERED``.
    """
    n_trials, depth = db.shape
    dtype = db.dtype
    n_blocks = (n_trials + BLOCK - 1) // BLOCK
    for k in prange(n_blocks):
        lo = k * BLOCK
        hi = min(lo + BLOCK, n_trials)
        n = hi - lo
        w = np.empty((depth, n), dtype=dtype)
        b = np.empty((depth, n), dtype=dtype)
        x = np.empty(n, dtype=dtype)
        y = np.empty(n, dtype=dtype)
        keys = np.empty(n, dtype=np.uint64)
        for i in range(n):
            x[i], y[i] = normal_pair(stream_key(seed, trial0 + lo + i, XY_TENSOR), 0)
            keys[i] = stream_key(seed, trial0 + lo + i, WB_TENSOR)
        for l in range(depth):
            for i in range(n):
                gw_, gb_ = normal_pair(keys[i], l)  # w_l is element l, b_l element l + L
                w[l, i] = w_scale if w_const else w_scale * gw_
                b[l, i] = b_scale * gb_ if b_kind == 0 else b_scale
        bufs = np.empty((4, depth, n), dtype=dtype)
        _chain_block(w, b, x, y, act, alpha, b_kind == CENTERED, bufs[0], bufs[1], bufs[2], bufs[3])
        db[lo:hi] = bufs[0].T
        gb[lo:hi] = bufs[1].T
        gw[lo:hi] = bufs[2].T
        q[lo:hi] = bufs[3].T

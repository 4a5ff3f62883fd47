"""Squared norms for the kernels, accumulated in float64.

Squares are formed in float64 even for float32 data: a float32 gradient entry
of 1e-20 is representable, its float32 square (1e-40) is not, and squaring in
float32 would turn a resolvable vanishing tail into exact zeros.
"""

from __future__ import annotations

import numpy as np

from fastgrad._numba import REDUCE_FASTMATH, jit


@jit(fastmath=REDUCE_FASTMATH)
def sum_squares(a: np.ndarray) -> float:
    """sum(a**2) of a 1-D array, in float64."""
    acc = 0.0
    for i in range(a.size):
        v = np.float64(a[i])
        acc += v * v
    return acc


@jit(fastmath=REDUCE_FASTMATH)
def product_norm_squared(h: np.ndarray, d: np.ndarray, h64: np.ndarray, d64: np.ndarray, gh: np.ndarray,
                         gd: np.ndarray) -> float:
    """||h^T d||_F^2 for h (B, m), d (B, n), via the B x B Gram matrices in float64.

    sum_{a,c} (h h^T)_{ac} (d d^T)_{ac}: 2 B^2 (m + n) flops instead of the
    2 B m n of forming h^T d, fewer when B < m n / (m + n). ``h64``, ``d64``
    (shaped as h, d) and ``gh``, ``gd`` (B, B) are float64 scratch, reused
    across calls: allocating them per step cost more than the products.
    """
    h64[:, :] = h
    d64[:, :] = d
    np.dot(h64, h64.T, gh)
    np.dot(d64, d64.T, gd)
    acc = 0.0
    for i in range(gh.shape[0]):
        for j in range(gh.shape[1]):
            acc += gh[i, j] * gd[i, j]
    return max(acc, 0.0)

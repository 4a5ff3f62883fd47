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
def accumulate_norm_squared(a: np.ndarray, total: np.ndarray) -> float:
    """``total += a`` (float64) and return sum(a**2) in float64, in one pass over 1-D arrays."""
    acc = 0.0
    for i in range(a.size):
        v = np.float64(a[i])
        total[i] += v
        acc += v * v
    return acc

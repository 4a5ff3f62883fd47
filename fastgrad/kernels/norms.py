"""Squared norms for the kernels, accumulated in float64.

Squares are formed in float64 even for float32 data: a float32 gradient entry
of 1e-20 is representable, its float32 square (1e-40) is not, and squaring in
float32 would turn a resolvable vanishing tail into exact zeros.
"""

from __future__ import annotations

import numpy as np

from fastgrad._numba import REDUCE_FASTMATH, is_float32, jit


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


@jit(fastmath=REDUCE_FASTMATH)
def _scaled_copy(a: np.ndarray, inv: float, out: np.ndarray) -> None:
    """out = a * inv, in float64, rounded to out's dtype."""
    for i in range(a.size):
        out[i] = np.float64(a[i]) * inv


@jit
def _gram(x: np.ndarray, out: np.ndarray) -> None:
    """out = x x^T (one compiled product for both factors: each np.dot call site compiles anew)."""
    np.dot(x, x.T, out)


@jit(fastmath=REDUCE_FASTMATH)
def _frobenius_inner(a: np.ndarray, b: np.ndarray) -> float:
    acc = 0.0
    for i in range(a.size):
        acc += np.float64(a[i]) * np.float64(b[i])
    return acc


@jit(inline="always")
def gram_pays(batch: int, n_in: int, n_out: int) -> bool:
    """Whether the MLP kernels form ||h^T delta||_F in the Gram form (:func:`product_norm`): 4 batch <= n_in, n_out.

    There the Gram form has at most half the flops of h^T delta. Measured on one layer
    (``scripts/profile_layer.py``): at batch = width / 2 (equal flops) it is 1.2-1.5x
    slower than the direct product, at width 256 and batch 16 5-9x faster. Whole runs
    (``scripts/ab_inprocess.py``, interleaved, against the direct product): width 64,
    batch 16 1.07x (float64) and 1.05x (float32), batch 8 1.10x and 1.07x, batch 4 1.10x
    and 1.08x; width 256, batch 16 1.25x and 1.21x.
    """
    return 4 * batch <= n_in and 4 * batch <= n_out


@jit
def product_norm(a: np.ndarray, b: np.ndarray, ss_b: float, scratch_a: np.ndarray, scratch_b: np.ndarray) -> float:
    """||a^T b||_F for a (B, m) and b (B, n), C-contiguous, in the Gram form: sqrt(<a a^T, b b^T>_F).

    ``ss_b`` is ``sum_squares(b)``, which the kernels have already formed for ||delta||.

    Every entry of a Gram matrix is at most the factor's sum of squares S in magnitude;
    when S lies outside [2**-60, 2**100] (float32) or [2**-900, 2**900] (float64), the
    factor is divided by sqrt(S) first, so that neither Gram matrix under- or overflows
    where a^T b does not. ``scratch_a`` holds B m entries of the dtype, ``scratch_b``
    B n + 2 B^2. Returns -1.0 if S is not finite (an inf or nan entry, or a float64
    factor beyond 1e154: the caller then forms a^T b itself, so non-finite results are
    exactly those of the direct product) and 0.0 if either factor is zero. Relative
    error ~eps ||a||_F^2 ||b||_F^2 / ||a^T b||_F^2 (2e-13 to 4e-13 measured in float64
    on random factors of the MLP kernels' shapes, 1e-8 in float32), against ~eps for
    the direct product.
    """
    batch, m = a.shape
    n = b.shape[1]
    ss_a = sum_squares(a.reshape(a.size))
    if not (np.isfinite(ss_a) and np.isfinite(ss_b)):
        return -1.0
    if ss_a == 0.0 or ss_b == 0.0:
        return 0.0
    lo, hi = (2.0**-60, 2.0**100) if is_float32(a) else (2.0**-900, 2.0**900)
    scale = 1.0
    if not lo <= ss_a <= hi:
        top = np.sqrt(ss_a)
        _scaled_copy(a.reshape(a.size), 1.0 / top, scratch_a[: a.size])
        a = scratch_a[: a.size].reshape(batch, m)
        scale *= top
    if not lo <= ss_b <= hi:
        top = np.sqrt(ss_b)
        _scaled_copy(b.reshape(b.size), 1.0 / top, scratch_b[: b.size])
        b = scratch_b[: b.size].reshape(batch, n)
        scale *= top
    ga = scratch_b[batch * n : batch * n + batch * batch].reshape(batch, batch)
    gb = scratch_b[batch * n + batch * batch : batch * n + 2 * batch * batch].reshape(batch, batch)
    _gram(a, ga)
    _gram(b, gb)
    inner = _frobenius_inner(ga.reshape(ga.size), gb.reshape(gb.size))
    return scale * np.sqrt(max(inner, 0.0))

"""Vectorisable elementary functions for the compiled kernels.

Numba lowers ``np.exp``/``np.tanh`` to one libm call per element (~15 ns each
measured here), which stops LLVM from vectorising the loop around it and cost
more than the matrix products of a 64-wide MLP. PyPI's llvmlite has no SVML.
The functions below are straight-line float64 arithmetic (polynomials, one
division, bit casts and selects), so loops that call them vectorise.

Accuracy (tested in ``tests/test_math.py`` against NumPy, and through every
activation in ``tests/test_activations.py``): a few ulp in float64 for ``exp``,
``expm1`` and ``log1p_unit``; ~1e-13 for the generator's ``log_unit`` and
``sincos_turn`` (4e-13); ``inf`` and ``nan`` propagate as NumPy's do.
"""

from __future__ import annotations

import math

import numpy as np

from fastgrad._numba import float32_as_int32, float64_as_int64, int32_as_float32, int64_as_float64, jit

LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
TWO_PI = 2.0 * math.pi

# exp(r) - 1 = r + r^2 * P(r), |r| <= ln2/2: Taylor terms 1/2! .. 1/14!
# (the first omitted term, r^15/15!, is below 1e-18 relative).
_EXPM1_C = tuple(1.0 / math.factorial(k) for k in range(2, 15))
# 2*atanh(s) = 2s * (1 + s^2/3 + s^4/5 + ...); 19 terms keep |s| <= 1/3 below 1e-17.
_ATANH_C = tuple(1.0 / (2 * k + 1) for k in range(19))
# sin/cos on |a| <= pi/4: Taylor terms to a^19 / a^18 (remainder < 1e-19).
# log and sin/cos are only used to turn random bits into normals, where an error
# of 1e-12 is a systematic deviation no number of trials can detect; shorter
# series keep the generator cheap (it draws every weight of every trial).
_LOG_C = tuple(1.0 / (2 * k + 1) for k in range(8))  # |s| <= 0.172: < 2e-13
_SIN_C = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(7))  # < 1e-14
_COS_C = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(7))  # < 1e-13


# Polynomials in Estrin's form, written out with constant indices: Horner's
# rule is one chain of dependent FMAs and left the vectorised exp latency-bound
# (2.7 ns/element measured); a loop over the tuple indexes it at run time and
# does not vectorise at all.
@jit(inline="always")
def _poly7(x: float, c: tuple[float, ...]) -> float:
    x2 = x * x
    x4 = x2 * x2
    return (((c[0] + x * c[1]) + x2 * (c[2] + x * c[3])) + x4 * ((c[4] + x * c[5]) + x2 * c[6]))


@jit(inline="always")
def _poly8(x: float, c: tuple[float, ...]) -> float:
    x2 = x * x
    x4 = x2 * x2
    return (((c[0] + x * c[1]) + x2 * (c[2] + x * c[3])) + x4 * ((c[4] + x * c[5]) + x2 * (c[6] + x * c[7])))


@jit(inline="always")
def _poly13(x: float, c: tuple[float, ...]) -> float:
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    return ((((c[0] + x * c[1]) + x2 * (c[2] + x * c[3])) + x4 * ((c[4] + x * c[5]) + x2 * (c[6] + x * c[7]))) + x8 * (((c[8] + x * c[9]) + x2 * (c[10] + x * c[11])) + x4 * c[12]))


@jit(inline="always")
def _poly19(x: float, c: tuple[float, ...]) -> float:
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    x16 = x8 * x8
    return (((((c[0] + x * c[1]) + x2 * (c[2] + x * c[3])) + x4 * ((c[4] + x * c[5]) + x2 * (c[6] + x * c[7]))) + x8 * (((c[8] + x * c[9]) + x2 * (c[10] + x * c[11])) + x4 * ((c[12] + x * c[13]) + x2 * (c[14] + x * c[15])))) + x16 * ((c[16] + x * c[17]) + x2 * c[18]))


@jit(inline="always")
def _pow2(k: int) -> float:
    """2**k for -1022 <= k <= 1023, by building the float's exponent bits."""
    return int64_as_float64((k + 1023) << 52)


@jit(inline="always")
def _exp_parts(x: float) -> tuple[float, float, float, np.int64]:
    """Split exp(x) = 2**k * (1 + p); returns (p, 2**k1, 2**k2, k), k = k1 + k2.

    ``x`` is clamped to +-1400 first: exp overflows or underflows long before,
    and the clamp keeps k1, k2 inside the float64 exponent range.
    """
    xc = min(max(x, -1400.0), 1400.0)
    kf = np.floor(xc * INV_LN2 + 0.5)
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    p = r + r * r * _poly13(r, _EXPM1_C)
    k = np.int64(kf)
    k1 = k >> 1
    return p, _pow2(k1), _pow2(k - k1), k


@jit(inline="always")
def exp(x: float) -> float:
    """exp(x), vectorisable; exact 0 and inf outside the float64 range."""
    p, s1, s2, _ = _exp_parts(x)
    y = ((1.0 + p) * s1) * s2  # the first product is exact: one rounding into subnormals
    return y if x == x else x


@jit(inline="always")
def expm1(x: float) -> float:
    """exp(x) - 1 with full relative accuracy near 0, vectorisable."""
    p, s1, s2, k = _exp_parts(x)
    t = s1 * s2
    if k == 0:
        y = p
    elif k > 60:
        y = ((1.0 + p) * s1) * s2  # -1 is below rounding; keeps inf finite-safe
    else:
        y = t * p + (t - 1.0)  # |x| > ln2/2 here: at most a factor-2 cancellation
    return y if x == x else x


@jit(inline="always")
def log1p_unit(t: float) -> float:
    """log(1 + t) for 0 <= t <= 1 (as used by softplus), vectorisable.

    Uses log(1 + t) = 2 atanh(t / (2 + t)), which has no cancellation at small t.
    """
    s = t / (2.0 + t)
    return 2.0 * s * _poly19(s * s, _ATANH_C)


@jit(inline="always")
def log_unit(u: float) -> float:
    """log(u) for a positive finite normal u (the RNG's uniforms), to ~2e-13."""
    bits = float64_as_int64(u)
    e = (bits >> 52) - 1023
    f = int64_as_float64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # [1, 2)
    big = f > 1.4142135623730951
    f = f * 0.5 if big else f
    e = e + 1 if big else e
    s = (f - 1.0) / (f + 1.0)  # |s| <= 0.172
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * _poly8(s * s, _LOG_C))


@jit(inline="always")
def sincos_turn(v: float) -> tuple[float, float]:
    """(cos(2 pi v), sin(2 pi v)) for 0 <= v < 1, to 4e-13 absolute (measured), vectorisable."""
    n = np.floor(4.0 * v + 0.5)
    a = TWO_PI * (v - 0.25 * n)  # |a| <= pi/4
    a2 = a * a
    s = a * _poly7(a2, _SIN_C)
    c = _poly7(a2, _COS_C)
    q = np.int64(n) & 3
    odd = (q & 1) == 1
    sign_c = np.float64(1 - 2 * (((q + 1) >> 1) & 1))
    sign_s = np.float64(1 - 2 * ((q >> 1) & 1))
    # (cos, sin) rotated by q quarter turns, as single-level selects so LLVM
    # if-converts them (nested conditionals kept this loop scalar: 22 ns/elem).
    return sign_c * (s if odd else c), sign_s * (c if odd else s)


# float32 arithmetic, for float32 runs: 8 lanes per AVX2 vector instead of 4, and
# shorter polynomials. Every constant is a float32 (a Python float would promote
# the expression to float64).
F32 = np.float32
_LN2_HI32 = F32(0.693145751953125)  # 12 significant bits: k * _LN2_HI32 is exact for |k| < 2**11
_LN2_LO32 = F32(1.428606765330187e-06)
_INV_LN2_32 = F32(1.4426950408889634)
# expm1(r) = r + r^2 * (1/2! + r/3! + ... + r^5/7!) on |r| <= ln2/2: < 2e-8 relative.
_EXPM1_C32 = tuple(F32(1.0 / math.factorial(k)) for k in range(2, 8))


@jit(inline="always")
def _pow2_32(k: np.int32) -> np.float32:
    """2**k as a float32 for -126 <= k <= 127."""
    return int32_as_float32(np.int32((k + 127) << 23))


@jit(inline="always")
def exp_expm1_32(x: np.float32) -> tuple[np.float32, np.float32]:
    """(exp(x), expm1(x)) for a float32 ``x <= 0``, in float32 arithmetic.

    Exact 0 (and -1) below the float32 range; one rounding into subnormals.
    """
    xc = max(x, F32(-110.0))
    kf = np.floor(xc * _INV_LN2_32 + F32(0.5))
    r = (xc - kf * _LN2_HI32) - kf * _LN2_LO32
    r2 = r * r
    c = _EXPM1_C32
    poly = (c[0] + r * c[1]) + r2 * ((c[2] + r * c[3]) + r2 * (c[4] + r * c[5]))
    p = r + r2 * poly
    k = np.int32(kf)
    k1 = k >> np.int32(1)
    s1 = _pow2_32(k1)
    s2 = _pow2_32(k - k1)
    t = s1 * s2
    e = ((F32(1.0) + p) * s1) * s2
    em1 = p if k == 0 else t * p + (t - F32(1.0))
    return e, em1


# The generator's float32 transforms (float32 runs draw in float32 arithmetic):
# 2 atanh(s) to s^9 on |s| <= 0.172 (remainder < 3e-9 relative), sin to a^11
# and cos to a^10 on |a| <= pi/4 (< 2e-9 and 3e-10).
_LOG_C32 = tuple(F32(1.0 / (2 * k + 1)) for k in range(5))
_SIN_C32 = tuple(F32((-1.0) ** k / math.factorial(2 * k + 1)) for k in range(6))
_COS_C32 = tuple(F32((-1.0) ** k / math.factorial(2 * k)) for k in range(6))
_TWO_PI32 = F32(2.0 * math.pi)


@jit(inline="always")
def _poly5_32(x: np.float32, c: tuple[np.float32, ...]) -> np.float32:
    x2 = x * x
    return (c[0] + x * c[1]) + x2 * ((c[2] + x * c[3]) + x2 * c[4])


@jit(inline="always")
def _poly6_32(x: np.float32, c: tuple[np.float32, ...]) -> np.float32:
    x2 = x * x
    return (c[0] + x * c[1]) + x2 * ((c[2] + x * c[3]) + x2 * (c[4] + x * c[5]))


@jit(inline="always")
def log_unit32(u: np.float32) -> np.float32:
    """log(u) for a positive normal float32 u, in float32 arithmetic (a few ulp), vectorisable."""
    bits = float32_as_int32(u)
    e = (bits >> np.int32(23)) - np.int32(127)
    f = int32_as_float32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F800000))  # [1, 2)
    big = f > F32(1.4142135623730951)
    f = f * F32(0.5) if big else f
    e = e + np.int32(1) if big else e
    s = (f - F32(1.0)) / (f + F32(1.0))  # |s| <= 0.172
    ef = F32(e)
    return ef * _LN2_HI32 + (ef * _LN2_LO32 + F32(2.0) * s * _poly5_32(s * s, _LOG_C32))


@jit(inline="always")
def sincos_turn32(v: np.float32) -> tuple[np.float32, np.float32]:
    """(cos(2 pi v), sin(2 pi v)) for a float32 0 <= v < 1, in float32 arithmetic, vectorisable."""
    n = np.floor(F32(4.0) * v + F32(0.5))
    a = _TWO_PI32 * (v - F32(0.25) * n)  # the difference is exact; |a| <= pi/4
    a2 = a * a
    s = a * _poly6_32(a2, _SIN_C32)
    c = _poly6_32(a2, _COS_C32)
    q = np.int32(n) & np.int32(3)
    odd = (q & np.int32(1)) == np.int32(1)
    sign_c = F32(np.int32(1) - np.int32(2) * (((q + np.int32(1)) >> np.int32(1)) & np.int32(1)))
    sign_s = F32(np.int32(1) - np.int32(2) * ((q >> np.int32(1)) & np.int32(1)))
    return sign_c * (s if odd else c), sign_s * (c if odd else s)

"""The counter-based random generator behind every trial.

A value is a pure function of (seed, trial, tensor, element index), so trial k
is the same whatever the number of threads, the chunking, the total number of
trials or the backend (see docs/architecture.md, "Trials, seeds and reproducibility").

Construction: a SplitMix64 stream. ``stream_key(seed, trial, tensor)`` mixes the
three integers through the SplitMix64 finaliser; element pair ``p`` of that
stream is ``mix64(key + (p + 1) * GOLDEN)``. SplitMix64 passes BigCrush, and
streams with independently hashed keys overlap with negligible probability for
tensors far shorter than 2**64 elements.

Normals come from Box-Muller on the two 32-bit halves of one 64-bit word
(``u1`` in (0, 1], ``u2`` in [0, 1)): pair ``p`` gives ``r cos`` to element
``p`` and ``r sin`` to element ``p + m`` of a tensor of ``n`` elements, where
``m = ceil(n / 2)``. Everything is straight-line arithmetic, so filling a
tensor vectorises.

A float64 tensor gets its normals from float64 arithmetic. A float32 tensor
gets them from float32 arithmetic on the same words (:func:`normal_pair32`:
``u1`` from the top 31 bits, ``u2`` from the low 24), about twice as fast; they
agree with the float64 normals to ~1e-6 relative, so a float32 trial is close
to, but no longer bitwise, the float64 trial rounded (docs/architecture.md,
"Precision"). The largest |normal| is 6.66 in float64 and 6.56 in float32.
"""

from __future__ import annotations

import math

import numpy as np

from fastgrad._math import F32, log_unit, log_unit32, sincos_turn, sincos_turn32
from fastgrad._numba import jit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_LOW32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_TWO_M32 = 2.0**-32
_TWO_M53 = 2.0**-53
_S33 = np.uint64(33)
_S8 = np.uint64(8)
_TWO_M31_32 = F32(2.0**-31)
_TWO_M24_32 = F32(2.0**-24)


def generator(dtype: str) -> str:
    """The name of the stream a run of ``dtype`` draws from, as sweeps record it in their store.

    Parameters
    ----------
    dtype : {"float64", "float32"}

    Returns
    -------
    str
        ``"splitmix64-boxmuller-float64"`` or ``"splitmix64-boxmuller-float32"``.
    """
    return f"splitmix64-boxmuller-{np.dtype(dtype).name}"


@jit(inline="always")
def mix64(z: np.uint64) -> np.uint64:
    """The SplitMix64 finaliser: a bijective 64-bit hash."""
    # Every operand is uint64: Numba types int64 (op) uint64 as float64.
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit(inline="always")
def stream_key(seed: int, trial: int, tensor: int) -> np.uint64:
    """The key of one tensor of one trial."""
    k = mix64(np.uint64(seed) * GOLDEN + _M1)
    k = mix64(k + (np.uint64(trial) + _ONE) * GOLDEN)
    return mix64(k + (np.uint64(tensor) + _ONE) * GOLDEN)


@jit(inline="always")
def word(key: np.uint64, index: int) -> np.uint64:
    """The 64 random bits at ``index`` of the stream ``key``."""
    return mix64(np.uint64(key) + (np.uint64(index) + _ONE) * GOLDEN)


@jit(inline="always")
def normal_pair(key: np.uint64, pair: int) -> tuple[float, float]:
    """Two independent standard normals from one word (Box-Muller)."""
    bits = word(key, pair)
    u1 = np.float64((bits >> _S32) + _ONE) * _TWO_M32
    u2 = np.float64(bits & _LOW32) * _TWO_M32
    r = math.sqrt(-2.0 * log_unit(u1))
    c, s = sincos_turn(u2)
    return r * c, r * s


@jit(inline="always")
def normal_pair32(key: np.uint64, pair: int) -> tuple[np.float32, np.float32]:
    """:func:`normal_pair` in float32 arithmetic, from the same word.

    u1 in [2**-31, 1] from the top 31 bits, u2 in [0, 1) from bits 8-31.
    """
    bits = word(key, pair)
    # int32 conversions (31 and 24 bits) vectorise where uint64 -> float does not everywhere.
    u1 = (F32(np.int32(bits >> _S33)) + F32(1.0)) * _TWO_M31_32
    u2 = F32(np.int32((bits & _LOW32) >> _S8)) * _TWO_M24_32
    r = F32(math.sqrt(F32(-2.0) * log_unit32(u1)))  # = float32 sqrt (double rounding is exact for sqrt)
    c, s = sincos_turn32(u2)
    return r * c, r * s


@jit(inline="always")
def uniform(key: np.uint64, index: int) -> float:
    """A uniform number in [0, 1) with 53 random bits."""
    return np.float64(word(key, index) >> _S11) * _TWO_M53


@jit(inline="always")
def fill_normal(out: np.ndarray, key: np.uint64, scale: float) -> None:
    """Fill a 1-D array with ``scale`` times the tensor's standard normals, in float64 arithmetic."""
    n = out.size
    m = (n + 1) // 2
    # Two views instead of out[p] and out[p + m]: with the latter form LLVM kept
    # the loop scalar (12.4 vs 4.1 ns per normal measured).
    first = out[:m]
    second = out[m:]
    for p in range(second.size):
        a, b = normal_pair(key, p)
        first[p] = scale * a
        second[p] = scale * b
    if n % 2 == 1:
        a, _ = normal_pair(key, m - 1)
        first[m - 1] = scale * a


@jit(inline="always")
def fill_normal32(out: np.ndarray, key: np.uint64, scale: float) -> None:
    """:func:`fill_normal` in float32 arithmetic (:func:`normal_pair32`), for float32 runs.

    Callers pick one of the two per dtype (``kernels.draw``): a branch on the dtype
    inside one function would type and compile both loops (2.4 s more per kernel).
    """
    n = out.size
    m = (n + 1) // 2
    first = out[:m]
    second = out[m:]
    s = F32(scale)
    for p in range(second.size):
        a, b = normal_pair32(key, p)
        first[p] = s * a
        second[p] = s * b
    if n % 2 == 1:
        a, _ = normal_pair32(key, m - 1)
        first[m - 1] = s * a


@jit(inline="always")
def fill_uniform(out: np.ndarray, key: np.uint64, low: float, high: float) -> None:
    """Fill a 1-D array with the tensor's uniforms on [low, high)."""
    width = high - low
    for i in range(out.size):
        out[i] = low + width * uniform(key, i)


def normals(seed: int, trial: int, tensor: int, n: int, dtype: str = "float64") -> np.ndarray:
    """The first ``n`` standard normals of a tensor, as a run of ``dtype`` draws them.

    Parameters
    ----------
    seed, trial, tensor : int
        The stream's identity (non-negative).
    n : int
        The tensor's number of elements (the pairing of elements depends on it).
    dtype : {"float64", "float32"}
        float32: the float32 arithmetic transform, as float32 runs draw.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, of ``dtype``.
    """
    if str(dtype) not in ("float64", "float32"):
        raise ValueError(f"dtype: expected 'float64' or 'float32', got {dtype!r}")
    out = np.empty(n, dtype=np.dtype(dtype))
    (_fill_stream32 if out.dtype == np.float32 else _fill_stream)(out, seed, trial, tensor)
    return out


@jit
def _fill_stream(out: np.ndarray, seed: int, trial: int, tensor: int) -> None:
    # The key stays inside compiled code: as a Python int it may not fit int64.
    fill_normal(out, stream_key(seed, trial, tensor), 1.0)


@jit
def _fill_stream32(out: np.ndarray, seed: int, trial: int, tensor: int) -> None:
    fill_normal32(out, stream_key(seed, trial, tensor), 1.0)


def uniforms(seed: int, trial: int, tensor: int, n: int) -> np.ndarray:
    """The first ``n`` uniforms on [0, 1) of a tensor's stream, as float64.

    Parameters
    ----------
    seed, trial, tensor, n : int

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``.
    """
    out = np.empty(n, dtype=np.float64)
    _fill_uniform_stream(out, seed, trial, tensor)
    return out


@jit
def _fill_uniform_stream(out: np.ndarray, seed: int, trial: int, tensor: int) -> None:
    fill_uniform(out, stream_key(seed, trial, tensor), 0.0, 1.0)

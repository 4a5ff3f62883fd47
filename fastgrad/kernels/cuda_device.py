"""The building blocks compiled for the GPU: the same activation and RNG source.

The scalar activations (:mod:`fastgrad.activations`) and the counter-based
generator (:mod:`fastgrad.rng`) are written once. On the CPU they call the
vectorisable float64 routines of :mod:`fastgrad._math`; here the same Python
functions are recompiled with ``cuda.jit(device=True)`` after rebinding those
few elementary names to CUDA's libdevice (``math.exp``, ``math.log``, ...).
So trial k draws the same numbers on both devices, up to the last bits of
log/sin/cos (~1e-13 relative in float64, a few float32 ulp in float32), and
the activations agree to rounding.

Importing this module needs numba-cuda (or ``NUMBA_ENABLE_CUDASIM=1``).
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np
from numba import cuda

from fastgrad import activations, rng
from fastgrad._numba import is_float32
from fastgrad.codes import IDENTITY, NORMAL, UNIFORM

TWO_PI = 2.0 * math.pi


def _exp(x: float) -> float:
    return math.exp(x)


def _expm1(x: float) -> float:
    return math.expm1(x)


def _log1p_unit(t: float) -> float:
    return math.log1p(t)


def _log_unit(u: float) -> float:
    return math.log(u)


def _sincos_turn(v: float) -> tuple[float, float]:
    a = TWO_PI * v
    return math.cos(a), math.sin(a)


def _log_unit32(u: np.float32) -> np.float32:
    return np.float32(math.log(u))


def _sincos_turn32(v: np.float32) -> tuple[np.float32, np.float32]:
    a = np.float32(TWO_PI) * v
    return np.float32(math.cos(a)), np.float32(math.sin(a))


def _device(func: Any) -> Any:
    return cuda.jit(device=True)(func)


ELEMENTARY = {"exp": _exp, "expm1": _expm1, "log1p_unit": _log1p_unit, "log_unit": _log_unit,
              "sincos_turn": _sincos_turn, "log_unit32": _log_unit32, "sincos_turn32": _sincos_turn32}


def _retarget(module: Any, names: list[str]) -> dict[str, Any]:
    """Device versions of ``names`` from ``module``, resolving their globals to device code."""
    scope = dict(vars(module))
    scope.update({k: _device(v) for k, v in ELEMENTARY.items()})
    built = {}
    for name in names:
        py = getattr(module, name).py_func
        func = types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__)
        built[name] = _device(func)
    scope.update(built)  # calls between them resolve at compile time, after this
    return built


# Every activation pair of the registry, plus the helper they share.
_ACT_NAMES = ["_nan_or"] + [f.__name__ for pair in activations.FUNCTIONS.values() for f in pair]
_act = _retarget(activations, _ACT_NAMES)
_rng = _retarget(rng, ["mix64", "stream_key", "word", "normal_pair", "normal_pair32", "uniform"])

stream_key = _rng["stream_key"]
normal_pair = _rng["normal_pair"]
normal_pair32 = _rng["normal_pair32"]
uniform = _rng["uniform"]

_CODES = activations.CODES
_TANH, _SIGMOID, _RELU, _LINEAR = _CODES["tanh"], _CODES["sigmoid"], _CODES["relu"], _CODES["linear"]
_LEAKY, _ELU, _SELU, _SOFTPLUS = _CODES["leaky_relu"], _CODES["elu"], _CODES["selu"], _CODES["softplus"]
_GELU = _CODES["gelu"]
_tanh, _d_tanh = _act["tanh"], _act["d_tanh"]
_sigmoid, _d_sigmoid = _act["sigmoid"], _act["d_sigmoid"]
_relu, _d_relu = _act["relu"], _act["d_relu"]
_linear, _d_linear = _act["linear"], _act["d_linear"]
_leaky, _d_leaky = _act["leaky_relu"], _act["d_leaky_relu"]
_elu, _d_elu = _act["elu"], _act["d_elu"]
_selu, _d_selu = _act["selu"], _act["d_selu"]
_softplus, _d_softplus = _act["softplus"], _act["d_softplus"]
_gelu, _d_gelu = _act["gelu"], _act["d_gelu"]


@cuda.jit(device=True)
def phi_dphi(code: int, z: float, alpha: float) -> tuple[float, float]:
    """(phi(z), phi'(z)) of the activation ``code`` (a branch uniform across a block)."""
    if code == _TANH:
        return _tanh(z, alpha), _d_tanh(z, alpha)
    if code == _SIGMOID:
        return _sigmoid(z, alpha), _d_sigmoid(z, alpha)
    if code == _RELU:
        return _relu(z, alpha), _d_relu(z, alpha)
    if code == _LINEAR:
        return _linear(z, alpha), _d_linear(z, alpha)
    if code == _LEAKY:
        return _leaky(z, alpha), _d_leaky(z, alpha)
    if code == _ELU:
        return _elu(z, alpha), _d_elu(z, alpha)
    if code == _SELU:
        return _selu(z, alpha), _d_selu(z, alpha)
    if code == _SOFTPLUS:
        return _softplus(z, alpha), _d_softplus(z, alpha)
    return _gelu(z, alpha), _d_gelu(z, alpha)


MAX_THREADS = 256  # threads per block: the size of the shared reduction buffer


@cuda.jit(device=True)
def block_sum(value: float, buf: Any) -> float:
    """Sum of ``value`` over the block's threads (blockDim.x a power of two <= MAX_THREADS)."""
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    total = buf[0]
    cuda.syncthreads()  # every thread has read buf[0] before the buffer is reused
    return total


@cuda.jit(device=True)
def fill_normal(out: Any, start: int, n: int, key: Any, scale: float) -> None:
    """out[start:start+n] = scale * the tensor's normals, the CPU's pairing and arithmetic, threads strided."""
    m = (n + 1) // 2
    if is_float32(out):  # float32 arithmetic, as the CPU's rng.fill_normal32
        s32 = np.float32(scale)
        for p in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            a32, b32 = normal_pair32(key, p)
            out[start + p] = s32 * a32
            if p + m < n:
                out[start + p + m] = s32 * b32
        return
    for p in range(cuda.threadIdx.x, m, cuda.blockDim.x):
        a, b = normal_pair(key, p)
        out[start + p] = scale * a
        if p + m < n:
            out[start + p + m] = scale * b


@cuda.jit(device=True)
def fill_tensor(out: Any, start: int, rows: int, cols: int, kind: int, scale: float, key: Any) -> None:
    """One initialised tensor (NORMAL, UNIFORM, CONSTANT or IDENTITY), threads strided."""
    n = rows * cols
    if kind == NORMAL:
        fill_normal(out, start, n, key, scale)
    elif kind == UNIFORM:
        for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
            out[start + i] = -scale + 2.0 * scale * uniform(key, i)
    elif kind == IDENTITY:
        for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
            out[start + i] = scale if (i // cols) == (i % cols) else 0.0
    else:
        for i in range(cuda.threadIdx.x, n, cuda.blockDim.x):
            out[start + i] = scale

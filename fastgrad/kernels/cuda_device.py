"""The building blocks compiled for the GPU: the same activation and RNG source.

The scalar activations (:mod:`fastgrad.activations`) and the counter-based
generator (:mod:`fastgrad.rng`) are written once. On the CPU they call the
vectorisable float64 routines of :mod:`fastgrad._math`; here the same Python
functions are recompiled with ``cuda.jit(device=True)`` after rebinding those
few elementary names to CUDA's libdevice (``math.exp``, ``math.log``, ...).
So trial k draws the same numbers on both devices, up to the last bits of
log/sin/cos (~1e-13 relative in float64, a few float32 ulp in float32), and
the activations agree to rounding. The kernels' activation dispatch
(:func:`phi_dphi`) is generated from the activation registry.

Importing this module needs numba-cuda (or ``NUMBA_ENABLE_CUDASIM=1``).
"""

from __future__ import annotations

import linecache
import math
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import cuda
from numba.core.dispatcher import Dispatcher

from fastgrad import activations, rng
from fastgrad._numba import is_float32
from fastgrad.activations import Activation
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


_rng = _retarget(rng, ["mix64", "stream_key", "word", "normal_pair", "normal_pair32", "uniform"])

stream_key = _rng["stream_key"]
normal_pair = _rng["normal_pair"]
normal_pair32 = _rng["normal_pair32"]
uniform = _rng["uniform"]


def _device_versions(functions: list[Any]) -> dict[Any, Any]:
    """Device versions of CPU building blocks (Numba dispatchers) and of the compiled helpers they call.

    The helpers are found in the functions' code (its global names bound to dispatchers of the
    same module, e.g. ``activations._nan_or``, or ``sigmoid`` for ``d_softplus``), transitively.
    Each is recompiled with ``cuda.jit(device=True)`` from its Python function, its globals its
    module's with the elementary names (:data:`ELEMENTARY`) bound to CUDA's libdevice and every
    function recompiled here bound to its device version.
    """
    found: list[Any] = []
    todo = list(functions)
    while todo:
        func = todo.pop()
        if any(func is f for f in found):
            continue
        found.append(func)
        py = func.py_func
        todo += [py.__globals__[name] for name in py.__code__.co_names
                 if name not in ELEMENTARY and isinstance(py.__globals__.get(name), Dispatcher)
                 and py.__globals__[name].py_func.__module__ == py.__module__]
    elementary = {k: _device(v) for k, v in ELEMENTARY.items()}
    scopes: dict[int, dict[str, Any]] = {}
    built = {}
    for func in found:
        py = func.py_func
        scope = scopes.setdefault(id(py.__globals__), {**py.__globals__, **elementary})
        built[func] = _device(types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__))
    for func, dev in built.items():  # calls between them resolve at compile time, after this
        scopes[id(func.py_func.__globals__)][func.py_func.__name__] = dev
    return built


def dispatch_source(registry: Mapping[str, Activation]) -> str:
    """The Python source of :func:`phi_dphi` for ``registry``: one branch per activation, codes by position.

    Parameters
    ----------
    registry : mapping of name to :class:`~fastgrad.activations.Activation`

    Returns
    -------
    str
    """
    lines = ["def phi_dphi(code, z, alpha):"]
    for code, name in enumerate(registry):
        lines += [f"    if code == {code}:  # {name}", f"        return phi_{code}(z, alpha), dphi_{code}(z, alpha)"]
    lines.append("    return NAN, NAN  # a code outside the registry: nan, never another activation")
    return "\n".join(lines) + "\n"


def activation_dispatch(registry: Mapping[str, Activation] = activations.REGISTRY) -> Any:
    """Generate the device function ``phi_dphi(code, z, alpha) -> (phi(z), phi'(z))`` from an activation registry.

    Activation k of ``registry`` (in its order: the codes of :data:`fastgrad.activations.CODES`)
    is branch ``code == k``, calling device versions of its ``phi`` and ``dphi`` (and of the
    compiled helpers they call). A code outside the registry returns ``(nan, nan)``: a device
    function cannot raise, and nan poisons every statistic of the trial, where the chain
    written by hand used to end in GELU. The host never passes one (``lowering.activation_code``
    refuses a name outside the registry). So a new activation is one registry entry.

    Parameters
    ----------
    registry : mapping of name to Activation
        Default :data:`fastgrad.activations.REGISTRY`.

    Returns
    -------
    CUDA device function

    Raises
    ------
    ValueError
        At build time, if a name's position differs from its code in ``activations.CODES``
        (the host's codes would select another activation), or an entry's ``phi`` or ``dphi``
        is not a compiled scalar function.
    """
    for code, (name, entry) in enumerate(registry.items()):
        if activations.CODES.get(name, code) != code:
            raise ValueError(f"activation {name!r}: code {code} here, {activations.CODES[name]} on the host")
        for func in (entry.phi, entry.dphi):
            if not isinstance(func, Dispatcher):
                raise ValueError(f"activation {name!r}: {func!r} is not a compiled scalar function "
                                 "(fastgrad._numba.jit)")
    device = _device_versions([f for entry in registry.values() for f in (entry.phi, entry.dphi)])
    scope: dict[str, Any] = {"NAN": math.nan}
    for code, entry in enumerate(registry.values()):
        scope[f"phi_{code}"], scope[f"dphi_{code}"] = device[entry.phi], device[entry.dphi]
    source = dispatch_source(registry)
    filename = f"<fastgrad phi_dphi of {len(registry)} activations>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show it
    exec(compile(source, filename, "exec"), scope)
    func = scope["phi_dphi"]
    func.__doc__ = "(phi(z), phi'(z)) of the activation ``code`` (a branch uniform across a block); nan if unknown."
    return _device(func)


phi_dphi = activation_dispatch()
"""``phi_dphi(code, z, alpha) -> (phi(z), phi'(z))``, generated from :data:`fastgrad.activations.REGISTRY`."""


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

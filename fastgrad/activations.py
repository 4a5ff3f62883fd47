"""Scalar activation functions and their derivatives, written once.

Each activation is a pair of plain scalar functions ``phi(z, alpha)`` and
``dphi(z, alpha)`` of the pre-activation ``z`` (``alpha`` is the activation's
parameter: the leaky slope, the ELU alpha; ignored by the others). Derivatives
are computed from ``z``, never from ``h = phi(z)``: in float32 ``tanh(z)``
rounds to +-1 for |z| > 9 and ``1 - h**2`` is exactly 0 where the true
derivative is ~1e-24, which would zero the tail of a decay curve.

Everything is float64 arithmetic built on :mod:`fastgrad._math`, so loops over
arrays vectorise; float32 kernels call the same functions and round once (tanh
and sigmoid have float32-arithmetic pairs). The one exception is GELU, which
needs ``erfc`` and calls libm per element.

The CPU kernels receive an activation as its loop (:func:`loop`): a compiled
function ``loop(z, h, d, alpha)`` per activation and dtype, passed as a
first-class function, so a kernel compiles once for all activations and each
loop inlines one activation and vectorises. The CUDA kernels take the integer
code (``CODES``) and branch per element; they are built from the same registry.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from fastgrad._math import F32, exp, exp_expm1_32, expm1, log1p_unit
from fastgrad._numba import Choice, FirstClass, chosen, jit, kernel

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 0.39894228040143267794



@jit(inline="always")
def _nan_or(z: float, value: float) -> float:
    return value if z == z else z


@jit(inline="always")
def linear(z: float, alpha: float) -> float:
    return z


@jit(inline="always")
def d_linear(z: float, alpha: float) -> float:
    return _nan_or(z, 1.0)


@jit(inline="always")
def sigmoid(z: float, alpha: float) -> float:
    u = exp(-abs(z))  # in (0, 1]: never overflows
    s = (1.0 if z >= 0.0 else u) / (1.0 + u)
    return _nan_or(z, s)


@jit(inline="always")
def d_sigmoid(z: float, alpha: float) -> float:
    u = exp(-abs(z))
    return u / ((1.0 + u) * (1.0 + u))


@jit(inline="always")
def tanh(z: float, alpha: float) -> float:
    e = expm1(-2.0 * abs(z))  # in (-1, 0]
    t = -e / (2.0 + e)
    return t if z >= 0.0 else (-t if z < 0.0 else z)


@jit(inline="always")
def d_tanh(z: float, alpha: float) -> float:
    # 1 - tanh^2 = 4u / (1 + u)^2 with u = exp(-2|z|): no cancellation.
    u = exp(-2.0 * abs(z))
    return 4.0 * u / ((1.0 + u) * (1.0 + u))


@jit(inline="always")
def _tanh_pair32(z: np.float32) -> tuple[np.float32, np.float32]:
    """(tanh(z), tanh'(z)) in float32 arithmetic, as ``tanh`` and ``d_tanh`` compute them."""
    u, e = exp_expm1_32(F32(-2.0) * abs(z))
    one_u = F32(1.0) + u
    t = -e / one_u
    d = F32(4.0) * u / (one_u * one_u)
    h = t if z >= F32(0.0) else (-t if z < F32(0.0) else z)
    return h, (d if z == z else z)


@jit(inline="always")
def _sigmoid_pair32(z: np.float32) -> tuple[np.float32, np.float32]:
    """(sigmoid(z), sigmoid'(z)) in float32 arithmetic, as ``sigmoid`` and ``d_sigmoid`` compute them."""
    u, _ = exp_expm1_32(-abs(z))
    one_u = F32(1.0) + u
    s = (F32(1.0) if z >= F32(0.0) else u) / one_u
    d = u / (one_u * one_u)
    return (s if z == z else z), (d if z == z else z)


@jit(inline="always")
def relu(z: float, alpha: float) -> float:
    return 0.0 if z < 0.0 else z


@jit(inline="always")
def d_relu(z: float, alpha: float) -> float:
    return _nan_or(z, 1.0 if z > 0.0 else 0.0)


@jit(inline="always")
def leaky_relu(z: float, alpha: float) -> float:
    return alpha * z if z < 0.0 else z


@jit(inline="always")
def d_leaky_relu(z: float, alpha: float) -> float:
    return _nan_or(z, 1.0 if z > 0.0 else alpha)


@jit(inline="always")
def elu(z: float, alpha: float) -> float:
    return alpha * expm1(z) if z < 0.0 else z


@jit(inline="always")
def d_elu(z: float, alpha: float) -> float:
    return _nan_or(z, 1.0 if z > 0.0 else alpha * exp(z))


@jit(inline="always")
def selu(z: float, alpha: float) -> float:
    return SELU_SCALE * (SELU_ALPHA * expm1(z) if z < 0.0 else z)


@jit(inline="always")
def d_selu(z: float, alpha: float) -> float:
    return _nan_or(z, SELU_SCALE * (1.0 if z > 0.0 else SELU_ALPHA * exp(z)))


@jit(inline="always")
def softplus(z: float, alpha: float) -> float:
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|); the second term lies in [0, ln 2].
    return (z if z > 0.0 else 0.0) + log1p_unit(exp(-abs(z))) if z == z else z


@jit(inline="always")
def d_softplus(z: float, alpha: float) -> float:
    return sigmoid(z, alpha)


@jit(inline="always")
def gelu(z: float, alpha: float) -> float:
    # z * Phi(z) with Phi(z) = erfc(-z / sqrt 2) / 2: accurate in the far left tail.
    return 0.5 * z * math.erfc(-z / _SQRT2)


@jit(inline="always")
def d_gelu(z: float, alpha: float) -> float:
    pdf = _INV_SQRT_2PI * exp(-0.5 * z * z)
    return 0.5 * math.erfc(-z / _SQRT2) + z * pdf


@jit(inline="always")
def _gelu_pair(z: float, alpha: float) -> tuple[float, float]:
    # gelu and d_gelu with erfc evaluated once: LLVM does not merge two libm calls (648 -> ~400 us
    # over 32768 float64 elements). The same operations as gelu and d_gelu: the same bits.
    c = math.erfc(-z / _SQRT2)
    return 0.5 * z * c, 0.5 * c + z * (_INV_SQRT_2PI * exp(-0.5 * z * z))


@dataclass(frozen=True)
class Activation:
    """One activation of the registry: everything a kernel needs to know about it.

    Attributes
    ----------
    name : str
    phi, dphi : Numba scalar functions ``(z, alpha) -> float``
        The activation and its derivative, both from the pre-activation z.
    alpha : float
        Default parameter (leaky slope, ELU alpha); 0 for those that take none.
    takes_alpha : bool
        Whether the parameter means anything (others refuse a user's ``alpha``).
    pair32 : Numba scalar function ``(z) -> (phi, dphi)``, optional
        The pair in float32 arithmetic, used for float32 ``z`` instead of phi and dphi.
    pair : Numba scalar function ``(z, alpha) -> (phi, dphi)``, optional
        The pair with what phi and dphi share computed once (the same operations, the same
        bits), used instead of them where no ``pair32`` applies.
    """

    name: str
    phi: Any
    dphi: Any
    alpha: float = 0.0
    takes_alpha: bool = False
    pair32: Any = None
    pair: Any = None


REGISTRY: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", linear, d_linear),
        Activation("sigmoid", sigmoid, d_sigmoid, pair32=_sigmoid_pair32),
        Activation("tanh", tanh, d_tanh, pair32=_tanh_pair32),
        Activation("relu", relu, d_relu),
        Activation("leaky_relu", leaky_relu, d_leaky_relu, alpha=0.01, takes_alpha=True),
        Activation("elu", elu, d_elu, alpha=1.0, takes_alpha=True),
        Activation("selu", selu, d_selu),
        Activation("softplus", softplus, d_softplus),
        Activation("gelu", gelu, d_gelu, pair=_gelu_pair),
    )
}
"""Every activation, by name. Adding one is adding an entry here (see docs/architecture.md)."""

NAMES = tuple(REGISTRY)
CODES: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
"""Activation name -> integer code, for the CUDA kernels (which branch on it at run time)."""
DEFAULT_ALPHA: dict[str, float] = {a.name: a.alpha for a in REGISTRY.values() if a.takes_alpha}
"""Default parameter for the activations that take one."""
CHOICES: dict[str, Choice] = {name: Choice("activation", name) for name in NAMES}
"""Activation name -> its compile-time choice (for :func:`pair` and :func:`apply` in compiled code)."""
FUNCTIONS = {a.name: (a.phi, a.dphi) for a in REGISTRY.values()}
"""Activation name -> (phi, dphi) scalar Numba functions."""


def pair(act: Any, z: float, alpha: float) -> tuple[float, float]:
    """``(phi(z), phi'(z))`` of the activation chosen by ``act`` (compiled code only)."""
    raise NotImplementedError("fastgrad.activations.pair is called from compiled code")


@overload(pair, inline="always")
def _pair(act, z, alpha):  # type: ignore[no-untyped-def]  # annotated, Numba's inliner rejects it
    name = chosen(act, "activation")
    if name is None:
        return None
    entry = REGISTRY[name]
    phi, dphi, pair32, both = entry.phi, entry.dphi, entry.pair32, entry.pair
    if pair32 is not None and isinstance(z, types.Float) and z.bitwidth == 32:
        # tanh and its derivative cost ~4-6 ns per element in float64 arithmetic, the
        # largest elementwise cost of a float32 RNN trial; in float32 arithmetic 1.4 ns.
        return lambda act, z, alpha: pair32(z)
    if both is not None:
        return lambda act, z, alpha: both(z, alpha)
    return lambda act, z, alpha: (phi(z, alpha), dphi(z, alpha))


# phi and phi' are evaluated in the same loop: LLVM merges the exp they share
# (tanh, sigmoid, softplus), so the pair costs about one exp per element. The
# activation is a compile-time choice, so the loop inlines one activation and
# vectorises (a per-element switch measured 3x slower).


@jit(inline="always")
def apply(act: Any, alpha: float, z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """``h[i] = phi(z[i])`` and ``d[i] = phi'(z[i])`` over 1-D arrays; ``act`` a :class:`Choice`."""
    for i in range(z.size):
        h[i], d[i] = pair(act, z[i], alpha)


def _make_loop(act: Choice) -> Any:
    """The compiled, cached loop of one activation: ``loop(z, h, d, alpha)`` over 1-D C-contiguous arrays."""

    def loop(z: np.ndarray, h: np.ndarray, d: np.ndarray, alpha: float) -> None:
        apply(act, alpha, z, h, d)

    loop.__qualname__ = f"loop_{act.name}"  # one cache file per activation
    return kernel(loop)


_LOOPS = {name: _make_loop(CHOICES[name]) for name in NAMES}


@functools.cache
def loop(name: str, dtype: str) -> FirstClass:
    """The loop of activation ``name`` for ``dtype``, as the CPU kernels take it.

    The kernels call ``loop(z, h, d, alpha)``, which writes ``h = phi(z)`` and
    ``d = phi'(z)`` over 1-D C-contiguous arrays of ``dtype``, through a function
    pointer: a kernel is compiled once for every activation, and each
    activation's loop once per dtype (then cached), instead of a kernel per
    activation. One object per (name, dtype); compiled on first use.

    Parameters
    ----------
    name : str
    dtype : {"float32", "float64"}

    Returns
    -------
    FirstClass
        With ``.name`` the activation's name.
    """
    if name not in REGISTRY:
        raise ValueError(f"activation: unknown {name!r}; choose one of {', '.join(NAMES)}")
    arr = types.Array(types.float32 if dtype == "float32" else types.float64, 1, "C")
    return FirstClass(_LOOPS[name], types.void(arr, arr, arr, types.float64), name)


def evaluate(name: str, z: np.ndarray, alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate an activation and its derivative on an array.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    z : numpy.ndarray
        Pre-activations, float32 or float64.
    alpha : float, optional
        The activation's parameter (leaky slope, ELU alpha); its default if None.

    Returns
    -------
    phi, dphi : numpy.ndarray
        ``phi(z)`` and ``phi'(z)``, same shape and dtype as ``z``.
    """
    if name not in REGISTRY:
        raise ValueError(f"activation: unknown {name!r}; choose one of {', '.join(NAMES)}")
    z = np.asarray(z)
    if z.dtype not in (np.float32, np.float64):
        raise ValueError(f"z: expected float32 or float64, got {z.dtype}")
    a = REGISTRY[name].alpha if alpha is None else float(alpha)
    flat = np.ascontiguousarray(z).ravel()
    h = np.empty_like(flat)
    d = np.empty_like(flat)
    _LOOPS[name](flat, h, d, a)
    return h.reshape(z.shape), d.reshape(z.shape)

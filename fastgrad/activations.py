"""Scalar activation functions and their derivatives, written once.

Each activation is a pair of plain scalar functions ``phi(z, alpha)`` and
``dphi(z, alpha)`` of the pre-activation ``z`` (``alpha`` is the activation's
parameter: the leaky slope, the ELU alpha; ignored by the others). Derivatives
are computed from ``z``, never from ``h = phi(z)``: in float32 ``tanh(z)``
rounds to +-1 for |z| > 9 and ``1 - h**2`` is exactly 0 where the true
derivative is ~1e-24, which would zero the tail of a decay curve.

Everything is float64 arithmetic built on :mod:`fastgrad._math`, so loops over
arrays vectorise; float32 kernels call the same functions and round once.
The one exception is GELU, which needs ``erfc`` and calls libm per element.

The kernels select an activation by its integer code (``CODES``) outside their
loops, so every loop calls one function and stays vectorisable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from fastgrad._math import F32, exp, exp_expm1_32, expm1, log1p_unit
from fastgrad._numba import jit

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 0.39894228040143267794

LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SELU, SOFTPLUS, GELU = range(9)

CODES: dict[str, int] = {
    "linear": LINEAR,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "selu": SELU,
    "softplus": SOFTPLUS,
    "gelu": GELU,
}
"""Activation name -> integer code used by the kernels."""

DEFAULT_ALPHA: dict[str, float] = {"leaky_relu": 0.01, "elu": 1.0}
"""Default parameter for the activations that take one."""

NAMES = tuple(CODES)


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


def tanh_pair(z: float) -> tuple[float, float]:
    """(tanh(z), tanh'(z)); compiled code picks float32 or float64 arithmetic by z's type."""
    return tanh(z, 0.0), d_tanh(z, 0.0)


@jit(inline="always")
def _sigmoid_pair32(z: np.float32) -> tuple[np.float32, np.float32]:
    """(sigmoid(z), sigmoid'(z)) in float32 arithmetic, as ``sigmoid`` and ``d_sigmoid`` compute them."""
    u, _ = exp_expm1_32(-abs(z))
    one_u = F32(1.0) + u
    s = (F32(1.0) if z >= F32(0.0) else u) / one_u
    d = u / (one_u * one_u)
    return (s if z == z else z), (d if z == z else z)


def sigmoid_pair(z: float) -> tuple[float, float]:
    """(sigmoid(z), sigmoid'(z)); compiled code picks float32 or float64 arithmetic by z's type."""
    return sigmoid(z, 0.0), d_sigmoid(z, 0.0)


def _by_width(pair: Any, pair32: Any, phi: Any, dphi: Any) -> None:
    """Compile ``pair(z)`` to ``pair32`` for float32 ``z``, to ``(phi, dphi)`` in float64 otherwise.

    Measured: tanh and its derivative cost ~4-6 ns per element in float64
    arithmetic, the largest elementwise cost of a float32 RNN trial; in float32
    arithmetic 1.4 ns.
    """

    @overload(pair, inline="always")
    def typed(z):  # type: ignore[no-untyped-def]  # annotated, Numba's inliner rejects it
        if isinstance(z, types.Float) and z.bitwidth == 32:
            return lambda z: pair32(z)
        return lambda z: (phi(z, 0.0), dphi(z, 0.0))


_by_width(tanh_pair, _tanh_pair32, tanh, d_tanh)
_by_width(sigmoid_pair, _sigmoid_pair32, sigmoid, d_sigmoid)


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


FUNCTIONS = {
    "linear": (linear, d_linear),
    "sigmoid": (sigmoid, d_sigmoid),
    "tanh": (tanh, d_tanh),
    "relu": (relu, d_relu),
    "leaky_relu": (leaky_relu, d_leaky_relu),
    "elu": (elu, d_elu),
    "selu": (selu, d_selu),
    "softplus": (softplus, d_softplus),
    "gelu": (gelu, d_gelu),
}
"""Activation name -> (phi, dphi) scalar Numba functions."""


# The branch on ``code`` sits outside each loop so that every loop inlines one
# activation and vectorises (a per-element switch measured 3x slower). phi and
# phi' are evaluated in the same loop: LLVM merges the exp they share (tanh,
# sigmoid, softplus), so the pair costs about one exp per element.


@jit
def apply(code: int, alpha: float, z: np.ndarray, h: np.ndarray, d: np.ndarray) -> None:
    """``h[i] = phi(z[i])`` and ``d[i] = phi'(z[i])`` over 1-D arrays."""
    if code == TANH:
        for i in range(z.size):
            h[i], d[i] = tanh_pair(z[i])
    elif code == SIGMOID:
        for i in range(z.size):
            h[i], d[i] = sigmoid_pair(z[i])
    elif code == RELU:
        for i in range(z.size):
            h[i] = relu(z[i], alpha)
            d[i] = d_relu(z[i], alpha)
    elif code == LINEAR:
        for i in range(z.size):
            h[i] = linear(z[i], alpha)
            d[i] = d_linear(z[i], alpha)
    elif code == LEAKY_RELU:
        for i in range(z.size):
            h[i] = leaky_relu(z[i], alpha)
            d[i] = d_leaky_relu(z[i], alpha)
    elif code == ELU:
        for i in range(z.size):
            h[i] = elu(z[i], alpha)
            d[i] = d_elu(z[i], alpha)
    elif code == SELU:
        for i in range(z.size):
            h[i] = selu(z[i], alpha)
            d[i] = d_selu(z[i], alpha)
    elif code == SOFTPLUS:
        for i in range(z.size):
            h[i] = softplus(z[i], alpha)
            d[i] = d_softplus(z[i], alpha)
    else:
        for i in range(z.size):
            h[i] = gelu(z[i], alpha)
            d[i] = d_gelu(z[i], alpha)


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
    if name not in CODES:
        raise ValueError(f"activation: unknown {name!r}; choose one of {', '.join(NAMES)}")
    z = np.asarray(z)
    if z.dtype not in (np.float32, np.float64):
        raise ValueError(f"z: expected float32 or float64, got {z.dtype}")
    a = DEFAULT_ALPHA.get(name, 0.0) if alpha is None else float(alpha)
    flat = np.ascontiguousarray(z).ravel()
    h = np.empty_like(flat)
    d = np.empty_like(flat)
    apply(CODES[name], a, flat, h, d)
    return h.reshape(z.shape), d.reshape(z.shape)

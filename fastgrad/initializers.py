"""Weight and bias initialisers.

An initialiser is resolved in Python, per layer, into a *kind* the kernels
know how to draw (normal, uniform, orthogonal, identity, constant) and one
scale (standard deviation, half-width, gain or value). The draws themselves use
the trial's counter-based streams (:mod:`fastgrad.rng`), so every initialiser
scale applied to trial k multiplies the same standard normals (common random
numbers across ``normal``, ``scaled_normal``, ``xavier_normal``, ...).
"""

from __future__ import annotations

import math

from fastgrad.codes import CONSTANT, IDENTITY, NORMAL, ORTHOGONAL, SPECTRAL, UNIFORM

WEIGHT_INITS = (
    "normal",
    "scaled_normal",
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "identity",
    "constant",
)
BIAS_INITS = ("zeros", "normal", "constant")
RECURRENT_INITS = ("normal", "orthogonal", "identity", "spectral")


def recurrent_kind(init: str, hidden: int, gain: float) -> tuple[int, float]:
    """Resolve a recurrent-weight initialiser (W_hh, hidden x hidden) into ``(kind, scale)``.

    ``normal``: N(0, gain^2 / hidden); ``orthogonal``: gain * Q (Q Haar-orthogonal);
    ``identity``: gain * I (the IRNN init); ``spectral``: a Gaussian matrix rescaled
    so that its spectral radius is exactly ``gain``.

    Parameters
    ----------
    init : str
        One of :data:`RECURRENT_INITS`.
    hidden : int
    gain : float

    Returns
    -------
    kind : int
    scale : float
    """
    if init == "normal":
        return NORMAL, gain / math.sqrt(hidden)
    if init == "orthogonal":
        return ORTHOGONAL, gain
    if init == "identity":
        return IDENTITY, gain
    if init == "spectral":
        return SPECTRAL, gain
    raise ValueError(f"init: unknown {init!r}; choose one of {', '.join(RECURRENT_INITS)}")


def weight_kind(init: str, fan_in: int, fan_out: int, sigma_w: float, gain: float, value: float) -> tuple[int, float]:
    """Resolve a weight initialiser for one layer into ``(kind, scale)``.

    Parameters
    ----------
    init : str
        One of :data:`WEIGHT_INITS`.
    fan_in, fan_out : int
        The layer's input and output widths (W has shape (fan_in, fan_out)).
    sigma_w : float
        ``normal``: the standard deviation; ``scaled_normal``: std = sigma_w / sqrt(fan_in).
    gain : float
        Multiplier of the Xavier, He, LeCun, orthogonal and identity inits.
    value : float
        Every weight's value under ``constant``.

    Returns
    -------
    kind : int
        ``NORMAL``, ``UNIFORM``, ``ORTHOGONAL``, ``IDENTITY`` or ``CONSTANT``.
    scale : float
        Standard deviation, half-width of the uniform, gain or constant value.
    """
    if init == "normal":
        return NORMAL, sigma_w
    if init == "scaled_normal":
        return NORMAL, sigma_w / math.sqrt(fan_in)
    if init == "xavier_normal":
        return NORMAL, gain * math.sqrt(2.0 / (fan_in + fan_out))
    if init == "xavier_uniform":
        return UNIFORM, gain * math.sqrt(6.0 / (fan_in + fan_out))
    if init == "he_normal":
        return NORMAL, gain * math.sqrt(2.0 / fan_in)
    if init == "he_uniform":
        return UNIFORM, gain * math.sqrt(6.0 / fan_in)
    if init == "lecun_normal":
        return NORMAL, gain * math.sqrt(1.0 / fan_in)
    if init == "orthogonal":
        return ORTHOGONAL, gain
    if init == "identity":
        return IDENTITY, gain
    if init == "constant":
        return CONSTANT, value
    raise ValueError(f"init: unknown {init!r}; choose one of {', '.join(WEIGHT_INITS)}")


def bias_kind(bias_init: str, sigma_b: float, value: float) -> tuple[int, float]:
    """Resolve a bias initialiser into ``(kind, scale)`` (see :func:`weight_kind`).

    Parameters
    ----------
    bias_init : str
        One of :data:`BIAS_INITS`.
    sigma_b : float
        Standard deviation under ``normal``.
    value : float
        Every bias's value under ``constant``.

    Returns
    -------
    kind : int
    scale : float
    """
    if bias_init == "zeros":
        return CONSTANT, 0.0
    if bias_init == "normal":
        return NORMAL, sigma_b
    if bias_init == "constant":
        return CONSTANT, value
    raise ValueError(f"bias_init: unknown {bias_init!r}; choose one of {', '.join(BIAS_INITS)}")

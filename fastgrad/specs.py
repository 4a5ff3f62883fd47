"""What model specs share: argument checks, scales, activations, residual scales, biases.

Each spec class lives in its model module (``fastgrad/models/<model>.py``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from fastgrad.activations import CODES, DEFAULT_ALPHA, NAMES, REGISTRY

# Re-exported: the checks every spec uses.
from fastgrad.checks import check_choice as check_choice
from fastgrad.checks import check_float as check_float
from fastgrad.checks import check_int as check_int
from fastgrad.initializers import (
    bias_kind,
    bias_scale,
    weight_scale,
)

LOSSES = ("mse", "probe")


def scale_of(name: str, std: Any, variance: Any, default: float) -> float:
    """The standard deviation given as ``name`` (a std) or ``name + "2"`` (a variance), at most one of them.

    Parameters
    ----------
    name : str
        The std's argument name, e.g. ``sigma_w``.
    std, variance : float or None
        The two ways to give it.
    default : float
        The std when neither is given.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming both arguments if both are given, or the one that is negative or not a finite number.
    """
    if std is not None and variance is not None:
        raise ValueError(f"{name}, {name}2: give the standard deviation or the variance, not both")
    if variance is not None:
        v = check_float(f"{name}2", variance)
        if v < 0:
            raise ValueError(f"{name}2: must be >= 0, got {v}")
        return math.sqrt(v)
    if std is None:
        return default
    s = check_float(name, std)
    if s < 0:
        raise ValueError(f"{name}: must be >= 0, got {s}")
    return s


def given_scale(name: str, std: Any, variance: Any) -> tuple[float | None, str]:
    """A scale as given: its standard deviation (None if neither ``name`` nor ``name2`` is given), and the name used.

    Parameters
    ----------
    name : str
        The std's argument name, e.g. ``sigma_b``.
    std, variance : float or None

    Returns
    -------
    (float or None, str)
    """
    if std is None and variance is None:
        return None, name
    return scale_of(name, std, variance, 0.0), f"{name}2" if variance is not None else name


def check_alpha(alpha: Any, *activations: str | None) -> float | None:
    """Validate ``alpha``: a finite number, given only when one of ``activations`` takes a parameter.

    Parameters
    ----------
    alpha : float or None
    *activations : str or None
        The activations it would apply to (None entries are skipped).

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        Naming ``alpha`` when it is not a number, or when no activation takes it.
    """
    if alpha is None:
        return None
    value = check_float("alpha", alpha)
    names = [a for a in activations if a is not None]
    if names and not any(REGISTRY[a].takes_alpha for a in names if a in REGISTRY):
        takers = ", ".join(a for a, entry in REGISTRY.items() if entry.takes_alpha)
        raise ValueError(f"alpha: {' and '.join(sorted(set(names)))} take(s) no parameter; "
                         f"alpha applies to {takers} only")
    return value


def activation_params(name: str, value: str, alpha: float | None) -> tuple[int, float]:
    """Validate an activation name and parameter, returning ``(code, alpha)``."""
    check_choice(name, value, NAMES)
    a = DEFAULT_ALPHA.get(value, 0.0) if alpha is None else check_float(f"{name} alpha", alpha)
    return CODES[value], a


class _Scales:
    """``weight_std`` and ``bias_std`` of a spec whose scales are given as sigma_w / sigma_w2, sigma_b / sigma_b2."""

    init: str
    sigma_w: float | None
    sigma_w2: float | None
    sigma_b: float | None
    sigma_b2: float | None
    BIAS_DEFAULT: ClassVar[float] = 0.0

    @property
    def weight_std(self) -> float:
        """sigma_w, from ``sigma_w`` or ``sqrt(sigma_w2)`` (default 1)."""
        return scale_of("sigma_w", self.sigma_w, self.sigma_w2, 1.0)

    @property
    def bias_std(self) -> float:
        """sigma_b, from ``sigma_b`` or ``sqrt(sigma_b2)`` (default ``BIAS_DEFAULT``)."""
        return scale_of("sigma_b", self.sigma_b, self.sigma_b2, self.BIAS_DEFAULT)

    @property
    def init_scale(self) -> float:
        """The one number that scales the weights under ``init`` (:func:`fastgrad.initializers.weight_scale`).

        Raises ValueError naming a scale argument ``init`` does not use.
        """
        std, name = given_scale("sigma_w", self.sigma_w, self.sigma_w2)
        return weight_scale(self.init, std, getattr(self, "gain", None), getattr(self, "value", None), name)

    @property
    def bias_init_scale(self) -> tuple[str, float]:
        """The bias init (resolved) and its scale (:func:`fastgrad.initializers.bias_scale`).

        Raises ValueError naming a bias argument the bias init does not use.
        """
        std, name = given_scale("sigma_b", self.sigma_b, self.sigma_b2)
        return bias_scale(getattr(self, "bias_init", None), std, getattr(self, "bias_value", None), name,
                          self.BIAS_DEFAULT)


ROOT_DEPTH = "1/sqrt(L)"
"""The ``residual`` scale given as a rule of the depth: a = 1 / sqrt(L)."""
NORMS = ("layer",)
LAYER_NORM_EPS = 1e-5
"""LayerNorm's eps, torch.nn.LayerNorm's default (added to the biased variance)."""


def residual_scale(residual: Any, depth: int) -> float:
    """The branch scale a of a residual net of ``depth`` layers: a number > 0, or ``"1/sqrt(L)"``.

    Parameters
    ----------
    residual : float or str
        A finite number > 0, or the string ``"1/sqrt(L)"`` (a = 1 / sqrt(depth)).
    depth : int
        The number of layers L.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming ``residual`` when it is neither.
    """
    if isinstance(residual, str):
        if residual != ROOT_DEPTH:
            raise ValueError(f"residual: expected a number > 0 or {ROOT_DEPTH!r}, got {residual!r}")
        return 1.0 / math.sqrt(depth)
    return check_float("residual", residual, positive=True)


RNN_LOSSES = ("last", "all", "probe")


def recurrent_bias(bias_init: str | None, sigma_b: Any, sigma_b2: Any, bias_value: Any) -> tuple[int, float]:
    """A recurrent cell's bias init as ``(kind, scale)``, refusing the arguments it does not use.

    Parameters
    ----------
    bias_init : str or None
        As given (validated); None: ``normal`` if sigma_b > 0, else ``zeros``.
    sigma_b, sigma_b2, bias_value : float or None
        As given.

    Returns
    -------
    (int, float)

    Raises
    ------
    ValueError
        Naming ``sigma_b`` (``sigma_b2``) under ``zeros`` or ``constant``, ``bias_value`` unless ``constant``.
    """
    if bias_value is not None:
        check_float("bias_value", bias_value)
    std, name = given_scale("sigma_b", sigma_b, sigma_b2)
    return bias_kind(*bias_scale(bias_init, std, bias_value, name, 0.0))


INPUT_INITS = ("normal", "xavier_normal", "orthogonal")


def _memory_bias(name: str, value: Any) -> float | str:
    """Validate a memory-gate bias: a finite number or ``"chrono"``."""
    if isinstance(value, str):
        if value != "chrono":
            raise ValueError(f"{name}: expected a number or 'chrono', got {value!r}")
        return value
    return check_float(name, value)



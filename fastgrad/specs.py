"""Validated model specifications: what a trial is, before any kernel runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fastgrad.activations import CODES, DEFAULT_ALPHA, NAMES, REGISTRY
from fastgrad.initializers import BIAS_INITS, RECURRENT_INITS, WEIGHT_INITS, bias_kind, weight_kind

LOSSES = ("mse", "probe")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: Any, positive: bool = False) -> float:
    """Return ``value`` as a finite float, or raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    return float(value)


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


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name}: unknown {value!r}; choose one of {', '.join(choices)}")
    return str(value)


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


@dataclass(frozen=True)
class MLP(_Scales):
    """A deep fully connected network, drawn afresh for every trial.

    Parameters
    ----------
    depth : int
        Number of weight layers L (>= 1).
    width : int
        Width of the hidden layers.
    activation : str
        Activation of every layer (see ``fastgrad.activations.NAMES``).
    init : str
        Weight initialiser (see ``fastgrad.initializers.WEIGHT_INITS``).
    sigma_w : float, optional
        ``normal``: weights N(0, sigma_w^2); ``scaled_normal``: N(0, sigma_w^2 / fan_in). Default 1.
    sigma_w2 : float, optional
        The same as a variance, sigma_w^2 (the mean-field literature's parameter); give one of the two.
    gain : float
        Gain of the Xavier, He, LeCun, orthogonal and identity inits.
    value : float
        Every weight under ``init="constant"``.
    bias_init : str, optional
        ``zeros``, ``normal`` or ``constant``; default ``normal`` if ``sigma_b > 0`` else ``zeros``.
    sigma_b : float, optional
        Bias standard deviation under ``bias_init="normal"``. Default 0.
    sigma_b2 : float, optional
        The same as a variance; give one of the two.
    bias_value : float
        Every bias under ``bias_init="constant"``.
    input_width, output_width : int, optional
        n_0 and n_L; default ``width``.
    loss : str
        ``mse`` against N(0, 1) targets or ``probe`` (a random back-projection g ~ N(0, I)).
    last_activation : str, optional
        Activation of the last layer (``linear`` for a linear read-out); default ``activation``.
    alpha : float, optional
        Parameter of ``leaky_relu`` (slope) or ``elu``; their default if None.
    """

    depth: int
    width: int
    activation: str = "tanh"
    init: str = "xavier_normal"
    sigma_w: float | None = None
    gain: float = 1.0
    value: float = 0.0
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float = 0.0
    input_width: int | None = None
    output_width: int | None = None
    loss: str = "mse"
    last_activation: str | None = None
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    model: str = field(default="mlp", init=False)

    def __post_init__(self) -> None:
        check_int("depth", self.depth)
        check_int("width", self.width)
        for name in ("input_width", "output_width"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        check_choice("activation", self.activation, NAMES)
        if self.last_activation is not None:
            check_choice("last_activation", self.last_activation, NAMES)
        check_choice("init", self.init, WEIGHT_INITS)
        check_choice("loss", self.loss, LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "value", "bias_value"):
            check_float(name, getattr(self, name))
        self.weight_std, self.bias_std  # noqa: B018  # validates sigma_w / sigma_w2, sigma_b / sigma_b2
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))

    @property
    def dims(self) -> np.ndarray:
        """Layer widths n_0 .. n_L as an int64 array."""
        n0 = self.width if self.input_width is None else self.input_width
        nl = self.width if self.output_width is None else self.output_width
        return np.array([n0] + [self.width] * (self.depth - 1) + [nl], dtype=np.int64)

    def layer_inits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer (weight kind, weight scale, bias kind, bias scale) arrays."""
        dims = self.dims
        w = [weight_kind(self.init, int(dims[l]), int(dims[l + 1]), self.weight_std, self.gain, self.value)
             for l in range(self.depth)]
        bias_init = self.bias_init or ("normal" if self.bias_std > 0 else "zeros")
        b = [bias_kind(bias_init, self.bias_std, self.bias_value)] * self.depth
        return (np.array([k for k, _ in w], dtype=np.int64), np.array([s for _, s in w]),
                np.array([k for k, _ in b], dtype=np.int64), np.array([s for _, s in b]))


CHAIN_INITS = ("normal", "constant")
CHAIN_BIAS_INITS = ("normal", "constant", "centered")


@dataclass(frozen=True)
class Chain(_Scales):
    """The classic chain of one-neuron layers: ``z_l = w_l a_{l-1} + b_l``.

    Parameters
    ----------
    depth : int
        Number of layers L.
    activation : str
        Activation of every neuron.
    init : str
        ``normal`` (w ~ N(0, sigma_w^2)) or ``constant`` (every w = ``value``).
    sigma_w : float, optional
        Weight standard deviation under ``normal`` (default 1); or ``sigma_w2``, its variance.
    value : float
        Every weight under ``constant`` (100 in the exploding example).
    bias_init : str
        ``normal`` (b ~ N(0, sigma_b^2)), ``constant`` (``bias_value``) or
        ``centered`` (b_l = -w_l a_{l-1}, so every z_l = 0 and every factor
        |w phi'(0)| is the same: 25 for sigmoid with w = 100).
    sigma_b : float, optional
        Bias standard deviation under ``normal`` (default 1); or ``sigma_b2``, its variance.
    bias_value : float
        Every bias under ``constant``.
    alpha : float, optional
        Activation parameter (leaky slope, ELU alpha).
    sigma_w2, sigma_b2 : float, optional
        The variances, instead of ``sigma_w`` and ``sigma_b``.

    Notes
    -----
    The input x and target y of a trial are N(0, 1); the cost is (a_L - y)^2 / 2.
    """

    depth: int
    activation: str = "sigmoid"
    init: str = "normal"
    sigma_w: float | None = None
    value: float = 100.0
    bias_init: str = "normal"
    sigma_b: float | None = None
    bias_value: float = 0.0
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    model: str = field(default="chain", init=False)
    BIAS_DEFAULT: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        check_int("depth", self.depth)
        check_choice("activation", self.activation, NAMES)
        check_choice("init", self.init, CHAIN_INITS)
        check_choice("bias_init", self.bias_init, CHAIN_BIAS_INITS)
        for name in ("value", "bias_value"):
            check_float(name, getattr(self, name))
        self.weight_std, self.bias_std  # noqa: B018  # validates sigma_w / sigma_w2, sigma_b / sigma_b2
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))


RNN_LOSSES = ("last", "all", "probe")


@dataclass(frozen=True)
class RNN:
    """A vanilla RNN unrolled over ``steps``: ``z_t = h_{t-1} W_hh + x_t W_xh + b``.

    Parameters
    ----------
    steps : int
        Number of time steps S.
    hidden : int
        Hidden width n.
    inputs : int
        Input width d.
    activation : str
    init : str
        Recurrent init: ``normal`` (N(0, gain^2 / hidden)), ``orthogonal``
        (gain * Q), ``identity`` (gain * I) or ``spectral`` (spectral radius = gain).
    gain : float
    input_scale : float
        W_xh ~ N(0, input_scale^2 / inputs).
    bias_init : str, optional
        ``zeros``, ``normal`` or ``constant``; default ``normal`` if ``sigma_b > 0`` else ``zeros``.
    sigma_b : float, optional
        Bias standard deviation under ``normal`` (default 0); or ``sigma_b2``, its variance.
    bias_value : float
    loss : str
        ``last`` (mse on h_S against N(0, 1) targets), ``all`` (mse summed over
        every step) or ``probe`` (random back-projection of h_S).
    alpha : float, optional
        Activation parameter (leaky slope, ELU alpha).
    jacobian : bool
        Also compute ``jacobian_norm`` (T, S): ``||dh_S / dh_t||_F``, the norm of the
        Jacobian product that the classic analyses bound, for the first sequence
        of each trial's batch. Costs one (n, n) matrix product per step: W-rnn
        (n = 64, batch 16) runs at 0.72x its throughput in float64, 0.64x in float32.
    sigma_b2 : float, optional
        The bias variance, instead of ``sigma_b``.
    """

    steps: int
    hidden: int
    inputs: int
    activation: str = "tanh"
    init: str = "normal"
    gain: float = 1.0
    input_scale: float = 1.0
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float = 0.0
    loss: str = "last"
    alpha: float | None = None
    jacobian: bool = False
    sigma_b2: float | None = None
    model: str = field(default="rnn", init=False)

    def __post_init__(self) -> None:
        for name in ("steps", "hidden", "inputs"):
            check_int(name, getattr(self, name))
        check_choice("activation", self.activation, NAMES)
        check_choice("init", self.init, RECURRENT_INITS)
        check_choice("loss", self.loss, RNN_LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "input_scale", "bias_value"):
            check_float(name, getattr(self, name))
        scale_of("sigma_b", self.sigma_b, self.sigma_b2, 0.0)
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))
        if not isinstance(self.jacobian, (bool, np.bool_)):
            raise ValueError(f"jacobian: expected True or False, got {self.jacobian!r}")

    @property
    def depth(self) -> int:
        """The number of steps (the RNN's depth)."""
        return self.steps

    def bias(self) -> tuple[int, float]:
        """The bias init as ``(kind, scale)``."""
        std = scale_of("sigma_b", self.sigma_b, self.sigma_b2, 0.0)
        return bias_kind(self.bias_init or ("normal" if std > 0 else "zeros"), std, self.bias_value)

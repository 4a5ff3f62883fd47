"""Validated model specifications: what a trial is, before any kernel runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from fastgrad.activations import CODES, DEFAULT_ALPHA, NAMES, REGISTRY
from fastgrad.checks import check_choice, check_float, check_int
from fastgrad.codes import NORMAL, ORTHOGONAL
from fastgrad.initializers import (
    BIAS_INITS,
    RECURRENT_INITS,
    WEIGHT_INITS,
    bias_kind,
    bias_scale,
    weight_kind,
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
        Weight initialiser (see ``fastgrad.initializers.WEIGHT_INITS``); each is scaled by one
        argument, and a scale argument it does not use is refused (see Notes).
    sigma_w : float, optional
        ``normal``: weights N(0, sigma_w^2); ``scaled_normal``: N(0, sigma_w^2 / fan_in);
        ``orthogonal``: sqrt(sigma_w^2) Q; ``identity``: sigma_w I. Default 1.
    sigma_w2 : float, optional
        The same as a variance, sigma_w^2 (the mean-field literature's parameter); give one of the two.
    gain : float, optional
        The scale of the Xavier, He and LeCun inits (times their fan formula; default 1), and a
        synonym of ``sigma_w`` for ``orthogonal`` and ``identity``.
    value : float, optional
        Every weight under ``init="constant"`` (default 0); refused with any other init.
    bias_init : str, optional
        ``zeros``, ``normal`` or ``constant``; default ``normal`` if ``sigma_b > 0`` else ``zeros``.
    sigma_b : float, optional
        Bias standard deviation under ``bias_init="normal"``. Default 0; refused with
        ``bias_init="zeros"`` or ``"constant"``.
    sigma_b2 : float, optional
        The same as a variance; give one of the two.
    bias_value : float, optional
        Every bias under ``bias_init="constant"`` (default 0); refused with any other bias init.
    input_width, output_width : int, optional
        n_0 and n_L; default ``width``.
    loss : str
        ``mse`` against N(0, 1) targets or ``probe`` (a random back-projection g ~ N(0, I)).
    last_activation : str, optional
        Activation of the last layer (``linear`` for a linear read-out); default ``activation``.
    alpha : float, optional
        Parameter of ``leaky_relu`` (slope) or ``elu``; their default if None.

    Notes
    -----
    Which argument scales which init (W is (fan_in, fan_out)); any other scale argument is
    refused, with a message naming the one that counts:

    - ``normal``: N(0, sigma_w^2), by ``sigma_w`` or ``sigma_w2`` (default 1);
    - ``scaled_normal``: N(0, sigma_w^2 / fan_in), by ``sigma_w`` or ``sigma_w2``;
    - ``xavier_normal``: N(0, gain^2 2 / (fan_in + fan_out)), ``xavier_uniform``:
      U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)), ``he_normal``: N(0, gain^2 2 / fan_in),
      ``he_uniform``: a = gain sqrt(6 / fan_in), ``lecun_normal``: N(0, gain^2 / fan_in); by ``gain``
      (default 1);
    - ``orthogonal``: sqrt(sigma_w^2) Q, Q Haar-orthogonal (semi-orthogonal when not square),
      by ``sigma_w`` or ``sigma_w2``, or ``gain`` as a synonym of ``sigma_w`` (one of them);
    - ``identity``: sigma_w I, as ``orthogonal``;
    - ``constant``: every weight = ``value`` (default 0).

    Q's entries have variance 1/n, so orthogonal weights at sigma_w^2 sit on the same
    axis as ``scaled_normal``'s (Pennington et al. 2017; Xiao et al. 2018): mean-field
    theory's chi_1 is the same. For N(0, sigma_w^2 / fan_in) weights use ``scaled_normal``;
    the Xavier, He and LeCun inits refuse ``sigma_w``. Biases: ``sigma_b``/``sigma_b2``
    count under ``bias_init="normal"`` only, ``bias_value`` under ``"constant"`` only.
    """

    depth: int
    width: int
    activation: str = "tanh"
    init: str = "xavier_normal"
    sigma_w: float | None = None
    gain: float | None = None
    value: float | None = None
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
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
            if getattr(self, name) is not None:
                check_float(name, getattr(self, name))
        self.init_scale, self.bias_init_scale  # noqa: B018  # refuse a scale argument the inits do not use
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
        scale = self.init_scale
        w = [weight_kind(self.init, int(dims[l]), int(dims[l + 1]), scale) for l in range(self.depth)]
        b = [bias_kind(*self.bias_init_scale)] * self.depth
        return (np.array([k for k, _ in w], dtype=np.int64), np.array([s for _, s in w]),
                np.array([k for k, _ in b], dtype=np.int64), np.array([s for _, s in b]))


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


@dataclass(frozen=True)
class ResMLP(_Scales):
    """A residual MLP, optionally with pre-LayerNorm, drawn afresh for every trial.

    Widths as the :class:`MLP` (n_0, hidden width n, n_L). Layer 1 (input,
    n_0 -> n) and layer L (read-out, n -> n_L) are plain MLP layers:
    ``z_l = h_{l-1} W_l + b_l``, ``h_l = phi(z_l)`` (the read-out with
    ``last_activation``). Layers l = 2 .. L - 1 are residual blocks:
    ``h_l = h_{l-1} + a phi(z_l)`` with ``z_l = h_{l-1} W_l + b_l``, or with
    ``norm="layer"`` ``z_l = LN(h_{l-1}) W_l + b_l``, where
    ``LN(h) = (h - mean(h)) / sqrt(var(h) + 1e-5)`` over the n units of each row
    (biased variance, no affine parameters: ``torch.nn.functional.layer_norm``).

    Trial k draws exactly the numbers of trial k of :meth:`plain`, the MLP of
    the same fields (weights, biases, inputs, targets): plain and residual nets
    are paired trial by trial.

    Parameters
    ----------
    depth : int
        Number of weight layers L (>= 3: the input layer, at least one residual block, the read-out).
    width, activation, init, sigma_w, sigma_w2, gain, value, bias_init, sigma_b, sigma_b2, bias_value,
    input_width, output_width, loss, last_activation, alpha
        As for :class:`MLP` (its Notes say which argument scales which init), and validated by it.
    residual : float or str
        The branch scale a: a number > 0, or ``"1/sqrt(L)"`` for a = 1 / sqrt(depth). Default 1.
    norm : str, optional
        ``"layer"`` for pre-LayerNorm in the residual blocks; default none.
    """

    depth: int
    width: int
    activation: str = "tanh"
    init: str = "xavier_normal"
    sigma_w: float | None = None
    gain: float | None = None
    value: float | None = None
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    input_width: int | None = None
    output_width: int | None = None
    loss: str = "mse"
    last_activation: str | None = None
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    residual: float | str = 1.0
    norm: str | None = None
    model: str = field(default="resmlp", init=False)

    def __post_init__(self) -> None:
        self.plain()  # validates every field the MLP has, with the MLP's messages
        if self.depth < 3:
            raise ValueError(f"depth: a ResMLP needs >= 3 layers (the input layer, at least one residual block, "
                             f"the read-out), got {self.depth}; use fastgrad.MLP for fewer")
        residual_scale(self.residual, self.depth)
        if self.norm is not None:
            check_choice("norm", self.norm, NORMS)

    def plain(self) -> MLP:
        """The MLP of the same fields: the same widths, inits and draws, without the skips and the norm."""
        return MLP(**{f.name: getattr(self, f.name) for f in fields(MLP) if f.init})

    @property
    def residual_scale(self) -> float:
        """The branch scale a (``residual``, resolved against ``depth``)."""
        return residual_scale(self.residual, self.depth)

    @property
    def dims(self) -> np.ndarray:
        """Layer widths n_0 .. n_L as an int64 array (the MLP's)."""
        return self.plain().dims

    def layer_inits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer (weight kind, weight scale, bias kind, bias scale) arrays (the MLP's)."""
        return self.plain().layer_inits()


CHAIN_INITS = ("normal", "constant")
CHAIN_BIAS_INITS = ("normal", "constant", "centered")
CHAIN_CONSTANT = 100.0
"""Every weight of a chain with ``init="constant"`` unless ``value`` says otherwise (the exploding example)."""


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
        Refused under ``constant``.
    value : float, optional
        Every weight under ``constant`` (default 100, the exploding example); refused under
        ``normal``. Under ``constant`` the constructed spec holds the value used.
    bias_init : str
        ``normal`` (b ~ N(0, sigma_b^2)), ``constant`` (``bias_value``) or
        ``centered`` (b_l = -w_l a_{l-1}, so every z_l = 0 and every factor
        ``|w phi'(0)|`` is the same: 25 for sigmoid with w = 100).
    sigma_b : float, optional
        Bias standard deviation under ``normal`` (default 1); or ``sigma_b2``, its variance.
        Refused under ``constant`` and ``centered``.
    bias_value : float, optional
        Every bias under ``constant`` (default 0; the constructed spec holds it); refused otherwise.
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
    value: float | None = None
    bias_init: str = "normal"
    sigma_b: float | None = None
    bias_value: float | None = None
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
            if getattr(self, name) is not None:
                check_float(name, getattr(self, name))
        self.init_scale  # noqa: B018  # refuses sigma_w under constant, value under normal
        self.bias_init_scale  # noqa: B018  # refuses sigma_b unless normal, bias_value unless constant
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))
        # The value used is stored where it applies (and only there: a spec stays valid when rebuilt from
        # its fields), so that every reader of ``value`` and ``bias_value`` sees a number.
        if self.init == "constant" and self.value is None:
            object.__setattr__(self, "value", CHAIN_CONSTANT)
        if self.bias_init == "constant" and self.bias_value is None:
            object.__setattr__(self, "bias_value", 0.0)


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
        The scale of every recurrent init: gain plays sigma_w (sigma_w^2 = gain^2 on the
        mean-field axis; ``normal`` is ``scaled_normal`` with sigma_w = gain). Default 1.
    input_scale : float
        W_xh ~ N(0, input_scale^2 / inputs).
    bias_init : str, optional
        ``zeros``, ``normal`` or ``constant``; default ``normal`` if ``sigma_b > 0`` else ``zeros``.
    sigma_b : float, optional
        Bias standard deviation under ``normal`` (default 0); or ``sigma_b2``, its variance.
        Refused with ``bias_init="zeros"`` or ``"constant"``.
    bias_value : float, optional
        Every bias under ``bias_init="constant"`` (default 0); refused with any other bias init.
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
    bias_value: float | None = None
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
        for name in ("gain", "input_scale"):
            check_float(name, getattr(self, name))
        self.bias()  # refuses sigma_b unless normal, bias_value unless constant
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))
        if not isinstance(self.jacobian, (bool, np.bool_)):
            raise ValueError(f"jacobian: expected True or False, got {self.jacobian!r}")

    @property
    def depth(self) -> int:
        """The number of steps (the RNN's depth)."""
        return self.steps

    def bias(self) -> tuple[int, float]:
        """The bias init as ``(kind, scale)``."""
        return recurrent_bias(self.bias_init, self.sigma_b, self.sigma_b2, self.bias_value)


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


@dataclass(frozen=True)
class _Gated:
    """The fields and checks the LSTM and GRU specs share (see :class:`LSTM`)."""

    steps: int
    hidden: int
    inputs: int
    init: str = "normal"
    gain: float = 1.0
    input_init: str = "normal"
    input_scale: float = 1.0
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    loss: str = "last"
    chrono_max: int | None = None
    sigma_b2: float | None = None
    jacobian: bool = False

    GATES: ClassVar[int] = 0
    MEMORY: ClassVar[str] = ""

    def _check(self) -> None:
        for name in ("steps", "hidden", "inputs"):
            check_int(name, getattr(self, name))
        check_choice("init", self.init, RECURRENT_INITS)
        check_choice("input_init", self.input_init, INPUT_INITS)
        check_choice("loss", self.loss, RNN_LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "input_scale"):
            check_float(name, getattr(self, name))
        self.bias()  # refuses sigma_b unless normal, bias_value unless constant
        memory = _memory_bias(self.MEMORY, getattr(self, self.MEMORY))
        if self.chrono_max is not None:
            check_int("chrono_max", self.chrono_max, minimum=3)
            if memory != "chrono":
                raise ValueError(f"chrono_max: applies only with {self.MEMORY}='chrono'")
        if not isinstance(self.jacobian, (bool, np.bool_)):
            raise ValueError(f"jacobian: expected True or False, got {self.jacobian!r}")

    @property
    def depth(self) -> int:
        """The number of steps (the network's depth in time)."""
        return self.steps

    def bias(self) -> tuple[int, float]:
        """The init of every bias entry, before the memory gate's is set, as ``(kind, scale)``."""
        return recurrent_bias(self.bias_init, self.sigma_b, self.sigma_b2, self.bias_value)

    def input_kind(self) -> tuple[int, float]:
        """Each gate's input block (d, n) as ``(kind, scale)``."""
        if self.input_init == "orthogonal":
            return ORTHOGONAL, self.input_scale
        if self.input_init == "xavier_normal":
            return NORMAL, self.input_scale * math.sqrt(2.0 / (self.inputs + self.hidden))
        return NORMAL, self.input_scale / math.sqrt(self.inputs)

    def memory(self) -> tuple[bool, float]:
        """``(chrono, value)``: the memory gate's constant bias, or chrono's T_max (default ``steps``)."""
        value = getattr(self, self.MEMORY)
        if value == "chrono":
            return True, float(self.chrono_max or max(self.steps, 3))
        return False, float(value)


@dataclass(frozen=True)
class LSTM(_Gated):
    """An LSTM unrolled over ``steps``, with PyTorch's gate equations (``torch.nn.LSTM``, one layer).

    ``a_t = x_t W_x + h_{t-1} W_h + b`` (B, 4n), gates i, f, g, o in that order;
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``, ``h_0 = c_0 = 0``
    (kernels/cpu_lstm.py has the layout and the backward pass).

    Parameters
    ----------
    steps, hidden, inputs : int
        S, n and d.
    init : str
        Each gate's recurrent (n, n) block: ``normal`` (N(0, gain^2 / n)), ``orthogonal``
        (gain * Q, Q Haar-orthogonal per gate), ``identity`` (gain * I) or ``spectral``
        (spectral radius = gain).
    gain : float
        The scale of every recurrent init: gain plays sigma_w (sigma_w^2 = gain^2 on the
        mean-field axis). Default 1.
    input_init : str
        Each gate's input (d, n) block: ``normal`` (N(0, input_scale^2 / d)),
        ``xavier_normal`` (N(0, input_scale^2 2 / (d + n))) or ``orthogonal`` (input_scale * Q).
    input_scale : float
    bias_init, sigma_b, sigma_b2, bias_value
        Every bias entry, as for :class:`RNN` (default zeros), before the forget gate's is set:
        ``sigma_b`` counts under ``bias_init="normal"`` only, ``bias_value`` under ``"constant"`` only.
    forget_bias : float or "chrono"
        The forget gate's bias: a constant (0, or 1 as Jozefowicz et al. 2015 advise), or
        ``"chrono"`` (Tallec & Ollivier 2018): b_f = log(u), u ~ U(1, chrono_max - 1), and the
        input gate's b_i = -b_f.
    chrono_max : int, optional
        T_max of the chrono init (the longest dependency expected); default ``steps``.
    loss : str
        ``last``, ``all`` or ``probe``, as for :class:`RNN`.
    jacobian : bool
        Also compute ``jacobian_norm`` = ||dh_S/dh_t||_F and ``jacobian_c_norm`` = ||dc_S/dc_t||_F
        (T, S) of the first sequence of each trial's batch: two (n, 4n) x (4n, n) products per step.
    """

    forget_bias: float | str = 0.0
    model: str = field(default="lstm", init=False)

    GATES: ClassVar[int] = 4
    MEMORY: ClassVar[str] = "forget_bias"

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True)
class GRU(_Gated):
    """A GRU unrolled over ``steps``, with PyTorch's gate equations (``torch.nn.GRU``, one layer).

    ``r = sigmoid(ax_r + ah_r)``, ``z = sigmoid(ax_z + ah_z)``, ``n = tanh(ax_n + r * ah_n)``,
    ``h_t = (1 - z) * n + z * h_{t-1}``, with ``ax = x_t W_x + b_ih`` and ``ah = h_{t-1} W_h + b_hh``,
    gates r, z, n in that order, ``h_0 = 0`` (kernels/cpu_gru.py).

    Parameters
    ----------
    steps, hidden, inputs, init, gain, input_init, input_scale, bias_init, sigma_b, sigma_b2, bias_value, loss
        As for :class:`LSTM`; b_ih and b_hh are drawn alike.
    update_bias : float or "chrono"
        The update gate's b_ih block (its b_hh block is 0): z = sigmoid(b) is the share of
        h_{t-1} kept, so larger values remember longer; ``"chrono"``: log(u), u ~ U(1, chrono_max - 1).
    chrono_max : int, optional
    jacobian : bool
        Also compute ``jacobian_norm`` = ||dh_S/dh_t||_F (T, S) of the first sequence of each
        trial's batch: one (n, 3n) x (3n, n) product per step.
    """

    update_bias: float | str = 0.0
    model: str = field(default="gru", init=False)

    GATES: ClassVar[int] = 3
    MEMORY: ClassVar[str] = "update_bias"

    def __post_init__(self) -> None:
        self._check()

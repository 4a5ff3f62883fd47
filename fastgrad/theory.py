"""Mean-field predictions of signal propagation, to compare measurements with.

For a fully connected net with weights N(0, sigma_w^2 / fan_in) and biases
N(0, sigma_b^2), at infinite width the pre-activations of layer l are
Gaussian with variance q_l, and (Poole et al. 2016; Schoenholz et al. 2017):

* the variance map  q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2;
* chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2] multiplies E||delta||^2 per layer
  going backwards; chi_1 = chi(q*) at the fixed point q*;
* the gradient depth scale xi = -1 / ln(chi_1); chi_1 = 1 is the
  order/chaos edge.

Expectations over z ~ N(0, 1) use Gauss-Hermite quadrature with the
activations of :mod:`fastgrad.activations` (the same code the kernels run).
Theory is a prediction to overlay on measurements, never a stand-in for them.
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from typing import Any

import numpy as np
from scipy.optimize import bisect, brentq

from fastgrad.activations import NAMES, evaluate
from fastgrad.codes import CONSTANT, NORMAL, ORTHOGONAL, UNIFORM
from fastgrad.specs import (
    LAYER_NORM_EPS,
    NORMS,
    check_alpha,
    check_choice,
    check_float,
    check_int,
    residual_scale,
)

# An even number of nodes: none at z = 0, so q -> 0 gives the one-sided limit
# (relu: E[phi'^2] = 1/2 for every q > 0, not phi'(0) = 0 at one node).
QUADRATURE_POINTS = 200


_LEAST_INT = {"depth": 1, "steps": 1, "iterations": 1, "points": 16}
"""Integer arguments and their least values."""

_NONNEGATIVE = ("sigma_w2", "sigma_b2", "gain", "input_scale", "q", "q0")
"""Number arguments that must be >= 0 (``q`` may also be inf: a diverging variance map)."""

_POSITIVE = ("q_in",)
"""Number arguments that must be > 0."""


def _check(activation: str | None = None, alpha: float | None = None, **arguments: Any) -> None:
    """Refuse a bad argument of a public function with a ValueError naming it, before any computation.

    ``activation`` must be a known name and ``alpha`` a number it takes; every other keyword is
    checked by its name's rule (:data:`_LEAST_INT`, :data:`_NONNEGATIVE`, :data:`_POSITIVE`).
    """
    if activation is not None:
        check_choice("activation", activation, NAMES)
        check_alpha(alpha, activation)
    for name, value in arguments.items():
        if name in _LEAST_INT:
            check_int(name, value, _LEAST_INT[name])
        elif name == "q" and isinstance(value, (float, np.floating)) and value == math.inf:
            continue
        else:
            v = check_float(name, value, positive=name in _POSITIVE)
            if name in _NONNEGATIVE and v < 0:
                raise ValueError(f"{name}: must be >= 0, got {v}")


def _check_bracket(bracket: Any) -> tuple[float, float]:
    """``bracket`` as (lo, hi), two sigma_w^2 values with 0 <= lo < hi, or a ValueError naming it."""
    try:
        lo, hi = bracket
    except (TypeError, ValueError):
        raise ValueError(f"bracket: expected two sigma_w2 values (lo, hi), got {bracket!r}") from None
    lo, hi = check_float("bracket", lo), check_float("bracket", hi)
    if not 0 <= lo < hi:
        raise ValueError(f"bracket: expected 0 <= lo < hi, got ({lo}, {hi})")
    return lo, hi


@cache
def _nodes(n: int = QUADRATURE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    # Probabilists' Hermite: integrates against exp(-z^2 / 2); normalised to N(0, 1).
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2 * math.pi)


def gaussian_moments(activation: str, q: float, alpha: float | None = None) -> tuple[float, float]:
    """E[phi(sqrt(q) z)^2] and E[phi'(sqrt(q) z)^2] for z ~ N(0, 1).

    Parameters
    ----------
    activation : str
    q : float
        Variance of the pre-activation (>= 0).
    alpha : float, optional
        Activation parameter.

    Returns
    -------
    (float, float)
    """
    _check(activation, alpha, q=q)
    x, w = _nodes()
    # q = inf (a diverging map) is evaluated at 1e300: finite, and past every saturation.
    h, d = evaluate(activation, math.sqrt(min(max(q, 1e-300), 1e300)) * x, alpha)
    return float(np.dot(w, h * h)), float(np.dot(w, d * d))


def variance_map(activation: str, q: float, sigma_w2: float, sigma_b2: float, alpha: float | None = None) -> float:
    """One step of the variance map: q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2."""
    _check(activation, alpha, q=q, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return sigma_w2 * gaussian_moments(activation, q, alpha)[0] + sigma_b2


def q_sequence(activation: str, sigma_w2: float, sigma_b2: float, depth: int, q_in: float = 1.0,
               alpha: float | None = None) -> np.ndarray:
    """Pre-activation variances q_1 .. q_L of a finite-depth net.

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float
    depth : int
    q_in : float
        Mean square of the input entries (1 for N(0, 1) inputs): q_1 = sigma_w^2 q_in + sigma_b^2.
    alpha : float, optional

    Returns
    -------
    numpy.ndarray
        Shape (depth,).
    """
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth, q_in=q_in)
    qs = np.empty(depth)
    qs[0] = sigma_w2 * q_in + sigma_b2
    for l in range(1, depth):
        qs[l] = variance_map(activation, qs[l - 1], sigma_w2, sigma_b2, alpha)
    return qs


def fixed_point(activation: str, sigma_w2: float, sigma_b2: float, alpha: float | None = None,
                q0: float = 1.0, iterations: int = 500) -> float:
    """The fixed point q* reached by the variance map from ``q0``.

    Iterates the map, then polishes the root of map(q) - q with Brent's method:
    near the order/chaos edge the iteration converges like 1/l, too slowly to
    stop on a small step. Returns 0 when the map contracts to 0 (sigma_b = 0,
    ordered phase) and inf when it diverges (unbounded activations).
    """
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, q0=q0, iterations=iterations)
    q = q0
    for _ in range(iterations):
        nxt = variance_map(activation, q, sigma_w2, sigma_b2, alpha)
        if not math.isfinite(nxt) or nxt > 1e300:
            return math.inf
        q = nxt

    def gap(v: float) -> float:
        return variance_map(activation, v, sigma_w2, sigma_b2, alpha) - v

    if q < 1e-300:
        return 0.0
    lo, hi = q, q
    for _ in range(200):
        lo, hi = lo / 2, hi * 2
        if gap(lo) * gap(hi) <= 0:
            return float(brentq(gap, lo, hi, xtol=1e-300, rtol=1e-12, maxiter=500))
        if lo < 1e-300:
            break
    if gap(q) > 0:
        return math.inf  # still growing and no fixed point above: the map diverges
    return 0.0 if sigma_b2 == 0 and q < 1e-8 else q


def chi(activation: str, q: float, sigma_w2: float, alpha: float | None = None) -> float:
    """chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2]: the per-layer factor of E||delta||^2."""
    _check(activation, alpha, q=q, sigma_w2=sigma_w2)
    return sigma_w2 * gaussian_moments(activation, q, alpha)[1]


def chi1(activation: str, sigma_w2: float, sigma_b2: float, alpha: float | None = None) -> float:
    """chi_1 = chi(q*) at the variance map's fixed point."""
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return chi(activation, fixed_point(activation, sigma_w2, sigma_b2, alpha), sigma_w2, alpha)


def depth_scale(activation: str, sigma_w2: float, sigma_b2: float, alpha: float | None = None) -> float:
    """The gradient depth scale xi = -1 / ln(chi_1) (inf at chi_1 = 1; negative when exploding; 0 at sigma_w^2 = 0)."""
    c = chi1(activation, sigma_w2, sigma_b2, alpha)
    return math.inf if c == 1.0 else 0.0 if c == 0.0 else -1.0 / math.log(c)


def critical_sigma_w2(activation: str, sigma_b2: float, alpha: float | None = None,
                      bracket: tuple[float, float] = (0.05, 20.0)) -> float:
    """The sigma_w^2 at which chi_1 = 1 for the given sigma_b^2 (the order/chaos edge).

    Raises
    ------
    ValueError
        If chi_1 - 1 does not change sign over ``bracket``.
    """
    _check(activation, alpha, sigma_b2=sigma_b2)
    lo, hi = _check_bracket(bracket)

    def f(s: float) -> float:
        return chi1(activation, s, sigma_b2, alpha) - 1.0

    if f(lo) * f(hi) > 0:
        raise ValueError(f"bracket: chi_1 - 1 has the same sign at sigma_w2 = {lo} and {hi}")
    # Near the edge chi_1 - 1 is flat (sigma_b = 0: it touches 0 at sigma_w^2 = 1),
    # so 1e-9 is the accuracy the fixed-point polish supports.
    return float(bisect(f, lo, hi, xtol=1e-10, maxiter=200))


def delta_curve(activation: str, sigma_w2: float, sigma_b2: float, depth: int, q_in: float = 1.0,
                alpha: float | None = None) -> np.ndarray:
    """Predicted E||delta_l||^2 / E||delta_L||^2 for l = 1..L at finite depth.

    Uses the actual q_l sequence from the input, not only the fixed point:
    ratio_l = prod_{k=l}^{L-1} chi(q_k).

    Returns
    -------
    numpy.ndarray
        Shape (depth,), last entry 1.
    """
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth, q_in=q_in)
    qs = q_sequence(activation, sigma_w2, sigma_b2, depth, q_in, alpha)
    factors = np.array([chi(activation, q, sigma_w2, alpha) for q in qs[:-1]])
    return np.append(np.cumprod(factors[::-1])[::-1], 1.0)


def delta_slope(activation: str, sigma_w2: float, sigma_b2: float, depth: int, q_in: float = 1.0,
                alpha: float | None = None) -> float:
    """The least-squares slope, per layer, of half the log of :func:`delta_curve` over its ``depth`` layers.

    The theory's counterpart of a decay rate fitted to the same layers (of the
    mean squared norm: ``0.5 log E||delta_l||^2``); 0 at the finite-depth edge.

    Returns
    -------
    float
        inf when a factor is 0 (sigma_w^2 = 0: nothing reaches the earlier layers).
    """
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth, q_in=q_in)
    # log of delta_curve as a sum of logs: the product itself underflows for deep, strongly ordered nets.
    qs = q_sequence(activation, sigma_w2, sigma_b2, depth, q_in, alpha)
    factors = np.array([chi(activation, q, sigma_w2, alpha) for q in qs[:-1]])
    if np.any(factors == 0):
        return math.inf
    log_factors = np.log(factors)
    half_log = 0.5 * np.append(np.cumsum(log_factors[::-1])[::-1], 0.0)
    layer = np.arange(depth, dtype=np.float64) - (depth - 1) / 2
    return float(half_log @ layer / (layer @ layer)) if depth > 1 else 0.0


def finite_depth_edge(activation: str, sigma_b2: float, depth: int, q_in: float = 1.0, alpha: float | None = None,
                      bracket: tuple[float, float] = (0.05, 20.0)) -> float:
    """The sigma_w^2 at which :func:`delta_slope` is 0: the order/chaos edge of a net of this ``depth``.

    q_l is iterated from the input's ``q_in`` through the actual depth and chi_1(q_l)
    multiplied layer by layer, so a shallow net's edge lies right of the fixed
    point's (tanh, sigma_b^2 = 0.05: 2.04 at depth 10, 1.80 at 30, 1.765 at 100,
    against 1.761); it tends to :func:`critical_sigma_w2` with depth.

    Raises
    ------
    ValueError
        If the slope has the same sign at both ends of ``bracket``.
    """
    _check(activation, alpha, sigma_b2=sigma_b2, depth=depth, q_in=q_in)
    lo, hi = _check_bracket(bracket)

    def f(w2: float) -> float:
        return delta_slope(activation, w2, sigma_b2, depth, q_in, alpha)

    if f(lo) * f(hi) > 0:
        raise ValueError(f"bracket: the theory's slope has the same sign at sigma_w2 = {lo} and {hi}")
    return float(brentq(f, lo, hi, xtol=1e-12))


def _residual_moments(activation: str, sigma_w2: float, sigma_b2: float, depth: int, residual: float | str,
                      q_in: float, alpha: float | None,
                      norm: str | None) -> tuple[np.ndarray, np.ndarray, float]:
    """q_1 .. q_L, the LayerNorm scale 1/s^2 of every layer's input (1 where none), and a."""
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, q_in=q_in)
    a = residual_scale(residual, check_int("depth", depth, minimum=3))
    if norm is not None:
        check_choice("norm", norm, NORMS)
    x, w = _nodes()
    qs = np.empty(depth)
    scale = np.ones(depth)
    p, m = q_in, 0.0  # the stream's second moment and mean per unit (the input is centred)
    for l in range(depth):
        block = 0 < l < depth - 1
        if block and norm == "layer":
            var = max(p - m * m, 0.0)
            scale[l] = 1.0 / (var + LAYER_NORM_EPS)
            qs[l] = sigma_w2 * var * scale[l] + sigma_b2
        else:
            qs[l] = sigma_w2 * p + sigma_b2
        h, _ = evaluate(activation, math.sqrt(min(max(qs[l], 1e-300), 1e300)) * x, alpha)
        mean, square = float(np.dot(w, h)), float(np.dot(w, h * h))
        if block:  # the cross term 2 a E[h_{l-1}] E[phi(z_l)]: W_l is independent of h_{l-1}
            p, m = p + 2 * a * m * mean + a * a * square, m + a * mean
        else:
            p, m = square, mean
    return qs, scale, a


def residual_q_sequence(activation: str, sigma_w2: float, sigma_b2: float, depth: int, residual: float | str,
                        q_in: float = 1.0, alpha: float | None = None, norm: str | None = None) -> np.ndarray:
    """Mean-field pre-activation variances q_1 .. q_L of a residual MLP (:class:`fastgrad.ResMLP`).

    Weights N(0, sigma_w^2 / fan_in), biases N(0, sigma_b^2). The stream
    h_l has second moment p_l and mean m_l per unit, from the input's p_0 = q_in,
    m_0 = 0; layer 1 is plain (p_1 = E[phi^2], m_1 = E[phi] at q_1 = sigma_w^2 q_in + sigma_b^2),
    and each block l = 2 .. L - 1 has q_l = sigma_w^2 p_{l-1} + sigma_b^2 and
    p_l = p_{l-1} + 2 a m_{l-1} E[phi] + a^2 E[phi^2] (Yang & Schoenholz 2017,
    whose form drops the mean term: it vanishes for odd activations); with
    ``norm="layer"`` the block sees LN(h_{l-1}), of mean square
    v / (v + eps), v = p_{l-1} - m_{l-1}^2, in place of p_{l-1}. The read-out has
    q_L = sigma_w^2 p_{L-1} + sigma_b^2.

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float
    depth : int
        The number of layers L (>= 3).
    residual : float or str
        The branch scale a: a number > 0 or ``"1/sqrt(L)"``.
    q_in : float
        Mean square of the input entries (1 for N(0, 1) inputs).
    alpha : float, optional
        Activation parameter.
    norm : {"layer"}, optional

    Returns
    -------
    numpy.ndarray
        Shape (depth,).
    """
    return _residual_moments(activation, sigma_w2, sigma_b2, depth, residual, q_in, alpha, norm)[0]


def residual_delta_curve(activation: str, sigma_w2: float, sigma_b2: float, depth: int, residual: float | str,
                         q_in: float = 1.0, alpha: float | None = None, norm: str | None = None) -> np.ndarray:
    """Predicted E||dLoss/dh_{l-1}||^2 / E||dLoss/dh_{L-1}||^2 for l = 1..L: a ResMLP's ``grad_h`` squared, normalised.

    Going back through block l multiplies E||dLoss/dh||^2 by 1 + a^2 chi(q_l)
    (the skip and the branch are uncorrelated, as in the MLP's mean field), or
    by 1 + a^2 chi(q_l) / (v_{l-1} + eps) with LayerNorm (its Jacobian scales by
    1/s and removes two of the n directions, negligible at large width); through
    the plain input layer, by chi(q_1). The q_l are those of
    :func:`residual_q_sequence`; chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2].

    **The loss it assumes.** The law holds when the gradient reaching the read-out's
    input does not depend on the block weights: exactly for the ``probe`` loss (a
    random back-projection) with a linear read-out, nearly when the read-out's
    statistics hardly move with the blocks. Under ``mse`` it need not hold, and with a
    linear read-out it fails: the output gradient h_L - y carries the stream h_L, which
    the same blocks amplified, so it arrives along the directions J amplifies most, and
    the ratio measures the second moment of J's spectrum instead of the first. ResMLP, depth 10, width 64, a = 1,
    2,000 trials, E||g_1||^2 / E||g_9||^2 (99% bootstrap interval) against the law:
    linear, ``probe`` 256.3 [254.1, 258.4] against 256; linear, ``mse`` (the ResMLP
    default) 1089 [1075, 1104] (infinite-width free probability: 1024); tanh,
    ``probe`` 16.1 [16.0, 16.2], ``mse`` 16.2 against 16.0; tanh blocks with a linear
    read-out, ``mse`` 17.5 against 16.0. A saturated read-out is off under either
    loss (linear blocks, tanh read-out: 235 against 256). docs/findings.md has the
    rest; :func:`residual_delta_curve_for` takes a spec and warns when its loss is not
    one the law describes.

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float
    depth : int
        The number of layers L (>= 3).
    residual : float or str
        The branch scale a: a number > 0 or ``"1/sqrt(L)"``.
    q_in : float
        Mean square of the input entries.
    alpha : float, optional
        Activation parameter (``residual`` is the branch scale).
    norm : {"layer"}, optional

    Returns
    -------
    numpy.ndarray
        Shape (depth,): entry l - 1 for column l - 1 of ``grad_h``; the last entry (the read-out's input) is 1.
    """
    qs, scale, a = _residual_moments(activation, sigma_w2, sigma_b2, depth, residual, q_in, alpha, norm)
    factors = [1.0 + a * a * chi(activation, qs[l], sigma_w2, alpha) * scale[l] for l in range(1, depth - 1)]
    factors.insert(0, chi(activation, qs[0], sigma_w2, alpha))
    return np.append(np.cumprod(np.array(factors)[::-1])[::-1], 1.0)


RESIDUAL_LOSSES = ("probe",)
"""The losses under which :func:`residual_delta_curve` describes a ResMLP's ``grad_h``."""


def residual_delta_curve_for(spec: Any, q_in: float = 1.0) -> np.ndarray:
    """:func:`residual_delta_curve` for a :class:`fastgrad.ResMLP`; warns when it does not describe the spec's loss.

    Reads the activation, sigma_w^2, sigma_b^2, depth, branch scale, norm and alpha off
    ``spec`` (sigma_w^2 on the fan-in axis: N(0, s^2) weights have sigma_w^2 = s^2 fan_in,
    U(-s, s) s^2 fan_in / 3, s Q (orthogonal) s^2 min(1, fan_in / fan_out)).

    Parameters
    ----------
    spec : ResMLP
    q_in : float
        Mean square of the input entries (1: ``fastgrad.run`` draws N(0, 1) inputs).

    Returns
    -------
    numpy.ndarray
        As :func:`residual_delta_curve`.

    Raises
    ------
    ValueError
        Naming ``spec`` when it is not a ResMLP, when its weights are not random
        (identity, constant, spectral), its biases a nonzero constant, or its input
        layer's sigma_w^2 differs from its blocks' (the theory takes one).

    Warns
    -----
    UserWarning
        Naming the loss when it is not in :data:`RESIDUAL_LOSSES` (``mse``): the law
        assumes an output gradient independent of the block weights.
    """
    if not hasattr(spec, "residual_scale") or not hasattr(spec, "layer_inits"):  # a residual MLP's spec
        raise ValueError(f"spec: expected a fastgrad.ResMLP, got {type(spec).__name__}")
    w_kind, w_scale, b_kind, b_scale = spec.layer_inits()
    dims = spec.dims
    variances = []
    for layer in (0, 1):  # the input layer and the first block (every block is drawn alike)
        kind, s, fan_in, fan_out = int(w_kind[layer]), float(w_scale[layer]), int(dims[layer]), int(dims[layer + 1])
        if kind == NORMAL:
            variances.append(s * s * fan_in)
        elif kind == UNIFORM:
            variances.append(s * s * fan_in / 3.0)
        elif kind == ORTHOGONAL:
            variances.append(s * s * min(1.0, fan_in / fan_out))
        else:
            raise ValueError(f"spec: init={spec.init!r}: the mean-field theory describes random weights "
                             "(normal, uniform or orthogonal inits)")
    if not math.isclose(variances[0], variances[1], rel_tol=1e-12):
        raise ValueError(f"spec: the theory takes one sigma_w2 for every layer; this spec's input layer has "
                         f"{variances[0]:.6g} and its blocks {variances[1]:.6g} (input_width {dims[0]} against "
                         f"width {dims[1]})")
    if int(b_kind[1]) == CONSTANT and float(b_scale[1]) != 0.0:
        raise ValueError("spec: the mean-field theory describes zero-mean random biases, not bias_init='constant'")
    sigma_b2 = float(b_scale[1]) ** 2 if int(b_kind[1]) == NORMAL else 0.0
    if spec.loss not in RESIDUAL_LOSSES:
        warnings.warn(f"loss={spec.loss!r}: theory.residual_delta_curve assumes an output gradient independent of "
                      "the block weights (loss='probe'); under mse with a linear read-out it underestimates the "
                      "growth towards the input (linear ResMLP, depth 10, width 64, a = 1: 1089 measured against "
                      "256; docs/findings.md)", UserWarning, stacklevel=2)
    return residual_delta_curve(spec.activation, variances[1], sigma_b2, spec.depth, spec.residual, q_in,
                                spec.alpha, spec.norm)


def rnn_q_sequence(activation: str, gain: float, input_scale: float, sigma_b2: float, steps: int,
                   alpha: float | None = None) -> np.ndarray:
    """Mean-field variances q_1 .. q_S of a vanilla RNN's pre-activations.

    W_hh ~ N(0, gain^2 / n), W_xh ~ N(0, input_scale^2 / d), x ~ N(0, 1), h_0 = 0:
    q_t = gain^2 E[phi(sqrt(q_{t-1}) z)^2] + input_scale^2 + sigma_b^2.
    (The mean-field treats W_hh as fresh at every step, as for an MLP.)
    """
    _check(activation, alpha, gain=gain, input_scale=input_scale, sigma_b2=sigma_b2, steps=steps)
    qs = np.empty(steps)
    qs[0] = input_scale**2 + sigma_b2
    for t in range(1, steps):
        qs[t] = variance_map(activation, qs[t - 1], gain**2, input_scale**2 + sigma_b2, alpha)
    return qs


def rnn_grad_h_curve(activation: str, gain: float, input_scale: float, sigma_b2: float, steps: int,
                     alpha: float | None = None) -> np.ndarray:
    """Predicted E||dLoss/dh_t||^2 / E||dLoss/dh_S||^2 for loss on the last step.

    g_{t-1} = (g_t * phi'(z_t)) W_hh^T, so each step back multiplies by chi(q_t) = gain^2 E[phi'^2].
    """
    _check(activation, alpha, gain=gain, input_scale=input_scale, sigma_b2=sigma_b2, steps=steps)
    qs = rnn_q_sequence(activation, gain, input_scale, sigma_b2, steps, alpha)
    factors = np.array([chi(activation, q, gain**2, alpha) for q in qs[1:]])
    return np.append(np.cumprod(factors[::-1])[::-1], 1.0)


def relu_log_jacobian(widths: list[int] | np.ndarray) -> tuple[float, float]:
    """Mean and variance of log ||J u||^2 for a He-initialised ReLU net at finite width.

    Each layer multiplies ||J u||^2 by X = (2/n) sum_i B_i G_i^2 (B ~ Bernoulli(1/2),
    G ~ N(0, 1)) with E[X] = 1 and Var[X] = 5/n, so to first order in 1/n,
    log ||J u||^2 is Gaussian with variance beta = 5 sum 1/n_l and mean -beta/2
    (Hanin 2018).

    Parameters
    ----------
    widths : sequence of int
        The widths n_l of the layers whose factors enter the product.

    Returns
    -------
    (mean, variance) : (float, float)
    """
    n = np.asarray(widths)
    if n.ndim != 1 or n.size == 0 or not np.issubdtype(n.dtype, np.integer) or np.any(n < 1):
        raise ValueError(f"widths: expected a non-empty sequence of integers >= 1, got {widths!r}")
    beta = 5.0 * float(np.sum(1.0 / n.astype(np.float64)))
    return -beta / 2.0, beta


def derivative_moments(activation: str, q: float, alpha: float | None = None) -> tuple[float, float]:
    """mu_1 = E[phi'(sqrt(q) z)^2] and mu_2 = E[phi'(sqrt(q) z)^4] for z ~ N(0, 1).

    Parameters
    ----------
    activation : str
    q : float
    alpha : float, optional

    Returns
    -------
    (float, float)
    """
    _check(activation, alpha, q=q)
    x, w = _nodes()
    _, d = evaluate(activation, math.sqrt(min(max(q, 1e-300), 1e300)) * x, alpha)
    d2 = d * d
    return float(np.dot(w, d2)), float(np.dot(w, d2 * d2))


WEIGHT_S1 = {"gaussian": -1.0, "orthogonal": 0.0}
"""s_1, the first coefficient of the S-transform of W^T W (square layers): -1 for Gaussian, 0 for orthogonal."""


def spectrum_moments(activation: str, sigma_w2: float, sigma_b2: float, depth: int, weights: str = "gaussian",
                     q_in: float = 1.0, alpha: float | None = None) -> dict[str, float]:
    """Mean-field moments of lambda = s^2, the eigenvalues of J J^T, at infinite width.

    Pennington, Schoenholz & Ganguli (2017, "Resurrecting the sigmoid", eqs. 15-16):
    at a fixed point, ``m1 = (sigma_w^2 mu_1)^L`` and
    ``m2 = m1^2 L (mu_2 / mu_1^2 + 1/L - 1 - s_1)``, so the variance of the density is
    ``m1^2 L (mu_2 / mu_1^2 - 1 - s_1)``: at the edge of chaos (sigma_w^2 mu_1 = 1)
    ``L (mu_2 / mu_1^2 - 1 - s_1)``. Here the layers are free (asymptotically), so their
    normalised variances add: with q_l iterated from the input as in :func:`q_sequence`,
    ``m1 = prod_l sigma_w^2 mu_1(q_l)`` and ``var = m1^2 sum_l (mu_2(q_l) / mu_1(q_l)^2 - 1 - s_1)``,
    which is the paper's at a fixed point. Linear nets: Gaussian weights give the Fuss-Catalan
    moments m1 = 1, m2 = L + 1; orthogonal weights every lambda = 1.

    Parameters
    ----------
    activation : str
    sigma_w2, sigma_b2 : float
    depth : int
    weights : {"gaussian", "orthogonal"}
        The layers' weight matrices: N(0, sigma_w^2 / n), or sigma_w times a Haar-orthogonal matrix.
    q_in : float
        Mean square of the input entries.
    alpha : float, optional

    Returns
    -------
    dict
        ``m1``, ``m2``, ``var`` (= m2 - m1^2).
    """
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth, q_in=q_in)
    check_choice("weights", weights, tuple(WEIGHT_S1))
    s1 = WEIGHT_S1[weights]
    m1, spread = 1.0, 0.0
    for q in q_sequence(activation, sigma_w2, sigma_b2, depth, q_in, alpha):
        mu1, mu2 = derivative_moments(activation, float(q), alpha)
        m1 *= sigma_w2 * mu1
        spread += (mu2 / mu1**2 - 1.0 - s1) if mu1 > 0 else math.inf
    var = m1 * m1 * spread
    return {"m1": m1, "m2": var + m1 * m1, "var": var}


def length_map_slope(activation: str, q: float, sigma_w2: float, alpha: float | None = None) -> float:
    """The slope of the variance map, dq_{l+1}/dq_l = sigma_w^2 d/dq E[phi(sqrt(q) z)^2], at q.

    By Stein's lemma d/dq E[phi(sqrt(q) z)^2] = E[phi(x) phi'(x) x] / q with x = sqrt(q) z,
    which is E[phi'(x)^2 + phi(x) phi''(x)]. The rate at which a change of the signal's
    length relaxes, layer by layer (1 at every q for linear and relu nets at sigma_w^2 = 1 and 2).

    Parameters
    ----------
    activation : str
    q : float
        Variance of the pre-activation (>= 0; q -> 0 gives the limit).
    sigma_w2 : float
    alpha : float, optional

    Returns
    -------
    float
    """
    _check(activation, alpha, q=q, sigma_w2=sigma_w2)
    x, w = _nodes()
    root = math.sqrt(min(max(q, 1e-300), 1e300))
    h, d = evaluate(activation, root * x, alpha)
    return sigma_w2 * float(np.dot(w, h * d * x)) / root


def _inverse_length_entry(activation: str, q: float, alpha: float | None) -> float:
    """kappa(q) = E[x phi(x) / phi'(x)] / q = E[1 - phi phi'' / phi'^2], x ~ N(0, q) (tanh: exp(2 q))."""
    x, w = _nodes()
    root = math.sqrt(min(max(q, 1e-300), 1e300))
    h, d = evaluate(activation, root * x, alpha)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return float(np.dot(w, x * h / d)) / root


def length_mode(activation: str, sigma_w2: float, sigma_b2: float, depth: int, q_in: float = 1.0,
                alpha: float | None = None) -> np.ndarray:
    """Predicted smallest singular value of J = dh_L/dh_0, relative to the bulk, of orthogonal nets of depth 1..L.

    The length mode. Orthogonal weights W_l = sigma_w Q_l keep every direction's norm,
    except one: a change of h's *length* changes q_l, which the variance map pulls back
    towards its fixed point. The Jacobian of one layer is M_l = D_l W_l^T (D_l = diag phi'(z_l)),
    its inverse W_l D_l^{-1} / sigma_w^2, and the inverse's entry along the signal's direction
    e_l = h_l / ||h_l|| is, at large width (Stein's lemma over z_l - b_l ~ N(0, sigma_w^2 p_{l-1})),

        rho_l = <e_{l-1}, M_l^{-1} e_l> = kappa(q_l) sqrt(p_{l-1} / p_l),
        kappa(q) = E[1 - phi(x) phi''(x) / phi'(x)^2] = E[x phi(x) / phi'(x)] / q,  x ~ N(0, q),

    with p_l = E[phi(sqrt(q_l) z)^2] the mean square of h_l (p_0 = ``q_in``). When this
    direction grows fastest under J^{-1}, ||J^{-1}|| ~ prod_l rho_l, so the smallest
    singular value s_min = 1 / ||J^{-1}|| ~ prod_l sqrt(p_l / p_{l-1}) / kappa(q_l); against
    the bulk's root mean square sqrt(prod_l chi(q_l)) (:func:`spectrum_moments`' m1):

        s_min / s_rms = prod_l sqrt(p_l / (p_{l-1} chi(q_l))) / kappa(q_l).

    tanh: kappa(q) = E[cosh 2x] = exp(2 q), so at the fixed point at the edge of chaos
    (chi_1 = 1) the mode falls by exp(-2 q*) per layer (sigma_b^2 = 1e-4: q* = 0.0457,
    a factor 10 every 25 layers). Linear nets: every factor is exactly 1 (no mode),
    and so for leaky relu at sigma_b^2 = 0 (phi / phi' = x). The input-output vectors of
    the mode: the output side is nearly e_L (and the input side exactly J^{-1} e_L,
    normalised: the input change that only rescales h_L).

    Measured (scripts/length_mode.py, width 128, 100 trials, tanh at the edge, sigma_b^2 =
    1e-4 and 1e-3): the median of log10(s_min / s_rms) lies 0.19 and 0.16 decades below
    this at depth 8, 0.08 and 0.05 at 16, within 0.04 from depth 32 to 128, where it
    reaches -7.4 and -14.0 (quartiles +-0.2). Below depth ~8 the mode has not left the
    bulk (the second smallest value is close) and the smallest lies up to 0.7 decades
    below. The product of the length map's forward slopes (:func:`length_map_slope`,
    the mean-field d||h_L|| / d||h_0||) agrees to first order in q only and misses by
    1.5 and 3.0 decades at depth 128: s_min is set by the inverse's growth.

    Parameters
    ----------
    activation : str
        phi' > 0 everywhere (J invertible): refused for relu (phi' = 0 for z < 0: J is
        singular, half its singular values 0) and gelu (phi' changes sign).
    sigma_w2, sigma_b2 : float
        sigma_w2 > 0: the weights are sqrt(sigma_w2) Q, Q Haar-orthogonal (square layers).
    depth : int
    q_in : float
        Mean square of the input entries (1 for N(0, 1) inputs).
    alpha : float, optional

    Returns
    -------
    numpy.ndarray
        Shape (depth,): entry l - 1 for a net of l layers (every layer with ``activation``).
        Values >= 1 say that no direction falls below the bulk (then s_min is the bulk's).
    """
    _check(activation, alpha, sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth, q_in=q_in)
    if sigma_w2 == 0:
        raise ValueError("sigma_w2: must be > 0 for the length mode (at 0, J = 0)")
    probe = np.linspace(-5.0, 5.0, 101)
    if np.any(evaluate(activation, probe, alpha)[1] <= 0):
        raise ValueError(f"activation: {activation}'s derivative is 0 or negative somewhere, so J is not invertible "
                         "and has no length mode (relu: half its singular values are 0); the length mode needs "
                         "phi' > 0")
    qs = q_sequence(activation, sigma_w2, sigma_b2, depth, q_in, alpha)
    log_factors = np.empty(depth)
    p_prev = q_in
    for l, q in enumerate(qs):
        p = gaussian_moments(activation, float(q), alpha)[0]
        log_factors[l] = (0.5 * math.log(p / (p_prev * chi(activation, float(q), sigma_w2, alpha)))
                          - math.log(_inverse_length_entry(activation, float(q), alpha)))
        p_prev = p
    return np.exp(np.cumsum(log_factors))


def linear_gaussian_moments(depth: int, width: int) -> dict[str, float]:
    """Exact moments of lambda for a product of ``depth`` square (width, width) N(0, 1/width) matrices.

    With A = J^T J, Wick's theorem gives, for one more layer W,
    ``E (tr A')^2 = E (tr A)^2 + 2 E tr A^2 / n`` and
    ``E tr A'^2 = (E (tr A)^2 + (n + 1) E tr A^2) / n``, from A = I. So m1 = 1 and
    m2 = E tr (J J^T)^2 / n exactly at finite width (one layer: 2 + 1/n; as n grows,
    the Fuss-Catalan L + 1).

    Parameters
    ----------
    depth, width : int

    Returns
    -------
    dict
        ``m1``, ``m2``, ``var``.
    """
    _check(depth=depth)
    n = float(check_int("width", width))
    trace_sq, tr_a2 = n * n, n  # E (tr A)^2 and E tr A^2 for A = I
    for _ in range(depth):
        trace_sq, tr_a2 = trace_sq + 2.0 * tr_a2 / n, (trace_sq + (n + 1.0) * tr_a2) / n
    m2 = tr_a2 / n
    return {"m1": 1.0, "m2": m2, "var": m2 - 1.0}


def fuss_catalan_density(depth: int, points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """The density of lambda for a product of ``depth`` Gaussian layers at infinite width (Fuss-Catalan).

    The eigenvalues of J J^T, J a product of L square N(0, 1/n) matrices, follow the
    Fuss-Catalan law with moments (1/(L k + 1)) binom((L + 1) k, k) (m1 = 1, m2 = L + 1).
    Its density in the parametrisation of Haagerup & Moller (2012): for
    0 < phi < pi / (L + 1),
    ``x = sin((L+1) phi)^(L+1) / (sin(phi) sin(L phi)^L)`` and
    ``rho(x) = sin(phi)^2 sin(L phi)^(L-1) / (pi sin((L+1) phi)^L)``.

    Parameters
    ----------
    depth : int
        L >= 1.
    points : int
        Points of the curve, geometrically dense where x is small.

    Returns
    -------
    log10_lambda : numpy.ndarray
        Increasing.
    density : numpy.ndarray
        The density per unit of log10(lambda): rho(x) x ln(10), to compare with histograms of log10(lambda).
    """
    _check(depth=depth, points=points)
    s = int(depth)
    end = math.pi / (s + 1)
    # phi = end - d from near 0 (x at its largest) to near end, where x -> 0 like ((L+1) d)^(L+1): linear
    # steps on the first half, geometric ones on the second, down to x ~ 1e-300 (the mass below is
    # ~ x^(1/(L+1))). Logarithms throughout: sin(L phi)^L underflows for large L.
    edge = math.log(math.sin(end)) + s * math.log(math.sin(s * end))
    d_min = math.exp((-300 * math.log(10.0) + edge) / (s + 1)) / (s + 1)
    d = np.concatenate([np.linspace(end * (1 - 1e-9), end / 2, points // 2, endpoint=False),
                        np.geomspace(end / 2, min(d_min, end / 4), points - points // 2)])
    phi = end - d
    # sin((L+1) phi) = sin((L+1) d): from whichever of phi and d is small, so that neither is a difference.
    log_top = np.log(np.where(d < end / 2, np.sin((s + 1) * d), np.sin((s + 1) * phi)))
    log_x = (s + 1) * log_top - np.log(np.sin(phi)) - s * np.log(np.sin(s * phi))
    log_rho = 2 * np.log(np.sin(phi)) + (s - 1) * np.log(np.sin(s * phi)) - math.log(math.pi) - s * log_top
    order = np.argsort(log_x)
    return log_x[order] / math.log(10.0), np.exp(log_rho + log_x)[order] * math.log(10.0)


"""A sweep's questions, answered in one call each: decay rates per configuration, and where they cross zero.

Both functions take a store (its folder) or the frame :func:`fastgrad.load`
returns: grid parameters as columns, then ``trial``, ``layer`` and the
statistics. Trials are paired across the cells of a sweep (trial k of every
cell uses the same standard normals), so the bootstrap of :func:`edge` resamples
trial indices jointly across the cells it compares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import pandas as pd

from fastgrad import models, stats, theory
from fastgrad.store import load, manifest

MAIN_METRIC = {name: model.main_metric for name, model in models.REGISTRY.items()}
"""The statistic each model's decay is measured on, unless another is asked for (its ``main_metric``)."""


MEAN_FIELD_INITS = ("scaled_normal", "orthogonal", "delta_orthogonal")
"""The MLP weight inits mean-field theory's sigma_w^2 describes: N(0, sigma_w^2 / fan_in) and
sqrt(sigma_w^2) Q, whose entries have the same variance (Pennington et al. 2017; Xiao et al. 2018),
so chi_1 is the same. Not ``identity``: sigma_w I does not mix units, so pre-activations never become
Gaussian; at tanh, sigma_b^2 = 0.05, depth 30, width 64 its decay rate crosses zero at
sigma_w^2 = 1.31, the scaled-normal and orthogonal nets' at 1.77 and 1.79 (theory at depth 30: 1.80;
docs/architecture.md, "Scales"). A CNN's ``delta_orthogonal`` is the orthogonal MLP position by position
(docs/cnn.md)."""


class Sweep(NamedTuple):
    """A store read once (:func:`read`): its tidy frame and its manifest (None for a bare frame)."""

    frame: pd.DataFrame
    info: dict[str, Any] | None


Source: TypeAlias = str | Path | pd.DataFrame | Sweep
"""What the analyses take: a store's folder, a frame from :func:`fastgrad.load`, or a :class:`Sweep`."""


def read(source: Source) -> Sweep:
    """Read a store (or take a frame) once, for several analyses.

    Parameters
    ----------
    source : str, Path, DataFrame or Sweep

    Returns
    -------
    Sweep
    """
    if isinstance(source, Sweep):
        return source
    if isinstance(source, pd.DataFrame):
        return Sweep(source, None)
    info = manifest(source)  # a folder that is not a store is named before any cell is read
    return Sweep(load(source), info)


def _frame(source: Source) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    sweep = read(source)
    return sweep.frame, sweep.info


def mean_field_axis(model: str, init: Any, x: str) -> str | None:
    """How a grid axis reads on mean-field theory's sigma_w^2 axis, where the theory describes the weights.

    Parameters
    ----------
    model : str
        The sweep's model (the theory is the plain MLP's).
    init : str
        The MLP's weight init (one of :data:`MEAN_FIELD_INITS`, else the theory does not apply).
    x : str
        The axis: ``sigma_w2``, ``sigma_w``, or ``gain`` (orthogonal: gain = sigma_w).

    Returns
    -------
    {"variance", "std"} or None
        ``variance``: x is sigma_w^2; ``std``: x is sigma_w; None: the theory does not apply.
    """
    family = models.REGISTRY.get(model)
    if family is None or not family.mean_field or init not in MEAN_FIELD_INITS:
        return None
    if x == "sigma_w2":
        return "variance"
    if x == "sigma_w" or (x == "gain" and init == "orthogonal"):
        return "std"
    return None


def check(source: Source, metric: str | None = None, x: str | None = None, by: str | None = None,
          statistic: str = "log", names: dict[str, str] | None = None) -> str:
    """Check the arguments of :func:`decay_table` and :func:`edge` against a sweep, before computing anything.

    Parameters
    ----------
    source : str, Path, DataFrame or Sweep
    metric : str, optional
    x, by : str, optional
        The edge's axis and the axis it is split by (None: not asked for).
    statistic : {"log", "square"}
    names : dict, optional
        What to call the arguments in the messages (the command line: ``{"x": "--edge", ...}``).

    Returns
    -------
    str
        The metric (the model's main one if ``metric`` is None).

    Raises
    ------
    ValueError
        Naming the argument that is not a statistic or grid parameter of the sweep.
    """
    name = {"x": "x", "by": "by", "metric": "metric", "statistic": "statistic", **(names or {})}
    if statistic not in ("log", "square"):
        raise ValueError(f"{name['statistic']}: unknown {statistic!r}; choose log or square")
    frame, info = _frame(source)
    params = _params(frame)
    metric = _metric(frame, info, metric, name["metric"])
    for arg, axis in (("x", x), ("by", by)):
        if axis is not None and axis not in params:
            raise ValueError(f"{name[arg]}: {axis!r} is not a grid parameter of this sweep; choose one of {params}")
    return metric


def _params(frame: pd.DataFrame) -> list[str]:
    if "trial" not in frame.columns or "layer" not in frame.columns:
        raise ValueError("source: expected a frame of fastgrad.load (columns ..., trial, layer, statistics)")
    columns = list(frame.columns)
    return columns[: columns.index("trial")]


def _metric(frame: pd.DataFrame, info: dict[str, Any] | None, metric: str | None, name: str = "metric") -> str:
    if metric is None:
        if info is not None:
            metric = models.named(info["model"]).main_metric
        else:
            metric = next((m for m in ("delta", "grad_h", "grad_b") if m in frame.columns), None)
    if metric is None or metric not in frame.columns:
        stats_columns = list(frame.columns)[list(frame.columns).index("layer") + 1:]
        raise ValueError(f"{name}: {metric!r} is not a statistic of this sweep; choose one of {stats_columns}")
    return metric


def _values(group: pd.DataFrame, metric: str) -> np.ndarray:
    """(trials, layers) of one configuration, rows ordered by trial."""
    return group.pivot(index="trial", columns="layer", values=metric).sort_index().to_numpy()


def decay_table(source: Source, metric: str | None = None, n_boot: int = 1000,
                level: float = 0.95) -> pd.DataFrame:
    """One row per configuration: fitted decay rate with its bootstrap interval, depth scale, fractions.

    Parameters
    ----------
    source : str, Path, DataFrame or Sweep
        A store, a frame from :func:`fastgrad.load`, or a store read once (:func:`read`).
    metric : str, optional
        The statistic; default the model's main one (``delta`` for MLPs,
        ``grad_h`` for RNNs and residual MLPs, ``grad_b`` for chains).
    n_boot : int
        Bootstrap resamples of trials for the interval.
    level : float
        Confidence level of the interval.

    Returns
    -------
    pandas.DataFrame
        The grid parameters, then ``slope`` (of the mean log-norm per layer;
        > 0: the norm shrinks going back to the input), ``low``, ``high``,
        ``depth_scale`` (layers per factor e), ``vanished``, ``exploded``,
        ``nonfinite`` (fractions of trials, first layer against last), ``trials``
        and ``excluded`` (trials with a zero or non-finite norm, left out of the fit).
    """
    frame, info = _frame(source)
    params = _params(frame)
    metric = _metric(frame, info, metric)
    rows = []
    groups = frame.groupby(params, sort=False, dropna=False) if params else [((), frame)]
    for key, group in groups:
        values = _values(group, metric)
        rate = stats.decay_rate(values, metric, n_boot=n_boot, level=level)
        frac = stats.fractions(values, metric)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(params, key, strict=True)), "slope": rate["slope"], "low": rate["low"],
                     "high": rate["high"], "depth_scale": rate["depth_scale"], "vanished": frac["vanished"],
                     "exploded": frac["exploded"], "nonfinite": frac["nonfinite"], "trials": int(rate["trials"]),
                     "excluded": int(rate["excluded"])})
    return pd.DataFrame(rows)


def _slopes(logs: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row's mean log-norm against the layer: logs (cells, trials, layers)."""
    mean = np.nanmean(logs, axis=1)
    x = np.arange(logs.shape[2], dtype=np.float64)
    xc = x - x.mean()
    return (mean - mean.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)


def _crossing(xs: np.ndarray, slopes: np.ndarray) -> float:
    """The first x where the slope changes sign (linear interpolation), nan if it never does."""
    for i in range(len(xs) - 1):
        a, b = slopes[i], slopes[i + 1]
        if np.isfinite(a) and np.isfinite(b) and a != b and (a == 0 or np.sign(a) != np.sign(b)):
            return float(xs[i] + (xs[i + 1] - xs[i]) * a / (a - b))
    return float("nan")


def edge(source: Source, x: str = "sigma_w2", by: str | None = "sigma_b2",
         metric: str | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
         statistic: str = "log") -> pd.DataFrame:
    """Where the decay rate crosses zero along ``x``, for each value of ``by``: the order/chaos edge.

    The slope per layer of the mean log-norm (``statistic="log"``, as
    :func:`decay_table`) or of half the log of the mean squared norm
    (``statistic="square"``: the quantity mean-field theory predicts) is
    computed in every cell; along ``x`` (sorted) the edge is the first sign change,
    interpolated linearly between the two grid points around it. The interval
    resamples trials with replacement, the same trial indices in every cell of a
    row (trials are paired across the sweep), ``n_boot`` times. Trials with a zero
    or non-finite norm are left out of the mean of their cell.

    Parameters
    ----------
    source : str, Path, DataFrame or Sweep
        A store, a frame from :func:`fastgrad.load`, or a store read once (:func:`read`).
    x : str
        The grid axis to cross (``sigma_w2``, ``sigma_w``, ``gain``, ...).
    by : str or None
        One edge per value of this axis (None: one edge). Other axes that vary
        also get their own rows.
    metric : str, optional
        Default the model's main statistic.
    n_boot : int
    level : float
    seed : int
        Seed of the resampling.
    statistic : {"log", "square"}

    Returns
    -------
    pandas.DataFrame
        Per row: the other parameters, ``edge``, ``low``, ``high`` (nan where
        the rate never crosses zero on the grid or the resample does not),
        ``crossed`` (the fraction of resamples that cross), and, for MLPs whose
        weights are ``scaled_normal`` or ``orthogonal`` (:data:`MEAN_FIELD_INITS`) with a
        single activation and ``x`` = ``sigma_w2`` (``sigma_w``; orthogonal also ``gain``),
        in the units of ``x``: ``theory_finite_depth``,
        where the slope of half the log of mean-field theory's E||delta_l||^2
        (``theory.delta_curve``: q_l iterated from the inputs' q = 1 through the
        sweep's depth, chi_1(q_l) multiplied layer by layer), fitted over the same
        layers, crosses zero; and ``theory_infinite_depth``, the fixed point's
        chi_1 = 1.
    """
    frame, info = _frame(source)
    metric = check(Sweep(frame, info), metric, x, by, statistic)
    params = _params(frame)
    rest = [p for p in params if p != x and frame[p].nunique(dropna=False) > 1]
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    rows = []
    groups = frame.groupby(rest, sort=True, dropna=False) if rest else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        cells = sorted(group.groupby(x, sort=True), key=lambda kv: kv[0])
        xs = np.array([float(v) for v, _ in cells])
        values = [_values(g, metric) for _, g in cells]
        trials = min(v.shape[0] for v in values)
        stack = np.stack([v[:trials] for v in values])  # (cells, trials, layers)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            data = np.log(stack) if statistic == "log" else stack**2
        data[~np.isfinite(data)] = np.nan
        rate = _slopes if statistic == "log" else _square_slopes
        point = _crossing(xs, rate(data))
        boots = np.empty(n_boot)
        for i in range(n_boot):
            idx = rng.integers(0, trials, trials)
            boots[i] = _crossing(xs, rate(data[:, idx]))
        found = boots[np.isfinite(boots)]
        low, high = (np.quantile(found, [alpha, 1 - alpha]) if found.size > n_boot // 2 else (np.nan, np.nan))
        row = {**dict(zip(rest, key, strict=True)), "edge": point, "low": float(low), "high": float(high),
               "crossed": float(found.size / n_boot)}
        row["theory_finite_depth"], row["theory_infinite_depth"] = _theory_edge(frame, info, x, row, xs,
                                                                                values[0].shape[1])
        rows.append(row)
    return pd.DataFrame(rows)


def _square_slopes(squares: np.ndarray) -> np.ndarray:
    """Slope of half the log of the mean squared norm against the layer: squares (cells, trials, layers)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = 0.5 * np.log(np.nanmean(squares, axis=1))[:, None, :]
    return _slopes(logs)


def _theory_edge(frame: pd.DataFrame, info: dict[str, Any] | None, x: str, row: dict[str, Any], xs: np.ndarray,
                 layers: int) -> tuple[float, float]:
    """The mean-field edges (finite depth, infinite depth) in ``x``'s units, where they apply; nan otherwise."""
    nan = (float("nan"), float("nan"))
    # A bare frame: the fully connected nets' statistics (delta, no grad_h) stand for a mean-field model.
    fully_connected = "delta" in frame and "grad_h" not in frame
    name = info["model"] if info is not None else next(
        (n for n, m in models.REGISTRY.items() if m.mean_field), "") if fully_connected else ""
    # The init (the row's, when it is an axis); no init column: the MLP's default, xavier_normal, which
    # sigma_w does not scale.
    inits = [row["init"]] if "init" in row else frame["init"].unique() if "init" in frame.columns else []
    axis = mean_field_axis(name, str(inits[0]), x) if len(inits) == 1 else None
    if axis is None:
        return nan
    acts = frame["activation"].unique() if "activation" in frame.columns else ["tanh"]
    if len(acts) != 1:
        return nan
    act = str(acts[0])
    b2 = 0.0  # no bias axis: the default sigma_b = 0
    for name in ("sigma_b2", "sigma_b"):
        if name in row or name in frame.columns:
            b = float(row[name]) if name in row else float(frame[name].iloc[0])
            b2 = b if name == "sigma_b2" else b * b
            break
    w2_range = (xs.min(), xs.max()) if axis == "variance" else (xs.min() ** 2, xs.max() ** 2)
    unit = (lambda w2: w2) if axis == "variance" else np.sqrt
    try:
        finite = float(unit(theory.finite_depth_edge(act, b2, layers, bracket=w2_range)))
    except ValueError:  # no sign change over the sweep's range
        finite = float("nan")
    try:
        infinite = float(unit(theory.critical_sigma_w2(act, b2)))
    except ValueError:
        infinite = float("nan")
    return finite, infinite

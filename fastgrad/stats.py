"""Gradient-decay curves from per-trial statistics: bands, decay rates, fractions.

Every function takes a :class:`fastgrad.Result` (or its per-trial array) and
returns tidy pandas DataFrames, one row per configuration x layer. Non-finite
trials (overflow) are counted in their own columns and never silently dropped:
a quantile over trials uses every trial, with inf ordered above every finite
value and nan counted separately.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fastgrad.results import Result


def _values(result: Result | np.ndarray, metric: str) -> np.ndarray:
    values = result if isinstance(result, np.ndarray) else getattr(result, metric)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"metric: {metric!r} is not a per-layer statistic (shape {values.shape})")
    return values


def ratios(values: np.ndarray) -> np.ndarray:
    """Each trial's curve divided by its own last-layer value (the ratio curve)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return values / values[:, -1:]


def decay_curve(
    result: Result | np.ndarray, metric: str = "grad_w", normalize: bool = False, **config: Any
) -> pd.DataFrame:
    """Per-layer distribution of a gradient norm over trials.

    Parameters
    ----------
    result : Result or array (trials, layers)
    metric : str
        ``grad_w``, ``grad_b``, ``delta``, ``q``, ``grad_h``, ``grad_whh_step``, ...
    normalize : bool
        Divide each trial by its own last-layer value first (ratio curve).
    **config
        Columns added to every row (the configuration's name and parameters).

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer`` (1-based, 1 nearest the input or the
        earliest step), ``median``, ``q25``, ``q75``, ``q05``, ``q95``,
        ``geomean`` (over trials with a finite positive value), ``trials``,
        ``nonfinite`` (trials with inf or nan at this layer), ``zero``.
    """
    values = _values(result, metric)
    if normalize:
        values = ratios(values)
    nan = np.isnan(values)
    # inf sorts above every finite value, so upper quantiles of an exploding
    # layer are inf rather than a quantile of the survivors.
    ordered = np.where(nan, np.inf, values)
    with np.errstate(invalid="ignore"):
        q = np.quantile(ordered, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    q = np.where(np.isnan(q), np.inf, q)  # inf - inf while interpolating between two infs
    positive = np.isfinite(values) & (values > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(positive, np.log(np.where(positive, values, 1.0)), 0.0)
        geomean = np.exp(logs.sum(axis=0) / positive.sum(axis=0))
    frame = pd.DataFrame(
        {
            "layer": np.arange(1, values.shape[1] + 1),
            "median": q[2],
            "q25": q[1],
            "q75": q[3],
            "q05": q[0],
            "q95": q[4],
            "geomean": geomean,
            "trials": values.shape[0],
            "nonfinite": (~np.isfinite(values)).sum(axis=0),
            "zero": (values == 0).sum(axis=0),
        }
    )
    frame.insert(0, "metric", metric + ("_ratio" if normalize else ""))
    for i, (key, value) in enumerate(config.items()):
        frame.insert(i, key, value)
    return frame


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))


def decay_rate(
    result: Result | np.ndarray,
    metric: str = "grad_w",
    layers: slice | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Fitted decay rate: the slope of the mean log-norm against the layer index.

    The slope is fitted to ``mean over trials of log(norm_l)`` by least squares;
    its confidence interval comes from resampling trials (bootstrap). Trials
    with any non-finite or zero value in the fitted layers have no log-norm:
    they are excluded from the fit and counted in ``excluded``.

    Parameters
    ----------
    result : Result or array (trials, layers)
    metric : str
    layers : slice, optional
        Positions along the array's layer axis to fit (``slice(0, 10)`` is
        layers 1-10); default all.
    n_boot : int
        Bootstrap resamples.
    level : float
        Confidence level of the interval.
    seed : int
        Seed of the bootstrap resampling.

    Returns
    -------
    dict
        ``slope`` of log(norm) per layer (natural log): positive when the norm
        grows towards the output, i.e. vanishes going back to the input;
        negative when it explodes backwards. Mean-field theory predicts
        ``slope = -ln(chi_1) / 2`` for ``delta`` (``-ln chi_1`` for its square).
        ``low``, ``high``: the bootstrap interval; ``depth_scale``: 1 / |slope|,
        layers per factor e of the norm; ``trials``, ``excluded``.
    """
    values = _values(result, metric)
    if layers is not None:
        values = values[:, layers]
    if values.shape[1] < 2:
        raise ValueError("layers: need at least two layers to fit a slope")
    ok = np.all(np.isfinite(values) & (values > 0), axis=1)
    logs = np.log(values[ok])
    x = np.arange(values.shape[1], dtype=np.float64)
    nan_result = {"slope": np.nan, "low": np.nan, "high": np.nan, "depth_scale": np.nan,
                  "trials": float(values.shape[0]), "excluded": float((~ok).sum())}
    if logs.shape[0] < 2:
        return nan_result
    slope = _slope(x, logs.mean(axis=0))
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, logs.shape[0], logs.shape[0])
        boots[i] = _slope(x, logs[idx].mean(axis=0))
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return {"slope": slope, "low": float(low), "high": float(high),
            "depth_scale": 1.0 / abs(slope) if slope != 0 else np.inf,
            "trials": float(values.shape[0]), "excluded": float((~ok).sum())}


def fractions(
    result: Result | np.ndarray, metric: str = "grad_w", vanish: float = 1e-6, explode: float = 1e6
) -> dict[str, float]:
    """Fractions of trials whose first-layer gradient vanished or exploded.

    Relative to the same trial's last layer: vanished if first / last <
    ``vanish``, exploded if > ``explode``; non-finite if any layer is inf or nan
    (those trials are neither vanished nor exploded, and never dropped).

    Returns
    -------
    dict
        ``vanished``, ``exploded``, ``nonfinite`` (fractions of all trials) and ``trials``.
    """
    values = _values(result, metric)
    finite = np.all(np.isfinite(values), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = values[:, 0] / values[:, -1]
    n = values.shape[0]
    return {
        "vanished": float(np.sum(finite & (r < vanish)) / n),
        "exploded": float(np.sum(finite & (r > explode)) / n),
        "nonfinite": float(np.sum(~finite) / n),
        "trials": float(n),
    }


def summary(results: dict[str, Result], metric: str, normalize: bool = False) -> pd.DataFrame:
    """Decay curves of several configurations, one row per configuration x layer.

    Parameters
    ----------
    results : dict of name to Result
    metric : str
    normalize : bool

    Returns
    -------
    pandas.DataFrame
        :func:`decay_curve` rows with a leading ``configuration`` column.
    """
    return pd.concat(
        [decay_curve(res, metric, normalize, configuration=name) for name, res in results.items()],
        ignore_index=True,
    )


def paired_comparison(
    a: Result, b: Result, metric: str = "grad_w", layer: int = 1, n_boot: int = 2000, level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Compare two configurations run with the same seed, trial by trial.

    Trial k of both runs shares its underlying random draws (common random
    numbers), so the per-trial difference of log-norms is far less noisy than
    the difference of two independent means.

    Parameters
    ----------
    a, b : Result
        Runs with the same seed and number of trials.
    metric : str
    layer : int
        The layer (or step) to compare, numbered as in the frames and figures:
        1 is nearest the input (the earliest step), L the last.
    n_boot : int
    level : float
    seed : int

    Returns
    -------
    dict
        ``log_ratio`` (mean over trials of log(b / a)), its ``low``/``high``
        bootstrap interval, ``ratio`` = exp(log_ratio) (ratio of geometric
        means), ``trials`` used and ``excluded`` (non-finite or zero in either run).
    """
    if a.seed != b.seed or a.trials != b.trials:
        raise ValueError(f"b: a paired comparison needs the same seed and trials "
                         f"(got seed {a.seed} vs {b.seed}, trials {a.trials} vs {b.trials})")
    va, vb = _values(a, metric), _values(b, metric)
    if not 1 <= layer <= va.shape[1]:
        raise ValueError(f"layer: must be 1..{va.shape[1]} (1 nearest the input), got {layer}")
    va, vb = va[:, layer - 1], vb[:, layer - 1]
    ok = np.isfinite(va) & np.isfinite(vb) & (va > 0) & (vb > 0)
    d = np.log(vb[ok]) - np.log(va[ok])
    rng = np.random.default_rng(seed)
    boots = np.array([d[rng.integers(0, d.size, d.size)].mean() for _ in range(n_boot)]) if d.size else np.array(
        [np.nan])
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    mean = float(d.mean()) if d.size else np.nan
    return {"log_ratio": mean, "low": float(low), "high": float(high), "ratio": float(np.exp(mean)),
            "trials": float(d.size), "excluded": float((~ok).sum())}


def markdown_table(table: pd.DataFrame, digits: int = 3) -> list[str]:
    """The lines of a Markdown table of ``table``: floats to ``digits`` significant digits ("-" for nan), else text.

    Parameters
    ----------
    table : pandas.DataFrame
    digits : int

    Returns
    -------
    list of str
    """
    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(("-" if v != v else f"{v:.{digits}g}") if isinstance(v, float) else str(v)
                                       for v in r) + " |")  # nan (never reached, not defined) reads "-"
    return lines

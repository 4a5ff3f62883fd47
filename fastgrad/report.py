"""The standard figures of a sweep's store: read the store, analyse it, draw with :mod:`fastgrad.plot`.

:func:`plot_store` is what ``fastgrad plot STORE`` runs: decay curves of the model's main
statistic (:func:`sweep_curves`), a rate figure or phase diagram over the grid's numeric axes
with mean-field theory where it applies, and the spread of the Jacobian spectra of a sweep
stored with ``spectrum=True`` (:func:`spectrum_summary`). :mod:`fastgrad.plot` only draws
the arrays and frames it is given; this module knows stores, the model table and the theory.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fastgrad import models
from fastgrad.analysis import MAIN_METRIC, MEAN_FIELD_INITS
from fastgrad.plot import AXIS_LABELS, MARKERS, decay_curves, line_style, phase_diagram, rate_curve, save
from fastgrad.stats import decay_curve

MAX_PANELS = 6
"""The most panels of a sweep's decay-curve figure (beyond that, panels evenly spread over the grid)."""


def _short(value: Any) -> str:
    """A grid value for a legend: floats to 4 significant digits (0.7071, not 0.7071067811865476)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _position(values: Sequence[Any], value: Any) -> int:
    """Where ``value`` (as a stored frame holds it) sits in a grid axis's ``values``; -1 if nowhere."""
    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and np.isnan(v))

    for i, v in enumerate(values):
        if (missing(v) and missing(value)) or (not missing(v) and not missing(value) and v == value):
            return i
    return -1


def _evenly(n: int, most: int) -> list[int]:
    """At most ``most`` of the positions 0 .. n - 1, evenly spread, first and last included."""
    return [int(i) for i in np.unique(np.linspace(0, n - 1, min(most, n)).round().astype(int))] if n else []


def _mean_field_init(grid: dict[str, Any]) -> bool:
    """Whether a sweep's single weight init is one mean-field theory's sigma_w^2 describes (scaled normal,
    orthogonal: :data:`fastgrad.analysis.MEAN_FIELD_INITS`)."""
    inits = grid.get("init", [])
    return len(inits) == 1 and inits[0] in MEAN_FIELD_INITS


def _setting(info: dict[str, Any], frame: pd.DataFrame, pinned: dict[str, Any] | None = None) -> str:
    """What a sweep's figure shows: the model, every single-valued grid setting (and ``pinned``), the trials."""
    grid = info["grid"]
    recurrent = models.named(info["model"]).recurrent
    parts = [info["model"]]
    if not ({"depth", "steps"} & set(grid)):
        parts.append(f"{int(frame['layer'].max())} {'steps' if recurrent else 'layers'}")
    for p, values in grid.items():
        if len(values) == 1:
            parts.append(f"{p} {_short(values[0])}")
        elif pinned and p in pinned:
            parts.append(f"{p} {_short(pinned[p])}")
    return ", ".join(parts) + f"; {int(info['trials']):,} trials per configuration"


def plot_store(store: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw the standard figures of a sweep's store.

    Decay (ratio) curves of the model's main statistic (``delta`` for MLPs,
    ``grad_b`` for chains, ``grad_h`` for RNNs and residual MLPs), :func:`sweep_curves`: one
    colour per value of the grid parameter with the most values (up to 8 of them, evenly
    spread), the same in every panel, one panel per combination of the other parameters (up to
    6; the title says what is left out; the rate figures below show every configuration); and,
    when the grid has two numeric axes with several values, a heat map of the fitted decay rate
    over them (other axes at their first value, named in its title with the model, the fixed
    settings and the trials), with the mean-field order/chaos edge when the axes are ``sigma_w``
    and ``sigma_b`` of a ``scaled_normal`` MLP.

    Parameters
    ----------
    store : str or Path
    out : str or Path, optional
        Output folder; default ``STORE/figures``.

    Returns
    -------
    list of Path
        The files written.
    """
    from fastgrad import theory
    from fastgrad.stats import decay_rate
    from fastgrad.store import load, manifest

    info = manifest(store)
    frame = load(store)
    if frame.empty:
        raise ValueError(f"store: {store} has no finished cells yet")
    out = Path(out) if out is not None else Path(store) / "figures"
    model = info["model"]
    metric = MAIN_METRIC[model]
    params = list(info["grid"])
    paths = save(sweep_curves(frame, info, metric), out / "decay_curves")

    numeric = [p for p in params if len(info["grid"][p]) > 1
               and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in info["grid"][p])]
    for plane in (["sigma_w2", "sigma_b2"], ["sigma_w", "sigma_b"]):  # the order/chaos plane, as the grid gives it
        if set(plane) <= set(numeric):
            numeric = plane
            break
    if "lambda_var" in frame.columns:  # a sweep with spectrum=True
        paths += save(spectrum_summary(frame, params, info["grid"]), out / "spectrum_summary")
    if len(numeric) == 1:
        paths += _rate_figure(store, info, frame, numeric[0], metric, out)
    if len(numeric) >= 2:
        xa, ya = numeric[0], numeric[1]
        sub = frame
        for p in params:
            if p not in (xa, ya):
                sub = sub[sub[p] == info["grid"][p][0]]
        xs, ys = info["grid"][xa], info["grid"][ya]
        slope = np.full((len(ys), len(xs)), np.nan)
        for (xv, yv), group in sub.groupby([xa, ya]):
            values = group.pivot(index="trial", columns="layer", values=metric).to_numpy()
            if values.shape[1] >= 2:
                slope[ys.index(yv), xs.index(xv)] = decay_rate(values, metric, n_boot=10)["slope"]
        critical = None
        grid = info["grid"]
        variances = (xa, ya) == ("sigma_w2", "sigma_b2")
        if (models.named(model).mean_field and (variances or (xa, ya) == ("sigma_w", "sigma_b"))
                and _mean_field_init(grid) and len(grid.get("activation", ["tanh"])) == 1):
            act = grid.get("activation", ["tanh"])[0]
            b2 = np.linspace(min(ys), max(ys), 31) if variances else np.linspace(min(ys) ** 2, max(ys) ** 2, 31)
            layers = int(frame["layer"].max())
            critical = {}
            for label, edge in ((f"theory at depth {layers}", lambda v: theory.finite_depth_edge(act, v, layers)),
                                ("theory, infinite depth: chi_1 = 1", lambda v: theory.critical_sigma_w2(act, v))):
                try:
                    w2 = np.array([edge(v) for v in b2])
                except ValueError:  # no order/chaos edge in range for this activation
                    continue
                critical[label] = (b2, w2) if variances else (np.sqrt(b2), np.sqrt(w2))
        pinned = {p: info["grid"][p][0] for p in params if p not in (xa, ya)}
        heading = textwrap.fill(f"{_setting(info, frame, pinned)}: fitted slope of log {metric} per layer", 70)
        paths += save(phase_diagram(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), slope, critical,
                                    title=heading, xlabel=AXIS_LABELS.get(xa, xa),
                                    ylabel=AXIS_LABELS.get(ya, ya)),
                      out / "phase_diagram")
    return paths


def sweep_curves(frame: pd.DataFrame, info: dict[str, Any], metric: str, per_panel: int = 8,
                 max_panels: int = MAX_PANELS) -> Figure:
    """A sweep's decay curves: one colour per value of one grid parameter, the same in every panel.

    The parameter with the most values colours the curves (a sequential colour map for numbers,
    in grid order; at most ``per_panel`` of its values, evenly spread, the same ones in every
    panel); each combination of the other varying parameters is a panel (at most
    ``max_panels``, evenly spread). The title names the model, the fixed settings and the
    trials, and says what is left out.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`fastgrad.load` of the store.
    info : dict
        Its manifest (``model``, ``grid``, ``trials``).
    metric : str
    per_panel, max_panels : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    grid = info["grid"]
    params = list(grid)
    varying = [p for p in params if len(grid[p]) > 1]
    colour_by = max(varying, key=lambda p: len(grid[p])) if varying else None  # the first of the longest
    others = [p for p in varying if p != colour_by]
    cells: dict[tuple[int, ...], pd.DataFrame] = {}
    for key, group in frame.groupby(params, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells[tuple(_position(grid[p], v) for p, v in zip(params, key, strict=True))] = group
    index = {p: i for i, p in enumerate(params)}
    shown = _evenly(len(grid[colour_by]), per_panel) if colour_by else [0]
    numeric = colour_by is not None and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            for v in grid[colour_by])
    cmap = plt.get_cmap("viridis")
    looks = {k: (cmap(0.92 * j / max(len(shown) - 1, 1)) if numeric else line_style(j)[0], MARKERS[j % len(MARKERS)])
             for j, k in enumerate(shown)}
    keys = sorted({tuple(pos[index[p]] for p in others) for pos in cells})
    picked = [keys[i] for i in _evenly(len(keys), max_panels)]
    curves, layout, styles = [], [], {}
    for panel in picked:
        members = {}
        for pos, group in sorted(cells.items()):
            if (-1 in pos or tuple(pos[index[p]] for p in others) != panel
                    or (colour_by and pos[index[colour_by]] not in shown)):
                continue
            name = ", ".join(f"{p}={_short(grid[p][pos[index[p]]])}" for p in varying) or "all"
            values = group.pivot(index="trial", columns="layer", values=metric).to_numpy()
            curves.append(decay_curve(values, metric, normalize=True, configuration=name))
            styles[name] = looks[pos[index[colour_by]]] if colour_by else (line_style(0)[0], MARKERS[0])
            members[name] = f"{colour_by}={_short(grid[colour_by][pos[index[colour_by]]])}" if colour_by else name
        heading = ", ".join(f"{p}={_short(grid[p][i])}" for p, i in zip(others, panel, strict=True))
        layout.append((heading or "all configurations", members))
    notes = []
    if colour_by and len(shown) < len(grid[colour_by]):
        notes.append(f"{len(shown)} of {len(grid[colour_by])} values of {colour_by}, evenly spread")
    if len(picked) < len(keys):
        notes.append(f"{len(picked)} of {len(keys)} panels, evenly spread over {', '.join(others)}")
    recurrent = models.named(info["model"]).recurrent
    what = (f"{metric} relative to the last {'step' if recurrent else 'layer'}, median over trials"
            + (f"; colour: {colour_by}, the same in every panel" if colour_by and others else ""))
    title = textwrap.fill(f"{_setting(info, frame)}: {what}" + (f" ({'; '.join(notes)})" if notes else ""), 120)
    xlabel = "time step t (1 = earliest)" if recurrent else "layer l (1 = nearest the input)"
    return decay_curves(pd.concat(curves), xlabel=xlabel, ylabel=f"{metric} / last {metric} (same trial)",
                        title=title, panels=layout, styles=styles)


def spectrum_summary(frame: pd.DataFrame, params: Sequence[str], grid: dict[str, list[Any]]) -> Figure:
    """Per configuration of a sweep stored with ``spectrum=True``: the spread of each trial's spectrum.

    The spread is var(lambda) / E[lambda]^2 of the trial's squared singular values
    (``lambda_var / lambda_mean^2``; 0 for an isometry): median over trials, with the
    5-95% range, beside the median condition number s_max / s_min.

    Parameters
    ----------
    frame : DataFrame
        :func:`fastgrad.load` of the store.
    params : sequence of str
        The grid's parameters.
    grid : dict
        The store's grid (which parameters vary).

    Returns
    -------
    matplotlib.figure.Figure
    """
    trials = frame[frame["layer"] == 1]
    labels, spread, cond = [], [], []
    for key, group in trials.groupby(list(params), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        labels.append(", ".join(f"{p}={_short(v)}" for p, v in zip(params, key, strict=True) if len(grid[p]) > 1)
                      or "all")
        with np.errstate(divide="ignore", invalid="ignore"):
            spread.append((group["lambda_var"] / group["lambda_mean"] ** 2).to_numpy(dtype=float))
        cond.append(float(np.nanmedian(group["sv_condition"].to_numpy(dtype=float))))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2 + 0.12 * len(labels)), layout="constrained")
    pos = np.arange(len(labels))
    med = np.array([np.nanmedian(v) for v in spread])
    lo = np.array([np.nanquantile(v, 0.05) for v in spread])
    hi = np.array([np.nanquantile(v, 0.95) for v in spread])
    axes[0].errorbar(med, pos, xerr=[med - lo, hi - med], fmt="o", color="C0", capsize=2,
                     label="median over trials, band: 5-95% of trials")
    if np.nanmin(lo) > 0:  # log axis unless an isometry (spread 0) is among them
        axes[0].set_xscale("log")
    else:
        axes[0].set_xscale("symlog", linthresh=1e-3)
    axes[0].set_xlabel("var(lambda) / E[lambda]^2 of each trial's J J^T (0: an isometry)")
    axes[1].plot(cond, pos, "s", color="C1", label="median over trials")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("condition number s_max / s_min")
    for ax in axes:
        ax.set_yticks(pos, labels, fontsize=7)
        ax.set_ylabel("configuration")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle("Jacobian spectra of the sweep's trials (MLPs: dh_L/dh_0; recurrent models: dh_S/dh_1)",
                 fontsize=11)
    return fig


def _rate_figure(store: str | Path, info: dict[str, Any], frame: pd.DataFrame, x: str, metric: str,
                 out: Path) -> list[Path]:
    """The rate-versus-parameter figure of a 1-D sweep, with mean-field theory where it applies."""
    from fastgrad import theory
    from fastgrad.analysis import decay_table

    table = decay_table(frame, metric=metric, n_boot=200)
    grid = info["grid"]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if (models.named(info["model"]).mean_field and x in ("sigma_w2", "sigma_w") and _mean_field_init(grid)
            and len(grid.get("activation", ["tanh"])) == 1):
        act = grid.get("activation", ["tanh"])[0]
        b = next((float(grid[n][0]) for n in ("sigma_b2", "sigma_b") if n in grid), 0.0)
        b2 = b if "sigma_b2" in grid else b * b
        layers = int(frame["layer"].max())
        xs = np.linspace(min(grid[x]), max(grid[x]), 60)
        w2 = xs if x == "sigma_w2" else xs**2
        curves[f"theory at depth {layers} (mean square)"] = (xs, np.array([theory.delta_slope(act, v, b2, layers)
                                                                           for v in w2]))
        curves["theory, infinite depth: -ln(chi_1) / 2"] = (xs, np.array([-0.5 * np.log(theory.chi1(act, v, b2))
                                                                          for v in w2]))
    fig = rate_curve(table, x, curves, title=f"{info['model']} sweep: decay rate of {metric}",
                     unit="step" if models.named(info["model"]).recurrent else "layer")
    return save(fig, out / "decay_rate")

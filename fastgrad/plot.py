"""Figures of gradient-decay curves (matplotlib, no display needed).

Each function returns a :class:`matplotlib.figure.Figure`; :func:`save`
writes it as PNG and SVG. Measurements are solid lines with bands over
trials; theory, where given, is dashed in the same colour.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed or assumed
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullFormatter  # noqa: E402

from fastgrad.results import Result  # noqa: E402
from fastgrad.stats import decay_curve  # noqa: E402


def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.svg`` (creating the folder); return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*")
LINESTYLES = ("-", "--", "-.", ":")
COINCIDE = 0.015
"""Two curves coincide on a log axis when they differ by at most this share of the axis's decades at every
point: 1.5% of a 500-pixel axis is ~7 pixels, about two line widths, and such curves read as one line."""


def line_style(i: int) -> tuple[str, str]:
    """Colour and marker of curve ``i``: no two of the first len(colours) x len(MARKERS) curves share both."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return colours[i % len(colours)], MARKERS[(i + i // len(colours)) % len(MARKERS)]


def _markevery(i: int, n: int, length: int) -> tuple[int, int]:
    """Where curve ``i`` of ``n`` puts its markers: every ``step``-th point, staggered so that curves
    drawn on top of each other still show each one's markers."""
    step = max(length // 8, 1)
    return int(round(i * step / max(n, 1))) % step, step


def _decades(values: Sequence[np.ndarray]) -> float:
    """How many decades the finite positive values span (0 if fewer than two)."""
    pos = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values]) if values else np.empty(0)
    pos = pos[np.isfinite(pos) & (pos > 0)]
    return float(np.log10(pos.max() / pos.min())) if pos.size > 1 else 0.0


def coinciding(curves: dict[str, tuple[np.ndarray, np.ndarray]], decades: float,
               tol: float = COINCIDE) -> dict[str, str]:
    """Which curves would hide one another on a log axis spanning ``decades`` decades.

    Parameters
    ----------
    curves : dict of name to (x, y)
        In drawing order.
    decades : float
        The axis's span.
    tol : float
        Largest distance, as a share of the span, at which two curves count as one line.

    Returns
    -------
    dict of str to str
        For each curve that lies on an earlier one over (nearly) all of its points, the earlier one's name.
    """
    out: dict[str, str] = {}
    names = list(curves)
    for j, b in enumerate(names):
        xb, yb = (np.asarray(v, dtype=float) for v in curves[b])
        fb = np.isfinite(yb) & (yb > 0)
        for a in names[:j]:
            if a in out:  # compare with the first of a group
                continue
            xa, ya = (np.asarray(v, dtype=float) for v in curves[a])
            if xa.shape != xb.shape or not np.array_equal(xa, xb):
                continue
            fa = np.isfinite(ya) & (ya > 0)
            both = fa & fb
            if both.sum() < 2 or both.sum() < 0.9 * max(fa.sum(), fb.sum()):
                continue
            if np.max(np.abs(np.log10(ya[both]) - np.log10(yb[both]))) <= tol * max(decades, 1e-9):
                out[b] = a
                break
    return out


def _band_label(band: tuple[str, str]) -> str:
    """``("q05", "q95")`` -> ``"5-95% of trials"``."""
    try:
        lo, hi = (int(b.lstrip("q")) for b in band)
    except ValueError:
        return f"band: {band[0]} to {band[1]} over trials"
    return f"band: {lo}-{hi}% of trials"


def decay_curves(
    curves: pd.DataFrame,
    theory: dict[str, np.ndarray] | None = None,
    xlabel: str = "layer l (1 = nearest the input)",
    ylabel: str = "gradient norm",
    title: str | None = None,
    band: tuple[str, str] = ("q05", "q95"),
    zoom_decades: float = 10.0,
    per_panel: int = 8,
    theory_label: str = "mean-field theory",
    panels: Sequence[tuple[str, dict[str, str]]] | None = None,
    styles: dict[str, tuple[Any, str]] | None = None,
) -> Figure:
    """Median curves with a band over trials, log scale; each curve its own colour and marker.

    At most ``per_panel`` curves share a panel: more configurations are split,
    in order, over several panels (a grid of at most three columns, one legend
    under each). When the medians span more than ``zoom_decades`` decades, one
    more panel zooms on the curves that stay within 3 decades (the
    well-initialised ones), so that one vanishing curve does not flatten the
    others into a band; it is drawn only when it holds at least two curves and
    leaves at least one out (else it would repeat a panel or show one line).
    Curves that would hide one another (within :data:`COINCIDE` of the axis's
    span at every point) are said to coincide in the legend; the one underneath
    is drawn wider, so that both stay visible.

    Parameters
    ----------
    curves : pandas.DataFrame
        Rows of :func:`fastgrad.stats.summary` (a ``configuration`` column).
    theory : dict of configuration to array, optional
        Predicted curve per configuration (same layers), drawn dashed in its colour.
    xlabel, ylabel, title : str
    band : (str, str)
        The quantile columns bounding the shaded band (named in the legend).
    zoom_decades : float
    per_panel : int
        The most curves in one panel.
    theory_label : str
        The legend's name of the dashed curves.
    panels : sequence of (str, dict of configuration to legend label), optional
        The panels as the caller groups them, each with its title and the legend label of each
        of its configurations (then no zoom panel is added); default: the configurations in
        order, ``per_panel`` to a panel.
    styles : dict of configuration to (colour, marker), optional
        The look of each configuration, so that one colour can mean one value in every panel;
        default: each configuration its own colour and marker.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if per_panel < 1:
        raise ValueError(f"per_panel: must be at least 1, got {per_panel}")
    groups = dict(list(curves.groupby("configuration", sort=False)))
    names = list(groups)
    medians = {name: (g["layer"].to_numpy(), g["median"].to_numpy(dtype=float)) for name, g in groups.items()}
    spans = {}
    for name, (_, med) in medians.items():
        ok = med[np.isfinite(med) & (med > 0)]
        spans[name] = (ok.min(), ok.max()) if ok.size else (np.nan, np.nan)
    if panels is None:
        lows = [lo for lo, _ in spans.values() if np.isfinite(lo)]
        highs = [hi for _, hi in spans.values() if np.isfinite(hi)]
        wide = bool(lows) and np.log10(max(highs) / min(lows)) > zoom_decades
        zoomed = [n for n, (lo, hi) in spans.items() if np.isfinite(lo) and np.log10(hi / lo) <= 3]
        chunks = [names[i:i + per_panel] for i in range(0, len(names), per_panel)] or [[]]
        layout = [("all configurations" if len(chunks) == 1 else f"configurations {k * per_panel + 1}-"
                   f"{k * per_panel + len(c)} of {len(names)}", {n: str(n) for n in c}) for k, c in enumerate(chunks)]
        if wide and 2 <= len(zoomed) < len(names) and len(zoomed) <= per_panel:
            layout.append(("zoom: the curves within 3 decades", {n: str(n) for n in zoomed}))
        shared = len(chunks) == 1  # one legend beside the figure; else one under each panel
    else:
        layout = [(t, dict(m)) for t, m in panels]
        style = dict(styles) if styles is not None else {name: line_style(i) for i, name in enumerate(names)}
        # One legend for the figure when every panel's legend would be the same (one colour, one value).
        looks = [sorted((label, str(style[n])) for n, label in m.items()) for _, m in layout]
        shared = all(look == looks[0] for look in looks)
    style = dict(styles) if styles is not None else {name: line_style(i) for i, name in enumerate(names)}
    ncols = min(len(layout), 3)
    nrows = -(-len(layout) // ncols)
    width = 7.5 + 4.5 * (ncols - 1) if shared else 5.0 * ncols
    height = 4.2 * nrows + 0.4 if shared else 5.6 * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    extra_handles: list[Any] = [matplotlib.patches.Patch(color="0.6", alpha=0.4, label=_band_label(band))]
    if theory:
        extra_handles.append(Line2D([], [], color="0.3", ls="--", label=theory_label))
    flat = list(axes.ravel())
    for ax in flat[len(layout):]:
        ax.set_visible(False)
    for ax, (heading, members) in zip(flat, layout, strict=False):
        drawn = [n for n in names if n in members]
        over = coinciding({n: medians[n] for n in drawn}, _decades([medians[n][1] for n in drawn]))
        under = set(over.values())
        for k, name in enumerate(drawn):
            group = groups[name]
            c, marker = style[name]
            x = group["layer"].to_numpy()
            med = group["median"].to_numpy(dtype=float)
            ok = np.isfinite(med) & (med > 0)
            label = members[name] + (f" (coincides with {members[over[name]]})" if name in over else "")
            ax.plot(x[ok], med[ok], color=c, lw=3.4 if name in under else 1.6, marker=marker, ms=4,
                    markevery=_markevery(k, len(drawn), int(ok.sum())), label=label, zorder=2 + k)
            lo = group[band[0]].to_numpy(dtype=float)
            hi = group[band[1]].to_numpy(dtype=float)
            okb = ok & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
            ax.fill_between(x[okb], lo[okb], hi[okb], color=c, alpha=0.15, lw=0)
            if theory is not None and name in theory:  # dashes in phase per curve: coinciding ones alternate
                ax.plot(x, theory[name], color=c, lw=1.2, ls=(3.0 * (k % 3), (3.0, 6.0)), zorder=20 + k)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if len(layout) > 1:
            ax.set_title(heading, fontsize=9)
        if not shared:
            handles, _ = ax.get_legend_handles_labels()
            ax.legend(handles=handles + extra_handles, fontsize=7, frameon=False, loc="upper center",
                      bbox_to_anchor=(0.5, -0.14), ncol=2)
    if shared:
        handles, _ = flat[0].get_legend_handles_labels()
        fig.legend(handles=handles + extra_handles, fontsize=8, frameon=False, loc="outside right center")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def chain_figure(vanishing: Result, exploding: Result | None = None) -> Figure:
    """The classic one-neuron chain: |dC/db_l| over layers, median and 5-95% band.

    Parameters
    ----------
    vanishing : Result
        A chain run with N(0, 1) weights (the vanishing case).
    exploding : Result, optional
        A chain run with w = 100 and centred biases (every factor 25).

    Returns
    -------
    matplotlib.figure.Figure
    """
    curves = [decay_curve(vanishing, "grad_b", configuration="N(0,1) weights and biases")]
    if exploding is not None:
        curves.append(decay_curve(exploding, "grad_b", configuration="w = 100, z = 0 (factor 25)"))
    fig = decay_curves(pd.concat(curves), xlabel="layer l (1 = first)", ylabel="|dC/db_l|",
                       title=f"One-neuron sigmoid chain, {vanishing.trials:,} trials")
    return fig


def phase_diagram(
    sigma_w2: np.ndarray,
    sigma_b2: np.ndarray,
    slope: np.ndarray,
    critical: tuple[np.ndarray, np.ndarray] | dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    title: str | None = None,
    xlabel: str = "sigma_w^2",
    ylabel: str = "sigma_b^2",
) -> Figure:
    """Heat map of a fitted decay rate over sigma_w^2 x sigma_b^2, its zero contour, and theory's edges.

    The colour scale diverges from white at 0, and each side spans its own range
    (:class:`matplotlib.colors.TwoSlopeNorm`: red up to the largest rate, blue down to
    the smallest): the ordered side's rates are often several times the chaotic
    side's, and one symmetric scale would leave the chaotic side nearly white. The
    colour bar says so.

    Parameters
    ----------
    sigma_w2 : array (W,)
    sigma_b2 : array (Bv,)
    slope : array (Bv, W)
        Fitted slope of log-norm per layer (:func:`fastgrad.stats.decay_rate`).
    critical : (array, array) or dict of label to (array, array), optional
        ``(sigma_b2 values, critical sigma_w2 at each)`` from theory, drawn as lines
        (a bare tuple is labelled "theory: chi_1 = 1").
    title : str, optional
    xlabel, ylabel : str
        Axis labels (the heat map can span any two numeric grid axes).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    finite = slope[np.isfinite(slope)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    # White at 0, each side its own range; a side with no data gets a sliver, so that the norm exists.
    sliver = 1e-3 * max(abs(lo), abs(hi), 1e-3)
    vmin, vmax = (lo if lo < 0 else -sliver), (hi if hi > 0 else sliver)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax)
    mesh = ax.pcolormesh(sigma_w2, sigma_b2, slope, cmap="RdBu_r", norm=norm, shading="nearest")
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label("fitted slope of log ||delta_l|| per layer\n(> 0, red: vanishing towards the input;\n"
                  "< 0, blue: exploding). White at 0; each side\nscaled to its own range: "
                  f"blue to {vmin:.2g}, red to {vmax:.2g}", fontsize=8)
    bar.set_ticks(sorted({vmin, vmin / 2, 0.0, vmax / 2, vmax}))
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
    handles = []
    if finite.size and slope.shape[0] > 1 and slope.shape[1] > 1 and finite.min() < 0 < finite.max():
        ax.contour(sigma_w2, sigma_b2, slope, levels=[0.0], colors="k", linewidths=1.2)
        handles.append(Line2D([], [], color="k", lw=1.2, label="data: fitted slope = 0"))
    lines = {"theory: chi_1 = 1": critical} if isinstance(critical, tuple) else dict(critical or {})
    for (label, (b2, w2)), style in zip(lines.items(), ("--", ":", "-."), strict=False):
        (line,) = ax.plot(w2, b2, color="k", lw=1.5, ls=style, label=label)
        handles.append(line)
    if handles:
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                  ncol=2)  # under the axes: not over the map's cells
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def rate_curve(table: pd.DataFrame, x: str, theory: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
               title: str | None = None, xlabel: str | None = None, unit: str = "layer") -> Figure:
    """The fitted decay rate against one grid parameter, with its bootstrap interval and theory's curves.

    Parameters
    ----------
    table : DataFrame
        From :func:`fastgrad.analysis.decay_table`: columns ``x``, ``slope``, ``low``, ``high``.
    x : str
        The parameter on the horizontal axis.
    theory : dict of label to (x values, slope values), optional
        Curves drawn as lines.
    title, xlabel : str, optional
    unit : {"layer", "step"}
        What the slope is per (recurrent models: per step, towards the first step).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    t = table.sort_values(x)
    xs = t[x].to_numpy(dtype=float)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.errorbar(xs, t["slope"], yerr=[t["slope"] - t["low"], t["high"] - t["slope"]], fmt="o", ms=4, capsize=2,
                color="C0", label="data: fitted slope, 95% bootstrap interval")
    for (label, (tx, ty)), style in zip((theory or {}).items(), ("--", ":", "-."), strict=False):
        ax.plot(tx, ty, color="k", lw=1.3, ls=style, label=label)
    ax.set_xlabel(xlabel or AXIS_LABELS.get(x, x))
    towards = "the input" if unit == "layer" else "the first step"
    ax.set_ylabel(f"fitted slope of log-norm per {unit}\n(> 0: vanishing towards {towards})")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


AXIS_LABELS = {"sigma_w": r"$\sigma_w$", "sigma_b": r"$\sigma_b$", "sigma_w2": r"$\sigma_w^2$",
               "sigma_b2": r"$\sigma_b^2$"}


DIVERGED_FACTOR = 1e3
"""A trial's loss counts as diverged above this many times the reference loss (see :func:`training_curves`)."""


def _quantiles(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles over axis 0 of ``values`` that may hold +inf (linear interpolation; inf as soon as it enters)."""
    s = np.sort(values, axis=0)
    n = s.shape[0]
    out = np.empty((len(qs), *s.shape[1:]))
    for i, q in enumerate(qs):
        pos = q * (n - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        t = pos - lo
        with np.errstate(invalid="ignore"):
            out[i] = s[lo] if t == 0 else np.where(np.isinf(s[hi]), np.inf, s[lo] + (s[hi] - s[lo]) * t)
    return out


def loss_curves(loss: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Per epoch, a configuration's loss over trials with the diverged ones counted as diverged.

    A trial's loss at an epoch counts as diverged when it is non-finite (training stops a
    trial there: nan from then on) or above ``threshold``. It is never drawn and never pulls
    a median down: it counts as +inf, so a quartile or median that it reaches is +inf (not
    drawn) instead of falling with the diverged trials' losses.

    Parameters
    ----------
    loss : array (trials, epochs)
    threshold : float

    Returns
    -------
    dict of str to array (epochs,)
        ``q25``, ``median``, ``q75`` (+inf where diverged trials reach them) and ``diverged``,
        the share of trials diverged at each epoch.
    """
    loss = np.asarray(loss, dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(loss) | (loss > threshold)
    q25, median, q75 = _quantiles(np.where(bad, np.inf, loss), (0.25, 0.5, 0.75))
    return {"q25": q25, "median": median, "q75": q75, "diverged": bad.mean(axis=0)}


def training_curves(results: dict[str, Any], title: str | None = None, reference: float | None = None,
                    reference_label: str | None = None, factor: float = DIVERGED_FACTOR) -> Figure:
    """Training loss over epochs per configuration, with diverged trials shown as diverged.

    A trial's loss counts as diverged at an epoch where it is non-finite or above ``factor``
    x ``reference`` (:func:`loss_curves`): a diverged trial never makes a curve look like
    learning. Top: the median over all trials (diverged ones as +inf: the line stops where
    half of them have diverged) and the 25-75% band (up to the top edge where a quarter
    have); the y axis is clipped to the range of what is drawn, never above the threshold,
    and its label says so. Below, when any trial diverges: the share of trials diverged at
    each epoch, one row per configuration. Each configuration has its own colour, marker and
    line style, markers staggered; curves that would hide one another are said to coincide.

    Parameters
    ----------
    results : dict of name to TrainResult
    title : str, optional
        The figure's title; the data set (``config["data"]``) is added when the title does not name it.
    reference : float, optional
        The loss that sets the scale, drawn as a dotted line: e.g. the mean predictor's
        (:func:`fastgrad.studies.remedies.mean_predictor_loss`). Default: the lowest over
        configurations of the median first-epoch loss (not drawn).
    reference_label : str, optional
        What ``reference`` is, for the legend.
    factor : float
        The divergence threshold is ``factor`` x ``reference``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap

    names = list(results)
    drawn_reference = reference is not None
    if reference is None:
        firsts = [_quantiles(np.where(np.isfinite(r.loss[:, :1]), r.loss[:, :1], np.inf), (0.5,))[0, 0]
                  for r in results.values()]
        finite = [f for f in firsts if np.isfinite(f) and f > 0]
        reference = min(finite) if finite else np.nan
        reference_label = "the lowest median first-epoch loss"
    reference_label = reference_label or "the reference loss"
    threshold = factor * reference if np.isfinite(reference) and reference > 0 else np.inf
    curves = {name: loss_curves(res.loss, threshold) for name, res in results.items()}
    epochs = {name: np.arange(1, res.loss.shape[1] + 1) for name, res in results.items()}
    diverged_any = any(c["diverged"].any() for c in curves.values())
    drawn = [v[np.isfinite(v)] for c in curves.values() for v in (c["q25"], c["median"], c["q75"])]
    finite_values = np.concatenate(drawn + ([np.array([reference])] if drawn_reference else []))
    finite_values = finite_values[np.isfinite(finite_values) & (finite_values > 0)]
    reaches_top = any(np.any(np.isinf(c["q75"]) & np.isfinite(c["q25"])) for c in curves.values())
    bottom = finite_values.min() / 1.5 if finite_values.size else 1e-3
    top = finite_values.max() * 1.5 if finite_values.size else 1.0
    if reaches_top or top > threshold:  # a band reaches into the diverged trials: the axis ends at the threshold
        top = threshold if np.isfinite(threshold) else top
    rows = len(names) if diverged_any else 0
    fig = plt.figure(figsize=(11.0, 4.8 + (0.25 * rows + 1.0 if rows else 0.0)), layout="constrained")
    grid = fig.add_gridspec(2 if rows else 1, 1, height_ratios=[4.8, 0.25 * rows + 0.6] if rows else [1])
    ax = fig.add_subplot(grid[0])
    medians = {name: (epochs[name], curves[name]["median"]) for name in names}
    if drawn_reference:  # a curve on the reference line (a net that learns nothing) is said to be on it
        longest = max(epochs.values(), key=len)
        medians = {reference_label: (longest, np.full(len(longest), reference)), **medians}
    over = coinciding(medians, np.log10(top / bottom))
    under = set(over.values())
    handles: list[Any] = []
    for i, (name, res) in enumerate(results.items()):
        c, marker = line_style(i)
        ls = LINESTYLES[i % len(LINESTYLES)]
        x, cv = epochs[name], curves[name]
        last = int(round(cv["diverged"][-1] * res.loss.shape[0]))
        med = np.where(np.isfinite(cv["median"]), cv["median"], np.nan)
        notes = [f"{last} of {res.loss.shape[0]} diverged at the end"] if last else []
        if not np.isfinite(med).any():
            notes.append("every trial diverged at every epoch: no line" if cv["diverged"].min() == 1
                         else "at least half diverged at every epoch: no line")
        if name in over:
            notes.append(f"coincides with {over[name]}" + (" (dotted line)" if over[name] == reference_label else ""))
        label = textwrap.fill(name + (f" ({'; '.join(notes)})" if notes else ""), 60, subsequent_indent="  ")
        (line,) = ax.plot(x, med, color=c, ls=ls, lw=3.4 if name in under else 1.7, marker=marker, ms=4,
                          markevery=_markevery(i, len(names), len(x)), label=label, zorder=3 + i)
        band_ok = np.isfinite(cv["q25"])
        ax.fill_between(x, np.where(band_ok, cv["q25"], np.nan), np.where(np.isinf(cv["q75"]), top, cv["q75"]),
                        where=band_ok, color=c, alpha=0.13, lw=0)
        handles.append(line)
    if drawn_reference:
        handles.append(ax.axhline(reference, color="0.35", ls=":", lw=1.3,
                                  label=f"{reference_label}: {reference:.3g}"))
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    clipped = np.isfinite(threshold) and top == threshold
    ax.set_ylabel("training loss, median over trials" + ("\n(axis ends at the divergence threshold)" if clipped
                                                         else ""))
    ax.grid(True, alpha=0.3)
    handles.append(matplotlib.patches.Patch(color="0.6", alpha=0.4, label="band: 25-75% of trials"))
    rule = (f"diverged: loss non-finite or > {factor:g} x {reference_label} = {threshold:.3g}"
            if np.isfinite(threshold) else "diverged: loss non-finite")
    rule += ("; counted as +inf in the median and band" if diverged_any else "; no trial diverged at any epoch")
    handles.append(Line2D([], [], ls="none", label=textwrap.fill(rule, 60)))
    if rows:
        strip = fig.add_subplot(grid[1], sharex=ax)
        share = np.full((rows, max(len(x) for x in epochs.values())), np.nan)
        for i, name in enumerate(names):
            share[i, :len(curves[name]["diverged"])] = curves[name]["diverged"]
        reds = ListedColormap(plt.get_cmap("Reds")(np.linspace(0.0, 0.9, 256)))
        mesh = strip.pcolormesh(np.arange(0.5, share.shape[1] + 1), np.arange(-0.5, rows), share, cmap=reds,
                                vmin=0.0, vmax=1.0, shading="flat")
        strip.set_yticks(np.arange(rows), [str(n) for n in names], fontsize=7)
        for i, tick in enumerate(strip.get_yticklabels()):
            tick.set_color(line_style(i)[0])
        strip.invert_yaxis()
        strip.set_xlabel("epoch")
        strip.set_ylabel("configuration", fontsize=8)
        strip.set_title("share of trials diverged at each epoch (white: none, dark red: all)", fontsize=8)
        fig.colorbar(mesh, ax=strip, location="bottom", shrink=0.4, aspect=40, label="share of trials diverged")
        ax.tick_params(labelbottom=True)
    fig.legend(handles=handles, fontsize=8, frameon=False, loc="outside right center")
    data = next((str(r.config["data"]) for r in results.values()
                 if isinstance(getattr(r, "config", None), dict) and "data" in r.config), None)
    heading = title or "Training loss"
    if data and data not in heading:
        heading += f" (data: {data})"
    fig.suptitle(textwrap.fill(heading, 110), fontsize=11)
    return fig


def learning_speed(results: dict[str, Any], names: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """How fast each layer learns: ||dC/db_l|| over epochs, median over trials, one panel per configuration.

    Every panel shares one log y scale (the configurations are compared) and shows its own
    tick labels; trials that diverged are counted in the panel's title, and an epoch's median
    is drawn only while at least half of the trials are finite.

    Parameters
    ----------
    results : dict of name to TrainResult
    names : sequence of str, optional
        The configurations to draw, one panel each; default all of them.
    title : str, optional
        Default: what is drawn and the data set (``config["data"]``); a given title gets the
        data set added when it does not name it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(results) if names is None else list(names)
    ncols = min(len(names), 4)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.6, 3.3 * nrows + 0.8), sharey=True,
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    layers = 0
    for ax, name in zip(axes.ravel(), names, strict=False):
        res = results[name]
        epochs = np.arange(1, res.grad_b.shape[1] + 1)
        layers = res.grad_b.shape[2]
        finite = np.isfinite(res.grad_b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(res.grad_b, axis=0)
        med[finite.mean(axis=0) < 0.5] = np.nan  # most trials diverged: no median
        for l in range(layers):
            ax.plot(epochs, med[:, l], color=cmap(0.9 * l / max(layers - 1, 1)), lw=1.5,
                    marker=MARKERS[l % len(MARKERS)], ms=3.5, markevery=_markevery(l, layers, len(epochs)),
                    label=f"layer {l + 1}" + (" (read-out)" if l == layers - 1 else " (input)" if l == 0 else ""))
        diverged = np.asarray(getattr(res, "diverged", np.empty(0)))
        lost = int(np.sum(diverged >= 0))
        ax.set_title(name + (f"\n{lost} of {diverged.size} trials diverged" if lost else ""), fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("||dC/db_l||, median")
        ax.tick_params(labelleft=True)
        ax.grid(True, alpha=0.3)
    handles, _ = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles=handles, fontsize=8, frameon=False, loc="outside right center", title="layer l")
    data = next((str(results[n].config["data"]) for n in names
                 if isinstance(getattr(results[n], "config", None), dict) and "data" in results[n].config), None)
    heading = title or (f"How fast each layer learns: ||dC/db_l|| (mean over an epoch's minibatches), median over "
                        f"trials, {layers} layers")
    if data and data not in heading:
        heading += f"; data: {data}"
    fig.suptitle(textwrap.fill(heading, 110), fontsize=11)
    return fig


def spectral_density(spectra: dict[str, dict[tuple[int, str], Any]], title: str | None = None,
                     theory: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] | None = None) -> Figure:
    """The density of log10(lambda), lambda = s^2 the eigenvalues of J J^T, pooled over trials; one panel per net.

    Colour: depth; solid: Gaussian weights, dashed: orthogonal (a vertical line where every
    lambda is the same value, as for linear orthogonal nets). Singular values below the
    SVD's resolution (:attr:`fastgrad.spectra.Spectrum.resolved`: zero to working precision)
    are left out of the picture and counted in the legend: the density is over all of a
    configuration's lambda, so a curve's area is its resolved share.

    Parameters
    ----------
    spectra : dict of panel title to {(depth, weights): Spectrum}
        As :func:`fastgrad.studies.isometry.isometry_study` returns them.
    title : str, optional
    theory : dict of panel title to {depth: (log10 lambda, density)}, optional
        Infinite-width densities (e.g. :func:`fastgrad.theory.fuss_catalan_density`), dotted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(spectra), figsize=(5.2 * len(spectra), 5.2), squeeze=False,
                             layout="constrained")
    depths = sorted({d for runs in spectra.values() for d, _ in runs})
    colours = {d: line_style(i)[0] for i, d in enumerate(depths)}
    for ax, (name, runs) in zip(axes[0], spectra.items(), strict=True):
        logs = {key: np.log10(s.squared[s.resolved]) for key, s in runs.items()}
        unresolved = {key: 1.0 - float(s.resolved.mean()) for key, s in runs.items()}
        finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()])
        lo, hi = (np.quantile(finite, [0.001, 0.999]) if finite.size else (-1.0, 1.0))
        lo, hi = min(lo, -0.5), max(hi, 0.5)
        bins = np.linspace(lo, hi, 61)
        floor = np.inf  # the lowest density a histogram shows: theory curves are cut there
        for (depth, weights), v in sorted(logs.items()):
            ls = "-" if weights == "gaussian" else "--"
            label = f"depth {depth}, {weights}"
            if unresolved[depth, weights] > 0:
                label += f" ({100 * unresolved[depth, weights]:.2g}% zero)"
            if v.size and np.ptp(v) < 1e-9:  # one value (an isometry): one vertical line for every such depth
                same = [d for (d, wt), u in logs.items() if wt == weights and u.size and np.ptp(u) < 1e-9
                        and abs(float(u[0]) - float(v[0])) < 1e-9]
                if depth == min(same):
                    ax.axvline(float(v[0]), color="0.2", ls=ls, lw=1.6,
                               label=f"{weights}, depths {', '.join(map(str, sorted(same)))}: every lambda = "
                                     f"{10 ** float(v[0]):.3g}")
                continue
            counts, edges = np.histogram(v, bins=bins)
            # A density over all the trials' lambda (the unresolved ones are mass off the left of the axis).
            dens = counts / (runs[depth, weights].squared.size * np.diff(edges))
            ax.plot(0.5 * (edges[1:] + edges[:-1]), dens, color=colours[depth], ls=ls, lw=1.5, label=label)
            floor = min(floor, float(dens[dens > 0].min())) if (dens > 0).any() else floor
        for depth, (lx, dens) in sorted((theory or {}).get(name, {}).items()):
            keep = (lx >= bins[0]) & (lx <= bins[-1]) & (dens >= floor / 2)
            ax.plot(lx[keep], dens[keep], color=colours.get(depth, "0.3"), ls=":", lw=1.8,
                    label=f"depth {depth}, Fuss-Catalan (infinite width)")
        ax.set_yscale("log")
        ax.set_xlabel("log10 lambda (lambda = s^2, eigenvalues of J J^T)")
        ax.set_ylabel("density over trials")
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


ISOMETRY_SPREAD = 1e-9
"""A spectrum's var(lambda) / E[lambda]^2 below this is 0 to working precision (an isometry's, ~1e-15 measured)."""


def spectral_variance(table: pd.DataFrame, title: str | None = None) -> Figure:
    """var(lambda) / m1^2 against depth, per net and weights, beside the mean-field prediction.

    Log-log axes over the data's range; each theory curve is dashed in its data's colour
    (dashes in a different phase per curve, so that coinciding ones alternate colours, and
    the legend says which coincide). A series that is exactly 0 at every depth (an
    isometry: linear nets with orthogonal weights) has no place on a log axis: its markers
    sit on the bottom edge and the legend says so (below :data:`ISOMETRY_SPREAD`: 0 to working
    precision). The theory is for infinite width; at
    width n it holds while L << n, which the legend states with the table's width.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`fastgrad.studies.isometry.isometry_study`: ``net``, ``weights``, ``depth``,
        ``var_over_m1sq``, ``theory_var_over_m1sq`` (and ``width``, named in the legend).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.transforms import blended_transform_factory

    fig, ax = plt.subplots(figsize=(10.0, 5.0), layout="constrained")
    series = list(table.groupby(["net", "weights"], sort=False))
    shown = np.concatenate([g[column].to_numpy(dtype=float) for _, g in series
                            for column in ("var_over_m1sq", "theory_var_over_m1sq")])
    shown = shown[np.isfinite(shown) & (shown >= ISOMETRY_SPREAD)]
    lo, hi = (shown.min() / 1.6, shown.max() * 1.6) if shown.size else (1e-2, 1e2)
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    theories: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names: dict[str, str] = {}
    handles: list[Any] = []
    for i, ((net, weights), group) in enumerate(series):
        c, marker = line_style(i)
        g = group.sort_values("depth")
        depth = g["depth"].to_numpy(dtype=float)
        values = g["var_over_m1sq"].to_numpy(dtype=float)
        predicted = g["theory_var_over_m1sq"].to_numpy(dtype=float)
        name = f"{net}, {weights}"
        if np.all(np.abs(values) < ISOMETRY_SPREAD):  # an isometry: 0 at every depth, off any log axis
            zero_theory = bool(np.all(np.abs(predicted) < ISOMETRY_SPREAD))
            handles.append(ax.plot(depth, np.zeros_like(depth), color=c, marker=marker, ls="none", ms=7,
                                   transform=edge, clip_on=False, zorder=5,
                                   label=f"{name}: 0 at every depth{' (as theory)' if zero_theory else ''},"
                                         "\nan isometry (marked on the bottom edge)")[0])
            continue
        handles.append(ax.plot(depth, values, color=c, marker=marker, ls="-", lw=1.5, label=name)[0])
        if np.all(predicted > 0):
            theories[name] = (depth, predicted)
            names[name] = name
            ax.plot(depth, predicted, color=c, lw=1.3, ls=(3.0 * (len(theories) - 1) % 9, (3.0, 6.0)))
    same = coinciding(theories, np.log10(hi / lo))
    groups: dict[str, list[str]] = {}
    for b, a in same.items():
        groups.setdefault(a, [a]).append(b)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    depths = np.sort(table["depth"].unique())
    ax.set_xticks(depths, [str(int(d)) for d in depths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("depth L")
    ax.set_ylabel("var(lambda) / E[lambda]^2 over the pooled spectrum")
    ax.grid(True, alpha=0.3)
    width = int(table["width"].iloc[0]) if "width" in table.columns and table["width"].nunique() == 1 else None
    finite_width = f"at width n = {width} it holds while L << n" if width else "at finite width it holds while L << n"
    handles.append(Line2D([], [], color="0.3", ls="--",
                          label="dashed, in its data's colour: mean-field theory (Pennington et al. 2017),\n"
                                f"sum over layers of mu2/mu1^2 - 1 - s1; for infinite width:\n{finite_width}"))
    for members in groups.values():
        handles.append(Line2D([], [], ls="none", label="their theory coincides (dashes alternate colours):\n"
                              + "\n".join(f"  {m}" for m in members)))
    fig.legend(handles=handles, fontsize=8, frameon=False, loc="outside right center")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def isometry_scatter(frame: pd.DataFrame, correlations: pd.DataFrame | None = None, y: str = "loss_at_epoch",
                     y_label: str = "training loss after epoch k", title: str | None = None) -> Figure:
    """Initial spectral spread of J against learning speed, one point per trial, coloured by init.

    Two panels: the whole net's J and its body's (``spread``, ``spread_body``: var(lambda) /
    E[lambda]^2 at initialisation), log-log, against ``y``.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`fastgrad.studies.remedies.run_isometry_training`'s per-trial frame (``weights``, ``spread``,
        ``spread_body`` and ``y``).
    correlations : pandas.DataFrame, optional
        Its correlation table: each panel's title then gives Spearman's rho against ``y``.
    y : str
        The speed column.
    y_label : str
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), sharey=True, layout="constrained")
    names = {"spread": "whole net: J = dh_L/dh_0", "spread_body": "body: J = dh_{L-1}/dh_0"}
    for ax, (column, name) in zip(axes, names.items(), strict=True):
        for i, (weights, group) in enumerate(frame.groupby("weights", sort=False)):
            c, marker = line_style(i)
            ax.scatter(group[column], group[y], color=c, marker=marker, s=22, alpha=0.75,
                       label=f"{weights} ({len(group)} trials)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a short decade overlap
        ax.set_xlabel("initial var(lambda) / E[lambda]^2,  lambda = s^2 of J")
        ax.grid(True, alpha=0.3, which="both")
        heading = name
        if correlations is not None:
            row = correlations[(correlations["spread"] == column) & (correlations["speed"] == y)]
            if len(row):
                r = row.iloc[0]
                inits = ", ".join(f"{c.removeprefix('rho_')} {r[c]:.2f}" for c in row.columns
                                  if c.startswith("rho_") and c != "rho_all")
                heading += f"\nSpearman rho: all trials {r['rho_all']:.2f}; within {inits}"
        ax.set_title(heading, fontsize=9)
    axes[0].set_ylabel(y_label)
    axes[0].legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig

"""Figures of gradient-decay curves (matplotlib, no display needed).

Each function returns a :class:`matplotlib.figure.Figure`; :func:`save`
writes it as PNG and SVG. Measurements are solid lines with bands over
trials; theory, where given, is dashed in the same colour.
"""

from __future__ import annotations

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
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from fastgrad.analysis import MAIN_METRIC  # noqa: E402
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


def _style(i: int) -> tuple[str, str]:
    """Colour and marker of curve ``i``: no two of the first len(colours) x len(MARKERS) curves share both."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return colours[i % len(colours)], MARKERS[(i + i // len(colours)) % len(MARKERS)]


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
) -> Figure:
    """Median curves with a band over trials, log scale; each curve its own colour and marker.

    At most ``per_panel`` curves share a panel: more configurations are split,
    in order, over several panels (a grid of at most three columns, one legend
    under each). When the medians span more than ``zoom_decades`` decades, one
    more panel zooms on the curves that stay within 3 decades (the
    well-initialised ones), so that one vanishing curve does not flatten the
    others into a band.

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

    Returns
    -------
    matplotlib.figure.Figure
    """
    if per_panel < 1:
        raise ValueError(f"per_panel: must be at least 1, got {per_panel}")
    groups = list(curves.groupby("configuration", sort=False))
    spans = {}
    for name, group in groups:
        med = group["median"].to_numpy(dtype=float)
        med = med[np.isfinite(med) & (med > 0)]
        spans[name] = (med.min(), med.max()) if med.size else (np.nan, np.nan)
    lows = [lo for lo, _ in spans.values() if np.isfinite(lo)]
    highs = [hi for _, hi in spans.values() if np.isfinite(hi)]
    wide = bool(lows) and np.log10(max(highs) / min(lows)) > zoom_decades
    zoomed = [name for name, (lo, hi) in spans.items() if np.isfinite(lo) and np.log10(hi / lo) <= 3]
    names = [name for name, _ in groups]
    chunks = [names[i:i + per_panel] for i in range(0, len(names), per_panel)] or [[]]
    panels = chunks + ([zoomed] if wide and zoomed and len(zoomed) <= per_panel else [])
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    shared = len(chunks) == 1  # one legend beside the figure; else one under each panel
    width = 7.5 + 4.5 * (ncols - 1) if shared else 5.0 * ncols
    height = 4.6 if shared else 5.6 * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    style = {name: _style(i) for i, name in enumerate(names)}
    extra_handles: list[Any] = [matplotlib.patches.Patch(color="0.6", alpha=0.4, label=_band_label(band))]
    if theory:
        extra_handles.append(Line2D([], [], color="0.3", ls="--", label=theory_label))
    flat = list(axes.ravel())
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    for k, (ax, members) in enumerate(zip(flat, panels, strict=False)):
        for name, group in groups:
            if name not in members:
                continue
            c, marker = style[name]
            x = group["layer"].to_numpy()
            med = group["median"].to_numpy(dtype=float)
            ok = np.isfinite(med) & (med > 0)
            ax.plot(x[ok], med[ok], color=c, lw=1.6, marker=marker, ms=4, markevery=max(len(x) // 8, 1),
                    label=str(name))
            lo = group[band[0]].to_numpy(dtype=float)
            hi = group[band[1]].to_numpy(dtype=float)
            okb = ok & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
            ax.fill_between(x[okb], lo[okb], hi[okb], color=c, alpha=0.15, lw=0)
            if theory is not None and name in theory:
                ax.plot(x, theory[name], color=c, lw=1.2, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if len(panels) > 1:
            zoom = wide and k == len(panels) - 1 and len(panels) > len(chunks)
            ax.set_title("zoom: the curves within 3 decades" if zoom
                         else "all configurations" if shared else f"configurations {k * per_panel + 1}-"
                         f"{k * per_panel + len(members)} of {len(names)}", fontsize=9)
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
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    finite = slope[np.isfinite(slope)]
    # One linear scale, symmetric about 0 (white): equal colours mean equal rates on both sides.
    reach = max(float(np.abs(finite).max()), 1e-3) if finite.size else 1.0
    norm = matplotlib.colors.Normalize(vmin=-reach, vmax=reach)
    mesh = ax.pcolormesh(sigma_w2, sigma_b2, slope, cmap="RdBu_r", norm=norm, shading="nearest")
    fig.colorbar(mesh, ax=ax, label="fitted slope of log ||delta_l|| per layer\n(> 0: vanishing towards the input)")
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
        ax.set_title(title)
    fig.tight_layout()
    return fig


MAX_CURVES = 48  # six panels of eight curves


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


def _short(value: Any) -> str:
    """A grid value for a legend: floats to 4 significant digits (0.7071, not 0.7071067811865476)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_store(store: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw the standard figures of a sweep's store.

    Decay (ratio) curves of the model's main statistic (``delta`` for MLPs,
    ``grad_b`` for chains, ``grad_h`` for RNNs and residual MLPs): every configuration, eight to
    a panel, up to 48 (beyond that 48 evenly spread over the grid, the title
    says how many; the rate figures below show all of them); and, when the grid has two numeric axes with
    several values, a heat map of the fitted decay rate over them (other axes
    at their first value), with the mean-field order/chaos edge when the axes
    are ``sigma_w`` and ``sigma_b`` of a ``scaled_normal`` MLP.

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
    configs = list(frame.groupby(params, sort=False, dropna=False))
    pick = np.unique(np.linspace(0, len(configs) - 1, min(MAX_CURVES, len(configs))).round().astype(int))
    curves = []
    for i in pick:
        key, group = configs[i]
        key = key if isinstance(key, tuple) else (key,)
        values = group.pivot(index="trial", columns="layer", values=metric).to_numpy()
        label = ", ".join(f"{p}={_short(v)}" for p, v in zip(params, key, strict=True) if len(info["grid"][p]) > 1)
        curves.append(decay_curve(values, metric, normalize=True, configuration=label or "all"))
    shown = (f" ({len(pick)} of {len(configs)} configurations, evenly spread over the grid)"
             if len(pick) < len(configs) else "")
    xlabel = "time step t (1 = earliest)" if model in ("rnn", "lstm", "gru") else "layer l (1 = nearest the input)"
    paths = save(decay_curves(pd.concat(curves), xlabel=xlabel, ylabel=f"{metric} / last {metric} (same trial)",
                              title=f"{model} sweep{shown}"), out / "decay_curves")

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
        if (model == "mlp" and (variances or (xa, ya) == ("sigma_w", "sigma_b"))
                and grid.get("init") == ["scaled_normal"] and len(grid.get("activation", ["tanh"])) == 1):
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
        paths += save(phase_diagram(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), slope, critical,
                                    title=f"fitted slope of log {metric} per layer", xlabel=AXIS_LABELS.get(xa, xa),
                                    ylabel=AXIS_LABELS.get(ya, ya)),
                      out / "phase_diagram")
    return paths


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
    if (info["model"] == "mlp" and x in ("sigma_w2", "sigma_w") and grid.get("init") == ["scaled_normal"]
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
                     unit="step" if info["model"] in ("rnn", "lstm", "gru") else "layer")
    return save(fig, out / "decay_rate")


def training_curves(results: dict[str, Any], title: str | None = None, zoom_decades: float = 10.0) -> Figure:
    """Loss over epochs per configuration: median over the trials still finite, 25-75% band, log scale.

    Diverged trials are kept and shown: the legend counts them per configuration,
    and a cross on the top edge marks each epoch where a trial diverged (a
    configuration whose every trial diverged has crosses and no line). When the
    medians span more than ``zoom_decades`` decades, a second panel zooms on the
    curves that reach within 3 decades of the lowest loss.

    Parameters
    ----------
    results : dict of name to TrainResult
    title : str, optional
    zoom_decades : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.transforms import blended_transform_factory

    medians: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    spans: dict[str, tuple[float, float]] = {}
    for name, res in results.items():
        with warnings.catch_warnings():  # epochs after every trial diverged are all nan: no line there
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(res.loss, axis=0)
            lo, hi = np.nanquantile(res.loss, [0.25, 0.75], axis=0)
        medians[name] = (med, lo, hi)
        finite = med[np.isfinite(med) & (med > 0)]
        spans[name] = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
    lows = [a for a, _ in spans.values() if np.isfinite(a)]
    highs = [b for _, b in spans.values() if np.isfinite(b)]
    wide = bool(lows) and np.log10(max(highs) / min(lows)) > zoom_decades
    # The zoom keeps the curves that come within 3 decades of the lowest loss at some epoch.
    zoomed = [n for n, (a, _) in spans.items() if np.isfinite(a) and a <= min(lows) * 1e3] if lows else []
    panels = [list(results)] + ([zoomed] if wide and zoomed else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 + 4.5 * (len(panels) - 1), 4.6), squeeze=False,
                             layout="constrained")
    handles: list[Any] = []
    for p, (ax, members) in enumerate(zip(axes[0], panels, strict=True)):
        top = blended_transform_factory(ax.transData, ax.transAxes)
        for i, (name, res) in enumerate(results.items()):
            if name not in members:
                continue
            c, marker = _style(i)
            epochs = np.arange(1, res.loss.shape[1] + 1)
            med, lo, hi = medians[name]
            diverged = res.diverged[res.diverged >= 0]
            label = f"{name} ({len(diverged)} of {len(res.diverged)} diverged)" if diverged.size else name
            (line,) = ax.plot(epochs, med, color=c, lw=1.7, marker=marker, ms=4, label=label)
            ax.fill_between(epochs, lo, hi, color=c, alpha=0.15, lw=0)
            if diverged.size:  # a cross per divergence epoch, on the top edge, one row per configuration
                ax.plot(np.unique(diverged) + 1, np.full(np.unique(diverged).size, 0.97 - 0.05 * i), ls="none",
                        marker="x", ms=7, mew=2, color=c, transform=top, clip_on=False)
            if p == 0:
                handles.append(Line2D([], [], color=c, lw=1.7, marker=marker, ms=4,
                                      markeredgecolor=c, label=label))
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("training loss (median over finite trials)")
        ax.grid(True, alpha=0.3)
    if len(panels) > 1:
        axes[0][0].set_title("all configurations", fontsize=9)
        axes[0][1].set_title("zoom: the curves that reach within 3 decades of the lowest loss", fontsize=9)
    handles.append(matplotlib.patches.Patch(color="0.6", alpha=0.4, label="band: 25-75% of trials"))
    if any((res.diverged >= 0).any() for res in results.values()):
        handles.append(Line2D([], [], ls="none", marker="x", ms=7, mew=2, color="0.3",
                              label="x near the top: epoch a trial diverged"))
    fig.legend(handles=handles, fontsize=8, frameon=False, loc="outside right center")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def learning_speed(results: dict[str, Any], names: Sequence[str]) -> Figure:
    """Per-layer speed of learning ||dC/db_l|| over epochs, one panel per configuration.

    Parameters
    ----------
    results : dict of name to TrainResult
    names : sequence of str
        The configurations to draw (one panel each).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        res = results[name]
        epochs = np.arange(1, res.grad_b.shape[1] + 1)
        layers = res.grad_b.shape[2]
        cmap = plt.get_cmap("viridis")
        for l in range(layers):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ax.plot(epochs, np.nanmedian(res.grad_b[:, :, l], axis=0), color=cmap(l / max(layers - 1, 1)),
                        label=f"layer {l + 1}" + (" (read-out)" if l == layers - 1 else ""))
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
    for ax in axes[0]:
        ax.set_ylabel("||dC/db_l||, median over trials")
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
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
        As :func:`fastgrad.spectra.isometry_study` returns them.
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
    colours = {d: _style(i)[0] for i, d in enumerate(depths)}
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


def spectral_variance(table: pd.DataFrame, title: str | None = None) -> Figure:
    """var(lambda) / m1^2 against depth, per net and weights, beside the mean-field prediction (dashed).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`fastgrad.spectra.isometry_study`: ``net``, ``weights``, ``depth``,
        ``var_over_m1sq``, ``theory_var_over_m1sq``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    for i, ((net, weights), group) in enumerate(table.groupby(["net", "weights"], sort=False)):
        c, marker = _style(i)
        g = group.sort_values("depth")
        ax.plot(g["depth"], g["var_over_m1sq"], color=c, marker=marker, ls="-", lw=1.5, label=f"{net}, {weights}")
        theory_values = g["theory_var_over_m1sq"].to_numpy(dtype=float)
        if np.all(theory_values > 0):
            ax.plot(g["depth"], theory_values, color=c, ls="--", lw=1.1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=1e-2)  # linear near 0: an isometry's variance is exactly 0

    ax.set_xlabel("depth L")
    ax.set_ylabel("var(lambda) / E[lambda]^2 over the pooled spectrum")
    ax.set_ylim(bottom=-1e-3)  # an isometry's 0 stays visible above the axis
    ax.grid(True, alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", ls="--",
                          label="mean-field theory (Pennington et al. 2017):\nsum over layers of mu2/mu1^2 - 1 - s1"))
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
        :func:`fastgrad.remedies.run_isometry_training`'s per-trial frame (``weights``, ``spread``,
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
            c, marker = _style(i)
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

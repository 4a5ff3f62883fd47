"""Random CNNs against the fully connected mean-field theory (Xiao et al. 2018): slopes, phase diagram, spectra.

1. ``slopes``: fitted per-layer slope of log ||delta_l|| of Gaussian (scaled-normal) tanh CNNs,
   2-D 8 x 8, 3 x 3 kernels, depth 40, against ``theory.delta_slope`` (the fully connected map at
   this depth) and -ln(chi_1) / 2, for c = 8 and 32 channels, circular and (c = 32) zero padding.
2. ``phase``: the fitted slope over sigma_w^2 x sigma_b^2 for the CNN (c = 16, 8 x 8, depth 30) and
   the MLP (width 64, depth 30), with the chi_1 = 1 line and the depth-30 edge of the theory, and
   where each measured slope crosses zero.
3. ``spectra``: singular values of the input-output Jacobian (1-D, N = 16, c = 16: 256 x 256) of
   delta-orthogonal and Gaussian tanh CNNs at the critical point (sigma_b^2 = 1e-4), depths 8 .. 1000,
   beside the free-probability moments of the orthogonal and Gaussian MLP (``theory.spectrum_moments``).

usage: PYTHONPATH=. python scripts/cnn_science.py [slopes] [phase] [spectra]
Writes results/cnn/{slopes,phase,spectra}.{csv,md,png}.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import fastgrad as fg  # noqa: E402
from fastgrad import stats, theory  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "results" / "cnn"
ACT = "tanh"


def slopes() -> None:
    """Fitted decay slopes of Gaussian CNNs against the fully connected theory."""
    b2, depth, trials = 0.05, 40, 64
    rows = []
    for channels, padding in ((8, "circular"), (32, "circular"), (32, "zeros")):
        for w2 in (0.6, 1.0, 1.4, 2.0, 3.0):
            spec = fg.CNN(depth=depth, channels=channels, size=8, ndim=2, padding=padding, init="scaled_normal",
                          sigma_w2=w2, sigma_b2=b2, loss="probe")
            res = fg.run(spec, trials=trials, batch=4, seed=1)
            fit = stats.decay_rate(res, "delta", n_boot=300)
            ln_chi = np.log(theory.chi1(ACT, w2, b2))
            theory_slope = theory.delta_slope(ACT, w2, b2, depth)
            rows.append({"channels": channels, "padding": padding, "sigma_w2": w2, "slope": fit["slope"],
                         "low": fit["low"], "high": fit["high"], "theory_depth40": theory_slope,
                         "minus_half_ln_chi1": -0.5 * ln_chi,
                         "rel_error": (fit["slope"] - theory_slope) / abs(theory_slope),
                         "q_last": float(res.q[:, -1].mean()),
                         "q_theory": float(theory.q_sequence(ACT, w2, b2, depth)[-1]),
                         "run_seconds": res.run_seconds})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "slopes.csv", index=False)
    lines = ["| channels | padding | sigma_w^2 | fitted slope [95% CI] | theory (depth 40) | -ln(chi_1)/2 | "
             "rel. error | q_40 measured / theory |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['channels']} | {r['padding']} | {r['sigma_w2']} | {r['slope']:.4f} "
                     f"[{r['low']:.4f}, {r['high']:.4f}] | {r['theory_depth40']:.4f} | {r['minus_half_ln_chi1']:.4f} | "
                     f"{r['rel_error']:+.1%} | {r['q_last']:.4f} / {r['q_theory']:.4f} |")
    (OUT / "slopes.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    w2s = np.linspace(0.5, 3.2, 60)
    ax.plot(w2s, [theory.delta_slope(ACT, w, b2, depth) for w in w2s], "k-", label="fully connected theory, depth 40")
    ax.plot(w2s, [-0.5 * np.log(theory.chi1(ACT, w, b2)) for w in w2s], "k:", label="-ln(chi_1) / 2")
    for (ch, pad), marker in zip(((8, "circular"), (32, "circular"), (32, "zeros")), "osx", strict=True):
        sub = frame[(frame.channels == ch) & (frame.padding == pad)]
        ax.errorbar(sub.sigma_w2, sub.slope, yerr=[sub.slope - sub.low, sub.high - sub.slope], fmt=marker,
                    label=f"CNN c = {ch}, {pad}", capsize=2)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("fitted slope of log ||delta_l|| per layer")
    ax.set_title(f"Gaussian tanh CNNs, 8x8, 3x3, sigma_b^2 = {b2}, {trials} trials", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "slopes.png", dpi=120)


def _crossing(xs: np.ndarray, ys: np.ndarray) -> float:
    """Where ys crosses zero along xs (linear interpolation; nan if it does not)."""
    for i in range(len(xs) - 1):
        if ys[i] > 0 >= ys[i + 1]:
            return float(xs[i] + (xs[i + 1] - xs[i]) * ys[i] / (ys[i] - ys[i + 1]))
    return float("nan")


def phase() -> None:
    """The slope over sigma_w^2 x sigma_b^2 for the CNN and the MLP, with the theory's edges."""
    w2s = np.round(np.linspace(0.25, 4.0, 16), 4)
    b2s = np.round(np.linspace(0.0, 0.5, 11), 4)
    depth, trials = 30, 24
    nets = {"CNN c = 16, 8x8, 3x3 circular": lambda w2, b2: fg.CNN(depth=depth, channels=16, size=8, ndim=2,
                                                                    sigma_w2=w2, sigma_b2=b2, loss="probe"),
            "MLP width 64": lambda w2, b2: fg.MLP(depth=depth, width=64, init="scaled_normal", sigma_w2=w2,
                                                  sigma_b2=b2, loss="probe")}
    grids, rows = {}, []
    t0 = time.perf_counter()
    for name, make in nets.items():
        grid = np.empty((len(b2s), len(w2s)))
        for i, b2 in enumerate(b2s):
            for j, w2 in enumerate(w2s):
                res = fg.run(make(float(w2), float(b2)), trials=trials, batch=2 if "CNN" in name else 8, seed=2)
                grid[i, j] = stats.decay_rate(res, "delta", n_boot=2)["slope"]
        grids[name] = grid
        print(name, time.perf_counter() - t0, flush=True)
    for i, b2 in enumerate(b2s):
        row = {"sigma_b2": b2, "theory_chi1_1": theory.critical_sigma_w2(ACT, b2),
               "theory_depth30_edge": theory.finite_depth_edge(ACT, b2, depth)}
        for name, grid in grids.items():
            row[name] = _crossing(w2s, grid[i])
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "phase.csv", index=False)
    names = list(grids)
    lines = ["| sigma_b^2 | theory chi_1 = 1 | theory depth-30 edge | " + " | ".join(f"{n}: slope = 0" for n in names)
             + " |", "|---" * (3 + len(names)) + "|"]
    for r in rows:
        lines.append(f"| {r['sigma_b2']} | {r['theory_chi1_1']:.3f} | {r['theory_depth30_edge']:.3f} | "
                     + " | ".join(f"{r[n]:.3f}" for n in names) + " |")
    (OUT / "phase.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), sharey=True)
    b_line = np.linspace(0, 0.5, 40)
    for ax, name in zip(axes, names, strict=True):
        grid = grids[name]
        lim = np.nanmax(np.abs(np.clip(grid, -0.6, 0.6)))
        im = ax.pcolormesh(w2s, b2s, np.clip(grid, -lim, lim), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
        ax.plot([theory.critical_sigma_w2(ACT, b) for b in b_line], b_line, "k-", label="theory: chi_1 = 1")
        ax.plot([theory.finite_depth_edge(ACT, b, depth) for b in b_line], b_line, "k--",
                label=f"theory: depth-{depth} edge")
        ax.plot(frame[name], frame.sigma_b2, "wo", mec="k", label="measured: slope = 0")
        ax.set_title(f"{name}, tanh, depth {depth}", fontsize=10)
        ax.set_xlabel("sigma_w^2")
        fig.colorbar(im, ax=ax, label="slope of log ||delta_l|| per layer")
    axes[0].set_ylabel("sigma_b^2")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(OUT / "phase.png", dpi=120)


def spectra() -> None:
    """Jacobian spectra of delta-orthogonal and Gaussian tanh CNNs at the critical point, depths 8 .. 1000."""
    depths, trials = (8, 32, 128, 1000), 12
    nets = {"delta-orthogonal, sigma_b^2 = 1e-4": ("delta_orthogonal", "orthogonal", 1e-4),
            "delta-orthogonal, sigma_b^2 = 1e-7": ("delta_orthogonal", "orthogonal", 1e-7),
            "Gaussian, sigma_b^2 = 1e-4": ("scaled_normal", "gaussian", 1e-4)}
    rows, lams = [], {}
    for label, (init, weights, b2) in nets.items():
        w2 = theory.critical_sigma_w2(ACT, b2)
        for depth in depths:
            spec = fg.CNN(depth=depth, channels=16, size=16, ndim=1, init=init, sigma_w2=w2, sigma_b2=b2)
            s = fg.spectrum(spec, trials=trials, batch=1, seed=3)
            lam = s.singular_values.astype(float) ** 2
            lams[label, depth] = lam.ravel()
            th = theory.spectrum_moments(ACT, w2, b2, depth, weights=weights)
            per_trial = lam.mean(axis=1)
            rows.append({"net": label, "sigma_w2": w2, "depth": depth, "m1": float(lam.mean()),
                         "var": float(lam.var()), "var_over_m1sq": float(lam.var() / lam.mean() ** 2),
                         "theory_m1": th["m1"], "theory_var": th["var"],
                         "theory_var_over_m1sq": th["var"] / th["m1"] ** 2,
                         "m1_trial_q10": float(np.quantile(per_trial, 0.1)),
                         "m1_trial_q90": float(np.quantile(per_trial, 0.9)),
                         "log10_lambda_q05": float(np.quantile(np.log10(lam), 0.05)),
                         "log10_lambda_q95": float(np.quantile(np.log10(lam), 0.95)),
                         "run_seconds": s.run_seconds})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "spectra.csv", index=False)
    lines = ["| net (critical sigma_w^2) | depth | mean lambda (theory) | var lambda / mean^2 (theory) | "
             "log10 lambda: 5% .. 95% |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['net']} ({r['sigma_w2']:.4f}) | {r['depth']} | {r['m1']:.3g} ({r['theory_m1']:.3g}) | "
                     f"{r['var_over_m1sq']:.3g} ({r['theory_var_over_m1sq']:.3g}) | "
                     f"{r['log10_lambda_q05']:.1f} .. {r['log10_lambda_q95']:.1f} |")
    (OUT / "spectra.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    bins = np.linspace(-30, 4, 69)
    for ax, label in zip(axes, nets, strict=True):
        for depth, color in zip(depths, ("C0", "C1", "C2", "C3"), strict=True):
            v = np.log10(lams[label, depth])
            ax.hist(v, bins=bins, weights=np.full(v.size, 1.0 / (v.size * (bins[1] - bins[0]))), histtype="step",
                    color=color, label=f"L = {depth}")
        ax.set_title(f"{label}, tanh at chi_1 = 1", fontsize=9)
        ax.set_xlabel("log10 lambda (s^2 of dh_L/dh_0, 256 x 256)")
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("fraction per unit log10 lambda")
    fig.suptitle("Jacobian spectra of 1-D tanh CNNs (N = 16, c = 16, k = 3, circular), 12 trials each", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / "spectra.png", dpi=120)


def drift() -> None:
    """Whether a deep CNN's gradient follows the mean-field chi at its own measured q_l, trial by trial.

    At the critical point (tanh, sigma_b^2 = 1e-4), depth 2000: per trial, the measured
    ln(||delta_1|| / ||delta_L||) against 0.5 sum_l ln chi(q_l) with chi of the fully connected map taken at
    that trial's measured q_l (l = 1 .. L - 1), and against the same sum at the theory's q sequence.
    """
    b2, depth, trials = 1e-4, 2000, 8
    w2 = theory.critical_sigma_w2(ACT, b2)
    rows = []
    at_theory = float(0.5 * np.log(theory.delta_curve(ACT, w2, b2, depth)[0]))
    for init in ("delta_orthogonal", "scaled_normal"):
        spec = fg.CNN(depth=depth, channels=16, size=8, ndim=2, init=init, sigma_w2=w2, sigma_b2=b2, loss="probe")
        res = fg.run(spec, trials=trials, batch=2, seed=5)
        for t in range(trials):
            chis = [theory.chi(ACT, float(q), w2) for q in res.q[t, :-1]]
            measured = float(np.log(res.delta[t, 0] / res.delta[t, -1]))
            rows.append({"init": init, "trial": t, "measured_ln_ratio": measured,
                         "chi_at_measured_q": float(0.5 * np.sum(np.log(chis))), "chi_at_theory_q": at_theory,
                         "q_last": float(res.q[t, -1]), "q_star": theory.fixed_point(ACT, w2, b2)})
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "drift.csv", index=False)
    summary = frame.groupby("init")[["measured_ln_ratio", "chi_at_measured_q", "chi_at_theory_q", "q_last"]].median()
    (OUT / "drift.md").write_text(f"Depth {depth}, tanh, sigma_b^2 = {b2}, critical sigma_w^2 = {w2:.4f}, c = 16, "
                                  f"8x8; medians over {trials} trials (per trial: drift.csv)\n\n"
                                  + "\n".join(stats.markdown_table(summary.reset_index(), 4)) + "\n")
    print(summary)


def correlation_curve(sigma_w2: float, sigma_b2: float, depth: int, points: int = 60) -> np.ndarray:
    """The fully connected correlation map's c_l = Sigma_l(d) / q_l for two positions whose inputs are independent.

    With circular padding and inputs independent across positions the covariance of z_l is
    stationary, and Xiao et al.'s map, Sigma_{l+1}(d) = sigma_w^2 / K sum_taps C(Sigma_l)(d) + sigma_b^2, is the
    fully connected two-input map displacement by displacement: Sigma_1(d) = sigma_b^2 (d != 0),
    Sigma_{l+1}(d) = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2 with (u, v) of variances q_l and covariance Sigma_l(d).
    """
    z, wts = np.polynomial.hermite_e.hermegauss(points)
    wts = wts / wts.sum()
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    w2d = np.outer(wts, wts)
    qs = theory.q_sequence(ACT, sigma_w2, sigma_b2, depth)
    cov = sigma_b2
    out = np.empty(depth)
    for l in range(depth):
        q = qs[l]
        c = np.clip(cov / q, -1.0, 1.0)
        out[l] = c
        u = np.sqrt(q) * z1
        v = np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
        cov = sigma_w2 * float(np.sum(w2d * np.tanh(u) * np.tanh(v))) + sigma_b2
    return out


def correlations() -> None:
    """The measured neighbour correlation of z_l against the fully connected correlation map."""
    b2, depth, trials = 0.05, 40, 32
    layers = np.arange(1, depth + 1)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    rows = []
    for w2, color in ((1.0, "C0"), (1.761, "C1"), (3.0, "C3")):
        th = correlation_curve(w2, b2, depth)
        ax.plot(layers, th, color=color, lw=2, alpha=0.5, label=f"theory, sigma_w^2 = {w2}")
        for init, marker in (("scaled_normal", "o"), ("delta_orthogonal", "x")):
            spec = fg.CNN(depth=depth, channels=32, size=8, ndim=2, init=init, sigma_w2=w2, sigma_b2=b2, loss="probe")
            corr = fg.run(spec, trials=trials, batch=4, seed=6).corr.mean(axis=0)
            ax.plot(layers[::3], corr[::3], marker, color=color, ms=4,
                    label=f"{'Gaussian' if init == 'scaled_normal' else 'delta-orthogonal'}, sigma_w^2 = {w2}")
            rows.append({"sigma_w2": w2, "init": init, "max_abs_diff": float(np.max(np.abs(corr - th))),
                         "corr_layer_10": float(corr[9]), "theory_layer_10": float(th[9]),
                         "corr_layer_40": float(corr[-1]), "theory_layer_40": float(th[-1])})
            print(rows[-1], flush=True)
    ax.set_xlabel("layer l")
    ax.set_ylabel("correlation of z_l at neighbouring positions")
    ax.set_title(f"tanh CNNs, 8x8, c = 32, 3x3 circular, sigma_b^2 = {b2}, {trials} trials", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(OUT / "correlation.png", dpi=120)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "correlation.csv", index=False)
    (OUT / "correlation.md").write_text("\n".join(stats.markdown_table(frame, 3)) + "\n")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    stages = sys.argv[1:] or ["slopes", "phase", "spectra"]
    for stage in stages:
        {"slopes": slopes, "phase": phase, "spectra": spectra, "drift": drift, "correlations": correlations}[stage]()

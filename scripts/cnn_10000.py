"""10,000-layer vanilla tanh CNNs at the critical point: delta-orthogonal against Gaussian (Xiao et al. 2018).

Forward and backward through 10,000 circular-padded 3 x 3 convolutions (2-D, 8 x 8, 16 channels,
batch 2, the probe loss), tanh at sigma_b^2 = 1e-4 and the sigma_w^2 where chi_1 = 1
(``theory.critical_sigma_w2``), over 32 trials per init; and, for contrast, Gaussian
kernels slightly off the critical line (sigma_w^2 0.9 and 1.1 times it), 8 trials each; and both
inits at the critical point of sigma_b^2 = 1e-7, where q* is ten times smaller.
Reports, per init, the first layer's gradient relative to the last's (||dL/dW_1|| / ||dL/dW_L||
and ||delta_1|| / ||delta_L||: quantiles over trials) and the run time, and draws the median
decay curve with its 10-90% band.

usage: PYTHONPATH=. python scripts/cnn_10000.py [--depth 10000] [--trials 32] [--threads 2]
Writes results/cnn/cnn_10000.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import fastgrad as fg  # noqa: E402
from fastgrad import models, theory  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "results" / "cnn"
SIGMA_B2 = 1e-4
SMALL_B2 = 1e-7
"""q* ~ 1 / depth (Pennington et al. 2017): the orthogonal net's spread of lambda, L (mu_2 / mu_1^2 - 1), stays O(1)."""


def main() -> None:
    """Run the comparison and write the tables and the figure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=10_000)
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--contrast-trials", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    w2 = theory.critical_sigma_w2("tanh", SIGMA_B2)
    w2_small = theory.critical_sigma_w2("tanh", SMALL_B2)
    base = dict(depth=a.depth, channels=16, size=8, ndim=2, kernel_size=3, padding="circular", activation="tanh",
                loss="probe")
    nets = {
        "delta-orthogonal, critical": (dict(init="delta_orthogonal", sigma_w2=w2, sigma_b2=SIGMA_B2), a.trials),
        "Gaussian, critical": (dict(init="scaled_normal", sigma_w2=w2, sigma_b2=SIGMA_B2), a.trials),
        "Gaussian, 0.9 x critical": (dict(init="scaled_normal", sigma_w2=0.9 * w2, sigma_b2=SIGMA_B2),
                                     a.contrast_trials),
        "Gaussian, 1.1 x critical": (dict(init="scaled_normal", sigma_w2=1.1 * w2, sigma_b2=SIGMA_B2),
                                     a.contrast_trials),
        "delta-orthogonal, critical, sigma_b^2 = 1e-7": (dict(init="delta_orthogonal", sigma_w2=w2_small,
                                                              sigma_b2=SMALL_B2), a.trials),
        "Gaussian, critical, sigma_b^2 = 1e-7": (dict(init="scaled_normal", sigma_w2=w2_small, sigma_b2=SMALL_B2),
                                                 a.trials),
    }
    rows, curves = {}, {}
    for name, (kw, trials) in nets.items():
        spec = fg.CNN(**base, **kw)
        mb = models.of(spec).working(spec, 2) * 8 / 1e6
        t0 = time.perf_counter()
        res = fg.run(spec, trials=trials, batch=2, seed=0, threads=a.threads)
        wall = time.perf_counter() - t0
        gw = res.grad_w[:, 0] / res.grad_w[:, -1]
        dl = res.delta[:, 0] / res.delta[:, -1]
        with np.errstate(divide="ignore"):
            log10 = np.log10(res.delta / res.delta[:, -1:])
        curves[name] = np.nanquantile(np.where(np.isfinite(log10), log10, np.nan), [0.1, 0.5, 0.9], axis=0)
        q = lambda v: [float(x) for x in np.quantile(v, [0.05, 0.5, 0.95])]  # noqa: E731
        b2 = spec.sigma_b2
        weights = "orthogonal" if spec.init == "delta_orthogonal" else "gaussian"
        th = theory.spectrum_moments("tanh", spec.sigma_w2, b2, a.depth, weights=weights)
        rows[name] = {
            "sigma_w2": spec.sigma_w2, "sigma_b2": b2, "trials": trials, "chi1": theory.chi1("tanh", spec.sigma_w2, b2),
            "q_star": theory.fixed_point("tanh", spec.sigma_w2, b2),
            "theory_rms_delta_ratio": float(np.sqrt(theory.delta_curve("tanh", spec.sigma_w2, b2, a.depth)[0])),
            "theory_lambda_var_over_m1sq": th["var"] / th["m1"] ** 2,
            "grad_w_ratio_q05_q50_q95": q(gw), "delta_ratio_q05_q50_q95": q(dl),
            "within_10x": float(np.mean((gw > 0.1) & (gw < 10))), "finite": float(np.mean(np.isfinite(gw))),
            "q_L_median": float(np.median(res.q[:, -1])),
            "run_seconds": res.run_seconds, "compile_seconds": res.compile_seconds, "wall_seconds": wall,
            "seconds_per_trial_per_thread": res.run_seconds * res.threads / trials,
            "working_memory_mb_per_thread": mb,
        }
        print(name, json.dumps(rows[name]), flush=True)
    meta = {"depth": a.depth, "channels": 16, "size": "8x8", "kernel": "3x3", "padding": "circular", "batch": 2,
            "loss": "probe", "threads": a.threads}
    (a.out / "cnn_10000.json").write_text(json.dumps({"setting": meta, "nets": rows}, indent=1))
    lines = [f"# {a.depth:,}-layer tanh CNNs (2-D 8x8, c = 16, 3x3 circular, batch 2, probe loss)", "",
             "| net | sigma_w^2 | sigma_b^2 | chi_1 | trials | ||dL/dW_1|| / ||dL/dW_L||: 5% / median / 95% | "
             "within 10x | ||delta_1|| / ||delta_L||: median (theory rms) | q_L median (q*) | "
             "theory var(lambda)/m1^2 | run s | s per trial (one thread) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        g = r["grad_w_ratio_q05_q50_q95"]
        lines.append(f"| {name} | {r['sigma_w2']:.4f} | {r['sigma_b2']:.0e} | {r['chi1']:.4f} | {r['trials']} | "
                     f"{g[0]:.3g} / {g[1]:.3g} / {g[2]:.3g} | {r['within_10x']:.0%} | "
                     f"{r['delta_ratio_q05_q50_q95'][1]:.3g} ({r['theory_rms_delta_ratio']:.3g}) | "
                     f"{r['q_L_median']:.4f} ({r['q_star']:.4f}) | {r['theory_lambda_var_over_m1sq']:.3g} | "
                     f"{r['run_seconds']:.1f} | {r['seconds_per_trial_per_thread']:.2f} |")
    (a.out / "cnn_10000.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    layer = np.arange(1, a.depth + 1)
    for (name, (lo, mid, hi)), color in zip(curves.items(), ("C0", "C3", "C1", "C2", "C9", "C6"), strict=True):
        ax.plot(layer, mid, color=color, label=name)
        ax.fill_between(layer, lo, hi, color=color, alpha=0.2)
    ax.set_xlabel("layer l")
    ax.set_ylabel("log10 ||delta_l|| / ||delta_L||")
    ax.set_ylim(-15, 15)
    ax.set_title(f"{a.depth:,}-layer tanh CNNs, 8x8, c = 16: median and 10-90% of trials", fontsize=10)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out / "cnn_10000.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

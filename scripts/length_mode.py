"""The length mode: one singular value of an orthogonal tanh net's Jacobian far below the bulk, against theory.

Usage: python scripts/length_mode.py [--width 128] [--trials 100] [--out results/spectra]

Tanh nets with orthogonal weights sqrt(sigma_w^2) Q at the edge of chaos (chi_1 = 1) for
sigma_b^2 = 1e-4 (the isometry study's) and 1e-3, depths 1..128, inputs N(0, 1), J at the first
input (batch 1, as ``fastgrad.studies.isometry.isometry_study``). Per depth: the smallest singular value
over the bulk's root mean square (median and quartiles over trials), the second smallest (the
bulk's lowest), beside ``theory.length_mode`` and the forward slope of the length map. Controls:
linear orthogonal nets (no mode: every singular value equal), relu (J singular: no mode defined),
Gaussian weights (the bulk itself reaches the SVD's floor). A NumPy check on a few trials builds J
from the trial's arrays and compares the mode's singular vectors with the signal's direction.
Writes length_mode.csv, length_mode.md and length_mode.png.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from fastgrad import theory  # noqa: E402
from fastgrad.stats import markdown_table  # noqa: E402

DEPTHS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128)
TANH_B2 = (1e-4, 1e-3)
LOG10 = math.log(10.0)


def forward_prediction(w2: float, b2: float, depth: int) -> np.ndarray:
    """log10 of the mean-field d||h_L||/d||h_0|| over the bulk: prod slope_l sqrt(p_{l-1} / (p_l chi_l)), l = 1..L."""
    logs, p_prev = [], 1.0
    for q in theory.q_sequence("tanh", w2, b2, depth):
        p = theory.gaussian_moments("tanh", float(q))[0]
        logs.append(math.log(theory.length_map_slope("tanh", float(q), w2))
                    + 0.5 * math.log(p_prev / (p * theory.chi("tanh", float(q), w2))))
        p_prev = p
    return np.cumsum(logs) / LOG10


def measure(name: str, spec: fg.MLP, trials: int) -> dict[str, float]:
    """Per-trial ratios to the bulk's root mean square, summarised over trials."""
    s = fg.spectrum(spec, trials=trials, batch=1)
    sv = s.singular_values.astype(np.float64)
    rms = np.sqrt(np.mean(sv**2, axis=1))
    with np.errstate(divide="ignore"):
        low, second = np.log10(sv[:, -1] / rms), np.log10(sv[:, -2] / rms)
    return {"net": name, "depth": spec.depth, "width": spec.width, "trials": trials,
            "log10_smin_median": float(np.median(low)), "log10_smin_q25": float(np.quantile(low, 0.25)),
            "log10_smin_q75": float(np.quantile(low, 0.75)), "log10_second_median": float(np.median(second)),
            "smin_resolved": float(s.resolved[:, -1].mean()), "unresolved_share": float(1 - s.resolved.mean()),
            "log10_resolution_median": float(np.median(np.log10(sv[:, 0] * sv.shape[1] * np.finfo(np.float64).eps
                                                                / rms))),
            "median_condition": float(np.median(s.condition)),
            "median_condition_without_mode": float(np.median(sv[:, 0] / sv[:, -2]))}


def directions(w2: float, b2: float, depth: int, width: int, trials: int) -> dict[str, float]:
    """The mode's singular vectors from J built in NumPy from each trial's arrays (column convention dh_L/dh_0)."""
    spec = fg.MLP(depth=depth, width=width, activation="tanh", init="orthogonal", gain=math.sqrt(w2), sigma_b2=b2)
    W, b, x, _ = fg.mlp_trial_arrays(spec, 0, trials, 1)
    sv = fg.spectrum(spec, trials=trials, batch=1).singular_values
    rows = []
    for t in range(trials):
        h, jac, log_rho = x[t, 0], np.eye(width), 0.0
        for l in range(depth):
            z = h @ W[l][t] + b[l][t]
            nxt, d = np.tanh(z), 1.0 - np.tanh(z) ** 2
            # this trial's own entry of the inverse layer along the signal's direction (theory: kappa sqrt(p/p'))
            log_rho += math.log(((z - b[l][t]) @ (nxt / d)) / (w2 * np.linalg.norm(h) * np.linalg.norm(nxt)))
            jac, h = (d[:, None] * W[l][t].T) @ jac, nxt
        u, s, vt = np.linalg.svd(jac)
        e0, e_l = x[t, 0] / np.linalg.norm(x[t, 0]), h / np.linalg.norm(h)
        rescale = np.linalg.solve(jac, e_l)
        rows.append((abs(s[-1] - sv[t, -1]) / sv[t, -1], abs(vt[-1] @ e0), abs(u[:, -1] @ e_l),
                     abs(vt[-1] @ rescale) / np.linalg.norm(rescale), math.log(s[-1]), log_rho))
    r = np.array(rows)
    return {"sigma_b2": b2, "depth": depth, "trials": trials, "max_rel_diff_numpy_vs_fastgrad": float(r[:, 0].max()),
            "cos_input_vs_h0_median": float(np.median(r[:, 1])), "cos_input_vs_h0_min": float(r[:, 1].min()),
            "cos_output_vs_hL_median": float(np.median(r[:, 2])), "cos_output_vs_hL_min": float(r[:, 2].min()),
            "cos_input_vs_Jinv_hL_min": float(r[:, 3].min()),
            "random_cos": math.sqrt(2 / (math.pi * width)),
            "sd_ln_smin": float(r[:, 4].std()), "sd_ln_smin_times_prod_rho": float((r[:, 4] + r[:, 5]).std()),
            "corr_ln_smin_vs_minus_ln_prod_rho": float(np.corrcoef(r[:, 4], -r[:, 5])[0, 1])}


def figure(table: pd.DataFrame, width: int, trials: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9.5, 9.0))
    colours = {1e-4: "C0", 1e-3: "C3"}
    for b2, colour in colours.items():
        rows = table[table["net"] == f"tanh, sigma_b2={b2:g}"]
        d = rows["depth"].to_numpy()
        w2, q_star = float(rows["sigma_w2"].iloc[0]), float(rows["q_star"].iloc[0])
        tag = rf"$\sigma_b^2$ = {b2:g}"
        ok = rows["smin_resolved"].to_numpy() >= 0.5
        ax.fill_between(d, rows["log10_smin_q25"], rows["log10_smin_q75"], color=colour, alpha=0.18, lw=0)
        ax.plot(d[ok], rows["log10_smin_median"][ok], "o", color=colour, ms=6, zorder=5,
                label=rf"{tag} ($\sigma_w^2$ = {w2:.3f}, q* = {q_star:.3f}): measured $s_{{min}}$, median; "
                      "band: quartiles over trials")
        if (~ok).any():
            ax.plot(d[~ok], rows["log10_smin_median"][~ok], "o", mfc="white", color=colour, ms=7, zorder=5,
                    label=rf"{tag}: measured $s_{{min}}$ below the SVD's resolution in most trials")
        ax.plot(d, rows["log10_second_median"], "x--", color=colour, lw=0.8, ms=6,
                label=rf"{tag}: measured second smallest (the bulk's lowest), median")
        ax.plot(d, rows["theory_log10"], "-", color=colour, lw=2,
                label=rf"{tag}: theory.length_mode, $\prod_l \sqrt{{p_l / (p_{{l-1}} \chi_l)}}\, /\, \kappa(q_l)$")
        ax.plot(d, rows["forward_log10"], ":", color=colour, lw=1.8,
                label=rf"{tag}: product of the length map's slopes (mean-field d||h_L|| / d||h_0||), for comparison")
    lin = table[table["net"] == "linear"]
    ax.plot(lin["depth"], lin["log10_smin_median"], "s", color="k", ms=5, mfc="none",
            label=r"linear orthogonal net ($\sigma_w^2$ = 1): measured $s_{min}$ (theory: exactly 1)")
    res = table[table["net"] == f"tanh, sigma_b2={max(TANH_B2):g}"]
    ax.plot(res["depth"], res["log10_resolution_median"], "-.", color="0.45", lw=1,
            label=r"the SVD's resolution $s_{max}$ k eps (k = width, median): below it s is rounding noise")
    ax.set_xlabel("depth L (layers)")
    ax.set_ylabel(r"log10 (singular value of J / root mean square of its singular values)")
    ax.set_title(f"Orthogonal tanh MLPs at the edge of chaos ($\\chi_1$ = 1), width {width}, {trials} trials "
                 "per point:\n"
                 "one singular value of J = dh_L/dh_0 falls below the bulk, by exp(-2 q*) per layer: the length mode",
                 fontsize=10.5)
    ax.set_xlim(0, max(DEPTHS) + 4)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.8, loc="upper left", bbox_to_anchor=(0.0, -0.08), ncol=1, frameon=False)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--check-trials", type=int, default=16, help="trials of the NumPy singular-vector check")
    parser.add_argument("--out", default="results/spectra")
    parser.add_argument("--figure-only", action="store_true", help="redraw length_mode.png from length_mode.csv")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.figure_only:
        table = pd.read_csv(out / "length_mode.csv")
        figure(table, int(table["width"].iloc[0]), int(table["trials"].iloc[0]), out / "length_mode.png")
        return
    t0 = time.perf_counter()
    rows = []
    for b2 in TANH_B2:
        w2 = theory.critical_sigma_w2("tanh", b2)
        predicted = np.log10(theory.length_mode("tanh", w2, b2, max(DEPTHS)))
        forward = forward_prediction(w2, b2, max(DEPTHS))
        for depth in DEPTHS:
            spec = fg.MLP(depth=depth, width=args.width, activation="tanh", init="orthogonal", gain=math.sqrt(w2),
                          sigma_b2=b2)
            rows.append({**measure(f"tanh, sigma_b2={b2:g}", spec, args.trials), "sigma_w2": w2, "sigma_b2": b2,
                         "q_star": theory.fixed_point("tanh", w2, b2), "theory_log10": float(predicted[depth - 1]),
                         "forward_log10": float(forward[depth - 1])})
        print(f"tanh sigma_b2={b2:g} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    for depth in DEPTHS:
        rows.append({**measure("linear", fg.MLP(depth=depth, width=args.width, activation="linear", init="orthogonal"),
                               args.trials), "sigma_w2": 1.0, "sigma_b2": 0.0, "theory_log10": 0.0})
    for depth in (2, 8, 32):
        rows.append({**measure("relu (no mode: J singular)", fg.MLP(depth=depth, width=args.width, activation="relu",
                                                                     init="orthogonal", gain=math.sqrt(2.0)),
                               args.trials), "sigma_w2": 2.0, "sigma_b2": 0.0})
        w2 = theory.critical_sigma_w2("tanh", 1e-4)
        rows.append({**measure("tanh, Gaussian weights, sigma_b2=0.0001",
                               fg.MLP(depth=depth, width=args.width, activation="tanh", init="scaled_normal",
                                      sigma_w2=w2, sigma_b2=1e-4), args.trials), "sigma_w2": w2, "sigma_b2": 1e-4})
    table = pd.DataFrame(rows)
    table["theory_minus_measured"] = table["theory_log10"] - table["log10_smin_median"]
    checks = pd.DataFrame([directions(theory.critical_sigma_w2("tanh", b2), b2, depth, args.width, args.check_trials)
                           for b2 in TANH_B2 for depth in (32, 64)])
    seconds = time.perf_counter() - t0
    table.to_csv(out / "length_mode.csv", index=False)
    figure(table, args.width, args.trials, out / "length_mode.png")
    cols = ["net", "depth", "sigma_w2", "log10_smin_median", "log10_smin_q25", "log10_smin_q75", "theory_log10",
            "forward_log10", "theory_minus_measured", "log10_second_median", "smin_resolved", "unresolved_share",
            "median_condition", "median_condition_without_mode"]
    (out / "length_mode.md").write_text(
        f"# The length mode: smallest singular value of J over the bulk, width {args.width}, {args.trials} trials "
        f"per row ({seconds:.0f} s)\n\n"
        f"`python scripts/length_mode.py --width {args.width} --trials {args.trials}`\n\n"
        "log10 of s_min / s_rms (s_rms: the root mean square of a trial's singular values), median and quartiles "
        "over trials; `theory_log10`: `theory.length_mode`; `forward_log10`: the forward slope of the length map; "
        "`log10_second_median`: the second smallest (the bulk's lowest); `smin_resolved`: share of trials whose "
        "s_min is above s_max k eps; `unresolved_share`: share of all singular values below it.\n\n"
        + "\n".join(markdown_table(table[cols], digits=4))
        + "\n\n## The mode's singular vectors (J built in NumPy from the trials' arrays)\n\n"
        "cos: |cosine| between the mode's input-side vector and h_0, its output-side vector and h_L, and the "
        "input-side vector and J^{-1} h_L / ||J^{-1} h_L|| (the input change that only rescales h_L); `random_cos`: "
        "the mean |cosine| of two random directions. `sd_ln_smin_times_prod_rho`: the spread over trials of "
        "ln s_min once each trial's own product of inverse entries along h (rho_l) is taken out.\n\n"
        + "\n".join(markdown_table(checks, digits=4)) + "\n")
    print(table[cols].to_string(index=False))
    print(checks.to_string(index=False))


if __name__ == "__main__":
    main()

"""Dynamical isometry from thousands of finite networks: the spectra of J for Gaussian and orthogonal weights.

Usage: python scripts/spectra_figures.py [--width 128] [--trials 200] [--out results/spectra]

Linear, tanh (edge of chaos at sigma_b^2 = 1e-4) and relu (sigma_w^2 = 2) nets at depths 8, 32 and
128 (the density figure) and 2 .. 128 (the variance figure), Gaussian and orthogonal weights. Writes
spectral_density.png/.svg, spectral_variance.png/.svg, spectra.csv and spectra.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastgrad import plot  # noqa: E402
from fastgrad.stats import markdown_table  # noqa: E402
from fastgrad.studies.isometry import isometry_study, isometry_theory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--out", default="results/spectra")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spectra, table = isometry_study(width=args.width, depths=(2, 4, 8, 16, 32, 64, 128), trials=args.trials)
    seconds = time.perf_counter() - t0
    shown = {name: {k: v for k, v in runs.items() if k[0] in (8, 32, 128)} for name, runs in spectra.items()}
    plot.save(plot.spectral_density(shown, title=f"Spectra of J J^T, width {args.width}, {args.trials} trials each",
                                    theory=isometry_theory((8, 32, 128))),
              out / "spectral_density")
    plot.save(plot.spectral_variance(table, title=f"Spread of the spectrum against depth, width {args.width}, "
                                                  f"{args.trials} trials each"), out / "spectral_variance")
    table.to_csv(out / "spectra.csv", index=False)
    cols = ["net", "weights", "depth", "m1", "theory_m1", "m2", "m2_low", "m2_high", "theory_m2", "var_over_m1sq",
            "theory_var_over_m1sq", "median_condition"]
    (out / "spectra.md").write_text(
        f"# Jacobian spectra, width {args.width}, {args.trials} trials per row ({seconds:.0f} s)\n\n"
        f"`python scripts/spectra_figures.py --width {args.width} --trials {args.trials}`\n\n"
        + "\n".join(markdown_table(table[cols], digits=4)) + "\n")
    print(table[cols].to_string(index=False))


if __name__ == "__main__":
    main()

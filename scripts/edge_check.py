"""The order/chaos edge of deep tanh MLPs, measured on a fine grid beside mean-field theory.

Usage: python scripts/edge_check.py [--width 128] [--trials 200] [--step 0.05] [--out results/edge]

The demo's phase-diagram setting (depth 30, tanh, scaled-normal weights, the probe loss) on a
grid of sigma_w^2 = 0.6 .. 2.6 in steps of ``--step`` x sigma_b^2 in {0, 0.05, 0.1, 0.2, 0.3}:
per sigma_b^2, the sigma_w^2 where the fitted decay rate crosses zero (with a paired bootstrap
interval), for the mean log-norm and the mean square, beside the depth-30 theory (q_l iterated
from the input, chi_1(q_l) multiplied layer by layer) and the infinite-depth chi_1 = 1.
Writes edge.csv, edge.md and the store's figures (phase diagram) under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from fastgrad.analysis import edge  # noqa: E402
from fastgrad.report import plot_store  # noqa: E402
from fastgrad.stats import markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--out", default="results/edge")
    args = parser.parse_args()
    out = Path(args.out)
    store = out / "store"
    shutil.rmtree(store, ignore_errors=True)
    w2 = [round(float(v), 4) for v in np.arange(0.6, 2.6 + 1e-9, args.step)]
    b2 = [0.0, 0.05, 0.1, 0.2, 0.3]
    t0 = time.perf_counter()
    fg.sweep("mlp", {"depth": 30, "width": args.width, "init": "scaled_normal", "activation": "tanh",
                     "sigma_w2": w2, "sigma_b2": b2, "loss": "probe"},
             trials=args.trials, batch=8, store=store, progress=False)
    seconds = time.perf_counter() - t0
    tables = []
    for statistic in ("log", "square"):
        e = edge(store, statistic=statistic, n_boot=500)
        e.insert(1, "statistic", statistic)
        tables.append(e)
    table = pd.concat(tables, ignore_index=True)
    table["data_minus_finite"] = table["edge"] - table["theory_finite_depth"]
    table["within_one_step"] = table["data_minus_finite"].abs() <= args.step
    table.to_csv(out / "edge.csv", index=False)
    header = (f"# The tanh order/chaos edge at depth 30, width {args.width}\n\n"
              f"{len(w2)} x {len(b2)} cells (sigma_w^2 step {args.step}), {args.trials} trials each, "
              f"sweep {seconds:.0f} s. `python scripts/edge_check.py --width {args.width} --trials {args.trials} "
              f"--step {args.step}`\n\n")
    (out / "edge.md").write_text(header + "\n".join(markdown_table(table, digits=4)) + "\n")
    plot_store(store, out)
    shutil.rmtree(store)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()

"""Where W-mlp's time goes: the same run with one stage left out at a time.

Usage: python scripts/profile_mlp.py [--threads 1] [--trials 256]

Variants of W-mlp (depth 50, width 64, batch 32): the full run; constant
weights (no Gaussian draws; tanh of constant weights costs the same per
element); a linear activation (no exp); both. Differences of the per-trial
times estimate each stage's cost. Compile time is excluded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from benchmarks.workloads import W_MLP, W_MLP_BATCH  # noqa: E402


def per_trial_ms(spec: fg.MLP, trials: int, threads: int, dtype: str, repeats: int) -> float:
    fg.run(spec, trials=2, batch=W_MLP_BATCH, threads=threads, dtype=dtype)
    times = [fg.run(spec, trials=trials, batch=W_MLP_BATCH, threads=threads, dtype=dtype).run_seconds
             for _ in range(repeats)]
    return 1e3 * float(np.median(times)) * threads / trials  # per trial per core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # 1/64: z stays O(1), so tanh does not saturate and float32 gradients stay out of the
    # subnormal range (with 0.125 they sank into it and subnormal arithmetic made the
    # "no draws" run slower than the full one).
    const = {"init": "constant", "value": 1 / 64, "sigma_w": None, "sigma_b": None, "bias_init": "constant",
             "bias_value": 0.0}
    print("| dtype | full | no draws | no exp (linear) | neither | draws | activation | rest (products, norms) |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in ("float64", "float32"):
        t = {name: per_trial_ms(spec, args.trials, args.threads, dtype, args.repeats) for name, spec in (
            ("full", W_MLP), ("no draws", dataclasses.replace(W_MLP, **const)),
            ("linear", dataclasses.replace(W_MLP, activation="linear")),
            ("neither", dataclasses.replace(W_MLP, activation="linear", **const)))}
        draws = t["full"] - t["no draws"]
        act = t["full"] - t["linear"]
        print(f"| {dtype} | {t['full']:.2f} ms | {t['no draws']:.2f} | {t['linear']:.2f} | {t['neither']:.2f} | "
              f"{draws:.2f} | {act:.2f} | {t['neither']:.2f} |")


if __name__ == "__main__":
    main()

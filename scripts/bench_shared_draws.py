"""An edge-of-chaos sweep cell by cell against all cells over one draw per trial (engine.run_cells).

Usage: python scripts/bench_shared_draws.py [--trials 500] [--rounds 2] [--dtype float64]

The grid of the performance issue: sigma_w^2 = 0.5 .. 3.0 step 0.1 x sigma_b^2 in {0, 0.05, 0.1, 0.2}
(104 cells), tanh, depth 30, width 64, batch 32, the probe loss. Rounds alternate between the two ways;
the results are checked bitwise equal; medians of the seconds are reported, compile time excluded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from fastgrad.engine import run_cells  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="float64")
    args = parser.parse_args()
    specs = [fg.MLP(depth=30, width=64, activation="tanh", init="scaled_normal", sigma_w2=round(0.5 + 0.1 * i, 2),
                    sigma_b2=b2, loss="probe") for b2 in (0.0, 0.05, 0.1, 0.2) for i in range(26)]
    fg.run(specs[0], trials=2, dtype=args.dtype)
    run_cells(specs[:2], trials=2, dtype=args.dtype)  # compiled (or loaded) before the clock starts
    one, shared = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        single = [fg.run(s, trials=args.trials, dtype=args.dtype) for s in specs]
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        together = run_cells(specs, trials=args.trials, dtype=args.dtype)
        shared.append(time.perf_counter() - t0)
        assert all(np.array_equal(a.delta, b.delta) and np.array_equal(a.grad_w, b.grad_w)
                   for a, b in zip(single, together, strict=True))
    total = len(specs) * args.trials
    a, b = statistics.median(one), statistics.median(shared)
    print(f"{len(specs)} cells x {args.trials} trials, {args.dtype}, {args.rounds} interleaved rounds")
    print(f"cell by cell: {a:.1f} s ({total / a:,.0f} trials/s)  rounds {[round(t, 1) for t in one]}")
    print(f"one draw per trial: {b:.1f} s ({total / b:,.0f} trials/s)  rounds {[round(t, 1) for t in shared]}")
    print(f"speed-up: {a / b:.2f}x; results bitwise equal")


if __name__ == "__main__":
    main()

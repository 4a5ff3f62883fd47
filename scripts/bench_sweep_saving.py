"""What saving as it goes costs a grouped sweep: interleaved A/B against a version that saves each group at its end.

A sigma_w^2 x sigma_b^2 grid (every cell differs only in scales: one group over shared draws)
is swept by three variants, in one process, alternating in each round:

- ``before``: the other version's ``fastgrad.sweep`` (imported as ``fastgrad_old``; see
  scripts/ab_inprocess.py for how to make the renamed copy), which ran the group in one
  call and wrote its cells at the end;
- ``saving``: this version's sweep: chunks of about a second, finished trials saved every
  ``save_every`` seconds (default 5) as pieces, joined into the cell files at the end;
- ``cell by cell``: this version's sweep with the cells run one by one (no shared draws),
  to show what sharing still buys.

Kernels are compiled (or loaded) first, untimed. Prints the medians of the wall time per
sweep and the paired ratios.

    python scripts/bench_sweep_saving.py /tmp/oldpkg [--rounds 3] [--depth 30 --width 64 ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="folder holding the renamed copy fastgrad_old")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--dtype", default="float64")
    args = parser.parse_args()
    sys.path.insert(0, args.old)
    import fastgrad_old  # type: ignore[import-not-found]

    import fastgrad
    from fastgrad.sweep import compute_cell

    grid = {"depth": args.depth, "width": args.width, "activation": "tanh", "init": "scaled_normal",
            "sigma_w2": [round(1.0 + 0.1 * i, 2) for i in range(12)], "sigma_b2": [0.0, 0.05]}
    tmp = Path(tempfile.mkdtemp())
    variants = {
        "before": lambda store, trials: fastgrad_old.sweep("mlp", grid, trials=trials, batch=args.batch, seed=0,
                                                           store=store, dtype=args.dtype, progress=False),
        "saving": lambda store, trials: fastgrad.sweep("mlp", grid, trials=trials, batch=args.batch, seed=0,
                                                       store=store, dtype=args.dtype, progress=False),
        "cell by cell": lambda store, trials: fastgrad.sweep("mlp", grid, trials=trials, batch=args.batch, seed=0,
                                                             store=store, dtype=args.dtype, progress=False,
                                                             _compute=compute_cell),
    }
    for name, sweep in variants.items():  # compile or load, untimed
        sweep(tmp / f"warm-{name}", 4)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            store = tmp / f"{name}-{r}"
            t0 = time.perf_counter()
            variants[name](store, args.trials)
            times[name].append(time.perf_counter() - t0)
            shutil.rmtree(store)
    cells = 24
    print(f"grid: {cells} cells (sigma_w2 1.0..2.1 x sigma_b2 0, 0.05), depth {args.depth}, width {args.width}, "
          f"batch {args.batch}, {args.trials} trials, {args.dtype}; {args.rounds} interleaved rounds")
    base = np.array(times["before"])
    for name in names:
        t = np.array(times[name])
        print(f"{name:>14}: median {np.median(t):6.2f} s   runs {', '.join(f'{v:.2f}' for v in t)}   "
              f"median ratio to before {np.median(t / base):.3f}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

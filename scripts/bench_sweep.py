"""Sweep throughput: cells/s and trials/s for a grid of small cells, local and on Dask.

Usage: python scripts/bench_sweep.py [--cells 500] [--trials 20] [--workers 2]

Compares, in one run: (a) a plain Python loop calling fastgrad.run per cell
(no store), (b) fastgrad.sweep locally (store, resume checks, progress off),
(c) fastgrad.sweep on a Dask LocalCluster. Kernels are compiled before timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from fastgrad.sweep import expand_grid  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n_w = args.cells // 10
    grid = {"depth": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50][: max(1, min(10, args.cells // n_w))], "width": 16,
            "init": "scaled_normal", "sigma_w": [round(0.5 + 0.01 * i, 3) for i in range(n_w)]}
    cells = expand_grid("mlp", grid)
    trials = args.trials
    fg.run(fg.MLP(depth=5, width=16), trials=2, batch=8)  # compile
    tmp = tempfile.mkdtemp()
    try:
        t0 = time.perf_counter()
        for params in cells:
            fg.run(fg.MLP(**params), trials=trials, batch=8)
        loop = time.perf_counter() - t0

        t0 = time.perf_counter()
        fg.sweep("mlp", grid, trials=trials, batch=8, store=os.path.join(tmp, "local"), progress=False)
        local = time.perf_counter() - t0

        t0 = time.perf_counter()
        fg.sweep("mlp", grid, trials=trials, batch=8, store=os.path.join(tmp, "local"), progress=False)
        resume = time.perf_counter() - t0

        t0 = time.perf_counter()
        fg.sweep("mlp", grid, trials=trials, batch=8, store=os.path.join(tmp, "dask"), executor="dask",
                 workers=args.workers, progress=False)
        dask = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp)
    n = len(cells)
    print(f"{n} cells x {trials} trials (MLP width 16, depth 5-50), {time.strftime('%Y-%m-%d')}")
    print("| how | seconds | cells/s | trials/s | vs plain loop |")
    print("|---|---|---|---|---|")
    for name, sec in (("plain loop of fastgrad.run", loop), ("sweep, local", local),
                      ("sweep, resume (all cells done)", resume),
                      (f"sweep, dask LocalCluster ({args.workers} workers, incl. start-up)", dask)):
        print(f"| {name} | {sec:.2f} | {n / sec:,.0f} | {n * trials / sec:,.0f} | {sec / loop:.2f}x |")


if __name__ == "__main__":
    main()

"""Measure the engine on the standard workloads; print a Markdown table.

Usage: python scripts/bench_engine.py [--repeats 7]

Reports, per workload, the median trials/s over the repeats (min-max in
brackets), GFLOP/s, the first-call (compile or cache-load) seconds, and the
machine's throughput on the same matrix products alone (Numba calling BLAS,
same shapes, same threads), measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from benchmarks.workloads import (  # noqa: E402
    CHAIN,
    CHAIN_TRIALS,
    W_MLP,
    W_MLP_BATCH,
    W_MLP_TRIALS,
    W_RNN,
    W_RNN_BATCH,
    W_RNN_TRIALS,
    matmul_peak,
    mlp_flops,
    rnn_flops,
)
from fastgrad._numba import max_threads  # noqa: E402


def measure(spec, trials, dtype, repeats, **kw):
    t0 = time.perf_counter()
    first = fg.run(spec, trials=2, dtype=dtype, **kw)
    first_call = time.perf_counter() - t0
    rates = []
    for _ in range(repeats):
        res = fg.run(spec, trials=trials, dtype=dtype, **kw)
        rates.append(res.trials_per_second())
    return np.median(rates), min(rates), max(rates), first_call, first.compile_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"fastgrad {fg.__version__}, {max_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print("| workload | dtype | trials/s median [min-max] | GFLOP/s | same-shape matmul GFLOP/s | fraction "
          "| first call s |")
    print("|---|---|---|---|---|---|---|")
    for dtype in ("float64", "float32"):
        med, lo, hi, first, _ = measure(W_MLP, W_MLP_TRIALS, dtype, args.repeats, batch=W_MLP_BATCH)
        gflops = med * mlp_flops(W_MLP, W_MLP_BATCH) / 1e9
        peak = matmul_peak(dtype, args.repeats, W_MLP_TRIALS)
        print(f"| W-mlp | {dtype} | {med:,.0f} [{lo:,.0f}-{hi:,.0f}] | {gflops:.1f} | {peak:.1f} | "
              f"{gflops / peak:.0%} | {first:.2f} |")
    for dtype in ("float64", "float32"):
        for gain, spec in W_RNN.items():
            med, lo, hi, first, _ = measure(spec, W_RNN_TRIALS, dtype, args.repeats, batch=W_RNN_BATCH)
            gflops = med * rnn_flops(spec, W_RNN_BATCH) / 1e9
            print(f"| W-rnn g={gain} | {dtype} | {med:,.0f} [{lo:,.0f}-{hi:,.0f}] | {gflops:.1f} | - | - "
                  f"| {first:.2f} |")
    for dtype in ("float64", "float32"):
        med, lo, hi, first, _ = measure(CHAIN, CHAIN_TRIALS, dtype, args.repeats)
        print(f"| chain depth 30 | {dtype} | {med:,.0f} [{lo:,.0f}-{hi:,.0f}] | - | - | - | {first:.2f} |")


if __name__ == "__main__":
    main()

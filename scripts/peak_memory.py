"""Peak resident memory of a W-mlp run against its number of trials.

Usage: python scripts/peak_memory.py TRIALS

Working memory is per thread (one trial's weights and activations at a time),
so the peak should be the interpreter and compiled kernels plus the result
arrays (4 statistics x depth 50 x 8 bytes = 1.6 kB per float64 trial).
"""

from __future__ import annotations

import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from benchmarks.workloads import W_MLP, W_MLP_BATCH  # noqa: E402


def main() -> None:
    trials = int(sys.argv[1])
    fg.run(W_MLP, trials=2, batch=W_MLP_BATCH)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = fg.run(W_MLP, trials=trials, batch=W_MLP_BATCH)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results_mb = sum(a.nbytes for a in res.arrays.values()) / 2**20
    print(f"trials={trials} peak_rss_mb={peak:.0f} before_run_mb={before:.0f} results_mb={results_mb:.1f} "
          f"trials_per_s={res.trials_per_second():.0f}")


if __name__ == "__main__":
    main()

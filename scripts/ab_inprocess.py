"""In-process interleaved A/B of run-time speed: another version of fastgrad against this one.

Both packages are imported into one process, so every A run has a B run next to it
under the same machine conditions (a subprocess A/B spreads them over seconds to
minutes and read 0.64-1.16 on one workload here).

The other version is imported as ``fastgrad_old``: make a renamed copy of it once,

    git worktree add /tmp/fastgrad-old COMMIT
    mkdir -p /tmp/oldpkg && cp -r /tmp/fastgrad-old/fastgrad /tmp/oldpkg/fastgrad_old
    grep -rl fastgrad /tmp/oldpkg/fastgrad_old --include=*.py | xargs sed -i -E \\
        's/\\bfrom fastgrad(\\.| )/from fastgrad_old\\1/g; s/\\bimport fastgrad\\b/import fastgrad_old/g'

then ``python scripts/ab_inprocess.py /tmp/oldpkg [--repeats 21] [workload ...]``. Each
workload compiles (or loads) both versions' kernels first, untimed, then alternates
old/new runs (old first on even repeats, new first on odd ones); the table has the
median of the paired new/old ratios of trials/s and their interquartile range.

``OMP_WAIT_POLICY=PASSIVE`` is set before Numba loads: kernels with ``parallel=True``
(fastgrad 0.1) run on Numba's OpenMP threading layer, whose threads spin for a while
after every parallel region and take the cores from whatever runs next. In one
process that penalised every run that followed an old one (W-rnn float32 read 0.954
with spinning threads, 1.019 without).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

WORKLOADS = {
    "W-mlp float64": ("mlp", 512, 32, "float64"),
    "W-mlp float32": ("mlp", 512, 32, "float32"),
    "W-rnn float64": ("rnn", 256, 16, "float64"),
    "W-rnn float32": ("rnn", 256, 16, "float32"),
    "W-mlp batch 8 float64": ("mlp", 1024, 8, "float64"),
    "W-mlp batch 8 float32": ("mlp", 1024, 8, "float32"),
    "W-mlp batch 16 float64": ("mlp", 1024, 16, "float64"),
    "W-mlp batch 16 float32": ("mlp", 1024, 16, "float32"),
    "W-mlp batch 4 float64": ("mlp", 2048, 4, "float64"),
    "W-mlp batch 4 float32": ("mlp", 2048, 4, "float32"),
    "W-mlp batch 1 float32": ("mlp", 2048, 1, "float32"),
    "width-256 MLP batch 16 float64": ("wide", 128, 16, "float64"),
    "width-256 MLP batch 16 float32": ("wide", 128, 16, "float32"),
    "ResMLP batch 8 float64": ("resmlp", 1024, 8, "float64"),
    "ResMLP batch 8 float32": ("resmlp", 1024, 8, "float32"),
    "LSTM float64": ("lstm", 128, 16, "float64"),
    "GRU float64": ("gru", 128, 16, "float64"),
    "W-transformer float64": ("transformer", 32, 8, "float64"),
    "W-transformer float32": ("transformer", 32, 8, "float32"),
    "chain float64": ("chain", 400_000, 1, "float64"),
    "chain float32": ("chain", 400_000, 1, "float32"),
}


def spec(fg: Any, model: str) -> Any:
    """The benchmark workloads' specs (benchmarks/workloads.py), built by either version."""
    if model == "mlp":
        return fg.MLP(depth=50, width=64, activation="tanh", init="scaled_normal", sigma_b=0.1)
    if model == "resmlp":  # W-mlp's shape with skips a = 1/sqrt(L) and pre-LayerNorm
        return fg.ResMLP(depth=50, width=64, activation="tanh", init="scaled_normal", residual="1/sqrt(L)",
                         norm="layer")
    if model == "wide":  # a wide MLP at a small batch (depth 20, width 256)
        return fg.MLP(depth=20, width=256, activation="tanh", init="scaled_normal", sigma_b=0.1)
    if model == "rnn":
        return fg.RNN(steps=100, hidden=64, inputs=16, gain=1.0)
    if model == "lstm":  # W-rnn's shape through the gated cells
        return fg.LSTM(steps=100, hidden=64, inputs=16)
    if model == "gru":
        return fg.GRU(steps=100, hidden=64, inputs=16)
    if model == "transformer":  # W-transformer
        return fg.Transformer(depth=12, tokens=16, width=64, heads=4, norm="pre")
    return fg.Chain(depth=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the folder holding the renamed copy fastgrad_old")
    parser.add_argument("workloads", nargs="*", help=f"default all: {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before Numba starts its OpenMP threads
    sys.path.insert(0, args.old)
    import fastgrad_old as old  # type: ignore[import-not-found]

    import fastgrad as new

    print("| workload | old trials/s | new trials/s | new/old, median of paired ratios | IQR |")
    print("|---|---:|---:|---:|---:|")
    for name in args.workloads or list(WORKLOADS):
        model, trials, batch, dtype = WORKLOADS[name]
        versions = {"old": (old, spec(old, model)), "new": (new, spec(new, model))}
        for mod, s in versions.values():
            mod.run(s, trials=4, batch=batch, dtype=dtype)
        rates: dict[str, list[float]] = {"old": [], "new": []}
        for r in range(args.repeats):
            for key in ("old", "new") if r % 2 == 0 else ("new", "old"):
                mod, s = versions[key]
                t0 = time.perf_counter()
                mod.run(s, trials=trials, batch=batch, dtype=dtype)
                rates[key].append(trials / (time.perf_counter() - t0))
        ratio = np.array(rates["new"]) / np.array(rates["old"])
        q1, q3 = np.percentile(ratio, [25, 75])
        print(f"| {name} | {np.median(rates['old']):,.0f} | {np.median(rates['new']):,.0f} | "
              f"{np.median(ratio):.3f} | {q1:.3f}-{q3:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""Interleaved A/B of run-time speed: this checkout against another checkout of fastgrad.

Usage:
    git worktree add /tmp/fastgrad-old COMMIT
    python scripts/ab_compare.py /tmp/fastgrad-old [--rounds 5] [--repeats 5]

Each round runs every workload once with the other checkout's package and once
with this one, each in a fresh process (A then B, then B then A in the next
round, so drift in the machine's speed hits both alike). A process compiles (or
loads) its kernels first, outside the timing, then reports the median trials/s
of ``--repeats`` runs. Printed per workload: the median over rounds of the
ratio B/A (this checkout over the other), with its range, and the medians of
both. Compile time is kept apart: it is not in these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent

WORKLOADS = {
    # name: (spec expression, trials, batch, dtype)
    "W-mlp float64": ("fg.MLP(depth=50, width=64, activation='tanh', init='scaled_normal', sigma_b=0.1)", 512, 32,
                      "float64"),
    "W-mlp float32": ("fg.MLP(depth=50, width=64, activation='tanh', init='scaled_normal', sigma_b=0.1)", 512, 32,
                      "float32"),
    "W-rnn float64": ("fg.RNN(steps=100, hidden=64, inputs=16, gain=1.0)", 256, 16, "float64"),
    "W-rnn float32": ("fg.RNN(steps=100, hidden=64, inputs=16, gain=1.0)", 256, 16, "float32"),
    "chain float64": ("fg.Chain(depth=30)", 200_000, 1, "float64"),
    "chain float32": ("fg.Chain(depth=30)", 200_000, 1, "float32"),
}

CHILD = r"""
import json, sys, time
import numpy as np
import fastgrad as fg
spec, trials, batch = eval(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
dtype, repeats = sys.argv[4], int(sys.argv[5])
fg.run(spec, trials=4, batch=batch, dtype=dtype)  # compile or load, untimed
rates = []
for _ in range(repeats):
    t0 = time.perf_counter()
    fg.run(spec, trials=trials, batch=batch, dtype=dtype)
    rates.append(trials / (time.perf_counter() - t0))
print(json.dumps({"file": fg.__file__, "rate": float(np.median(rates))}))
"""


def rate(root: Path, workload: tuple[str, int, int, str], repeats: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(root))
    spec, trials, batch, dtype = workload
    out = subprocess.run([sys.executable, "-c", CHILD, spec, str(trials), str(batch), dtype, str(repeats)],
                         env=env, capture_output=True, text=True, cwd=root)
    if out.returncode:
        sys.exit(out.stderr)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["file"].startswith(str(root)), data["file"]
    return float(data["rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (A)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="workload names")
    args = parser.parse_args()
    names = args.only or list(WORKLOADS)
    a = {n: [] for n in names}
    b = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names:
            order = [(args.other.resolve(), a), (HERE, b)]
            for root, store in order if r % 2 == 0 else order[::-1]:
                store[n].append(rate(root, WORKLOADS[n], args.repeats))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    print("| workload | A trials/s | B trials/s | B/A median | B/A range |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        ratio = np.array(b[n]) / np.array(a[n])
        print(f"| {n} | {np.median(a[n]):,.0f} | {np.median(b[n]):,.0f} | {np.median(ratio):.3f} | "
              f"{ratio.min():.3f}-{ratio.max():.3f} |")


if __name__ == "__main__":
    main()

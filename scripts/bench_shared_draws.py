"""An edge-of-chaos sweep: fastgrad cell by cell, fastgrad over one draw per trial, PyTorch looping over cells.

Usage: python scripts/bench_shared_draws.py [--trials 500] [--rounds 2] [--dtype float64] [--no-peers]
       [--out results/peers]

The grid of the performance issue: sigma_w^2 = 0.5 .. 3.0 step 0.1 x sigma_b^2 in {0, 0.05, 0.1, 0.2} (104
cells), tanh, depth 30, width 64, batch 32, mse loss, 500 trials per cell. Each round times, in turn: every
cell with ``fastgrad.run``; all cells with ``engine.run_cells`` (one draw per trial; checked bitwise equal to
the former); and, each in its own subprocess, PyTorch looping over the cells as its users would
(``benchmarks.peers.torch_mlp_cells``: draw each cell's trials with ``torch.randn`` or scale standard normals
drawn once for all cells, then run one ``torch.compile``d batched graph; torch.compile was the fastest peer on
these MLPs in ``scripts/compare_peers.py``, and 1.1-1.2x eager PyTorch here). Compile time is excluded
everywhere: fastgrad's kernels are compiled (or loaded) before the clock starts; torch.compile's first cell is
replaced by the median of the others and its excess reported apart. Medians over the rounds; writes
``sweep_<dtype>.md`` and ``.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fastgrad as fg  # noqa: E402
from fastgrad.engine import run_cells  # noqa: E402

DEPTH, WIDTH, BATCH = 30, 64, 32
GRID = [(round(0.5 + 0.1 * i, 2), b2) for b2 in (0.0, 0.05, 0.1, 0.2) for i in range(26)]
# name: (torch.compile, standard normals drawn once for all cells)
PEERS = {"torch compile, drawing per cell": (True, False), "torch compile, one draw for all cells": (True, True)}

_PEER = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks.peers import torch_mlp_cells
print(json.dumps(torch_mlp_cells({grid!r}, {depth}, {width}, {trials}, {batch}, "tanh", {dtype!r}, {compiled},
                                {draw_once})))
"""


def peer_seconds(compiled: bool, draw_once: bool, trials: int, dtype: str) -> tuple[float, float]:
    """(seconds for all cells without compilation, compilation seconds) of one PyTorch subprocess."""
    code = _PEER.format(root=str(ROOT), grid=GRID, depth=DEPTH, width=WIDTH, trials=trials, batch=BATCH, dtype=dtype,
                        compiled=compiled, draw_once=draw_once)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cells = json.loads(out.stdout.strip().splitlines()[-1])
    typical = statistics.median(cells[1:])
    return sum(cells[1:]) + typical, cells[0] - typical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "peers")
    args = parser.parse_args()
    specs = [fg.MLP(depth=DEPTH, width=WIDTH, activation="tanh", init="scaled_normal", sigma_w2=w2, sigma_b2=b2,
                    loss="mse") for w2, b2 in GRID]
    fg.run(specs[0], trials=2, batch=BATCH, dtype=args.dtype)
    run_cells(specs[:2], trials=2, batch=BATCH, dtype=args.dtype)  # compiled (or loaded) before the clock starts
    times: dict[str, list[float]] = {"fastgrad, cell by cell": [], "fastgrad, one draw per trial (run_cells)": []}
    compile_s: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        single = [fg.run(s, trials=args.trials, batch=BATCH, dtype=args.dtype) for s in specs]
        times["fastgrad, cell by cell"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        together = run_cells(specs, trials=args.trials, batch=BATCH, dtype=args.dtype)
        times["fastgrad, one draw per trial (run_cells)"].append(time.perf_counter() - t0)
        assert all(np.array_equal(a.delta, b.delta) and np.array_equal(a.grad_w, b.grad_w)
                   for a, b in zip(single, together, strict=True))
        if not args.no_peers:
            for name, (compiled, draw_once) in PEERS.items():
                seconds, compiling = peer_seconds(compiled, draw_once, args.trials, args.dtype)
                times.setdefault(name, []).append(seconds)
                compile_s.setdefault(name, []).append(compiling)
    total = len(specs) * args.trials
    med = {k: statistics.median(v) for k, v in times.items()}
    shared = med["fastgrad, one draw per trial (run_cells)"]
    lines = [f"{len(specs)} cells x {args.trials} trials (depth {DEPTH}, width {WIDTH}, batch {BATCH}, tanh, mse), "
             f"{args.dtype}, {args.rounds} interleaved rounds, {os.cpu_count()} cores; "
             f"`python scripts/bench_shared_draws.py --dtype {args.dtype}`, {time.strftime('%Y-%m-%d')}", "",
             "| how | seconds (median) | rounds | trials/s | one draw per trial is |", "|---|---|---|---|---|"]
    for name, value in med.items():
        rounds = ", ".join(f"{t:.1f}" for t in times[name])
        extra = f" (+ {statistics.median(compile_s[name]):.0f} s compiling)" if name in compile_s else ""
        lines.append(f"| {name}{extra} | {value:.1f} | {rounds} | {total / value:,.0f} | {value / shared:.2f}x |")
    lines += ["", "fastgrad's two ways are bitwise equal (checked every round)."]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"sweep_{args.dtype}.md").write_text(text + "\n")
    (args.out / f"sweep_{args.dtype}.json").write_text(json.dumps(
        {"cells": len(specs), "trials": args.trials, "dtype": args.dtype, "seconds": times,
         "compile_seconds": compile_s, "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Check and time the CUDA backend on a machine with an NVIDIA GPU.

Usage: python scripts/gpu_check.py [--quick] [--max-trials 100000]

1. Correctness: the same seeds on CPU and GPU (MLP, RNN, chain; float64 and
   float32), largest relative difference per statistic.
2. Speed: W-mlp (float32, float64) and W-rnn (g = 1.0) at 1 000 to 100 000
   trials: trials/s (compile excluded, device-to-host copies included), GFLOP/s,
   and the fraction of the GPU's own throughput on the same matrix products
   (torch.bmm of the same shapes, measured in the same run, when torch is there).
Prints Markdown tables; --quick uses tiny sizes (for the CUDA simulator).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from fastgrad import gpu  # noqa: E402

W_MLP = fg.MLP(depth=50, width=64, activation="tanh", init="scaled_normal", sigma_w=1.0, sigma_b=0.1)
W_RNN = fg.RNN(steps=100, hidden=64, inputs=16, gain=1.0)


def max_rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for k, v in a.items():
        r = np.asarray(v, dtype=np.float64)
        g = np.asarray(b[k], dtype=np.float64)
        mask = np.isfinite(r) & (np.abs(r) > 1e-30)
        worst = max(worst, float(np.max(np.abs(g[mask] - r[mask]) / np.abs(r[mask]))) if mask.any() else 0.0)
    return worst


def bmm_gflops(batch: int, n_in: int, n_out: int, dtype: str, trials: int) -> float | None:
    """The GPU's throughput on the same products (torch.bmm), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    dt = getattr(torch, dtype)
    h = torch.randn(trials, batch, n_in, dtype=dt, device="cuda")
    w = torch.randn(trials, n_in, n_out, dtype=dt, device="cuda")
    for _ in range(3):
        torch.bmm(h, w)
    torch.cuda.synchronize()
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.bmm(h, w)
    torch.cuda.synchronize()
    return reps * 2.0 * trials * batch * n_in * n_out / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-trials", type=int, default=100_000)
    args = parser.parse_args()
    ok, why = gpu.status()
    print(f"fastgrad {fg.__version__}; cuda backend: {why}")
    if not ok:
        sys.exit(1)
    if args.quick:
        gpu.THREADS_PER_BLOCK = 8
    small = args.quick
    cases = [
        ("MLP tanh", fg.MLP(depth=3 if small else 20, width=5 if small else 64, init="scaled_normal", sigma_b=0.1),
         4 if small else 16),
        ("MLP relu probe", fg.MLP(depth=3 if small else 20, width=5 if small else 64, activation="relu",
                                  init="he_normal", loss="probe"), 4 if small else 16),
        ("RNN tanh", fg.RNN(steps=4 if small else 50, hidden=5 if small else 64, inputs=3 if small else 16), 2 if small
         else 16),
        ("chain", fg.Chain(depth=8 if small else 30), 1),
    ]
    print("\n| check | dtype | trials | max relative difference GPU vs CPU |\n|---|---|---|---|")
    for name, spec, batch in cases:
        for dtype in ("float64", "float32"):
            n = 3 if small else (256 if not isinstance(spec, fg.Chain) else 100_000)
            cpu = fg.run(spec, trials=n, batch=batch, seed=5, dtype=dtype)
            dev = fg.run(spec, trials=n, batch=batch, seed=5, dtype=dtype, backend="cuda")
            print(f"| {name} | {dtype} | {n} | {max_rel(cpu.arrays, dev.arrays):.1e} |", flush=True)

    sizes = [3] if small else [t for t in (1_000, 10_000, 100_000) if t <= args.max_trials]
    print("\n| workload | dtype | trials | trials/s | GFLOP/s | same-shape bmm GFLOP/s | fraction | compile s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, spec, batch in (("W-mlp", W_MLP, 32), ("W-rnn g=1", W_RNN, 16)):
        if small:
            spec = fg.MLP(depth=2, width=4) if name == "W-mlp" else fg.RNN(steps=3, hidden=4, inputs=2)
        for dtype in ("float32", "float64"):
            first = fg.run(spec, trials=1, batch=batch, dtype=dtype, backend="cuda")
            for t in sizes:
                res = fg.run(spec, trials=t, batch=batch, dtype=dtype, backend="cuda")
                if isinstance(spec, fg.MLP):
                    flops = 6.0 * batch * sum(int(spec.dims[i] * spec.dims[i + 1]) for i in range(spec.depth))
                    peak = None if small else bmm_gflops(batch, 64, 64, dtype, t)
                else:
                    flops = 6.0 * batch * spec.steps * (spec.hidden ** 2 + spec.inputs * spec.hidden)
                    peak = None if small else bmm_gflops(batch, 64, 64, dtype, t)
                gf = res.trials_per_second() * flops / 1e9
                frac = f"{gf / peak:.0%}" if peak else "-"
                pk = f"{peak:,.0f}" if peak else "-"
                print(f"| {name} | {dtype} | {t:,} | {res.trials_per_second():,.0f} | {gf:,.0f} | {pk} | {frac} | "
                      f"{first.compile_seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()

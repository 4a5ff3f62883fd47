"""W-cnn: trials per second of fastgrad's CNN statistics against PyTorch (CPU), a first measurement.

The workload of issue 25: 2-D 8 x 8, c = 16, k = 3 (circular), depth 20, batch 8, tanh, float64 and
float32; per trial the per-layer ||dL/dW_l||, ||dL/db_l||, ||delta_l|| and q_l (fastgrad also the
neighbour correlation). PyTorch: (a) a loop over trials, one conv2d graph each; (b) all trials of a
chunk at once as a grouped convolution (groups = trials), one autograd pass, the statistics by
reshaping the gradients per trial. Weights drawn inside the timing in both (fastgrad draws its own).
Not measured: ``torch.compile`` and JAX (``scripts/compare_peers.py`` has neither workload yet).

usage: PYTHONPATH=. python scripts/cnn_speed.py [--trials 256] [--threads 2] [--repeats 3]
Writes results/cnn/speed.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import fastgrad as fg

OUT = Path(__file__).resolve().parent.parent / "results" / "cnn"
DEPTH, C, N, BATCH = 20, 16, 8, 8


def torch_loop(trials: int, dtype: torch.dtype) -> None:
    """One trial at a time: draw, forward, backward, the per-layer norms."""
    std = (1.0 / (C * 9)) ** 0.5
    for _ in range(trials):
        ws = [(torch.randn(C, C, 3, 3, dtype=dtype) * std).requires_grad_() for _ in range(DEPTH)]
        bs = [torch.zeros(C, dtype=dtype, requires_grad=True) for _ in range(DEPTH)]
        h = torch.randn(BATCH, C, N, N, dtype=dtype)
        zs = []
        for w, b in zip(ws, bs, strict=True):
            z = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="circular"), w, b)
            z.retain_grad()
            zs.append(z)
            h = torch.tanh(z)
        (0.5 * ((h - torch.randn_like(h)) ** 2).sum() / BATCH).backward()
        torch.stack([w.grad.norm() for w in ws] + [b.grad.norm() for b in bs] + [z.grad.norm() for z in zs]
                    + [(z.detach() ** 2).mean() for z in zs]).numpy()


def torch_grouped(trials: int, dtype: torch.dtype, chunk: int = 64) -> None:
    """Chunks of trials as one grouped convolution (groups = trials of the chunk)."""
    std = (1.0 / (C * 9)) ** 0.5
    for lo in range(0, trials, chunk):
        t = min(chunk, trials - lo)
        ws = [(torch.randn(t * C, C, 3, 3, dtype=dtype) * std).requires_grad_() for _ in range(DEPTH)]
        bs = [torch.zeros(t * C, dtype=dtype, requires_grad=True) for _ in range(DEPTH)]
        h = torch.randn(BATCH, t * C, N, N, dtype=dtype)
        zs = []
        for w, b in zip(ws, bs, strict=True):
            z = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="circular"), w, b, groups=t)
            z.retain_grad()
            zs.append(z)
            h = torch.tanh(z)
        (0.5 * ((h - torch.randn_like(h)) ** 2).sum() / BATCH).backward()
        stats = [w.grad.reshape(t, -1).norm(dim=1) for w in ws] + [b.grad.reshape(t, -1).norm(dim=1) for b in bs]
        stats += [z.grad.reshape(BATCH, t, -1).transpose(0, 1).reshape(t, -1).norm(dim=1) for z in zs]
        stats += [(z.detach().reshape(BATCH, t, -1) ** 2).mean(dim=(0, 2)) for z in zs]
        torch.stack(stats).numpy()


def best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """The shortest of ``repeats`` runs of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    """Measure and write the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    spec = fg.CNN(depth=DEPTH, channels=C, size=N, ndim=2, kernel_size=3, activation="tanh")
    lines = [f"W-cnn: 2-D {N}x{N}, c = {C}, k = 3 circular, depth {DEPTH}, batch {BATCH}, tanh; {a.trials} trials, "
             f"{a.threads} threads, best of {a.repeats}; trials per second", "",
             "| dtype | fastgrad | PyTorch loop | PyTorch grouped conv | fastgrad / best PyTorch |",
             "|---|---|---|---|---|"]
    for name, tdt in (("float64", torch.float64), ("float32", torch.float32)):
        fg.run(spec, trials=2, batch=BATCH, dtype=name, threads=a.threads)  # compile outside the timing
        ours = best(lambda name=name: fg.run(spec, trials=a.trials, batch=BATCH, dtype=name, threads=a.threads),
                    a.repeats)
        loop = best(lambda tdt=tdt: torch_loop(a.trials, tdt), a.repeats)
        grouped = best(lambda tdt=tdt: torch_grouped(a.trials, tdt), a.repeats)
        rates = [a.trials / v for v in (ours, loop, grouped)]
        lines.append(f"| {name} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[2]:,.0f} | "
                     f"{rates[0] / max(rates[1:]):.2f}x |")
        print(lines[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

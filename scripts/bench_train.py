"""Training speed: fastgrad.train against a PyTorch loop training the same networks.

Usage: python scripts/bench_train.py [--trials 16] [--epochs 5]

The same MLPs (depth 5, width 30, sigmoid, N(0, 1) weights, digits or a teacher task),
the same initial weights (trial k of fastgrad's draws), the same minibatch order, SGD
with momentum; PyTorch trains them one after another (what a user writes), in its own
process. Reports trials x epochs per second (median of repeats, compile apart) and the
largest difference between the final weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402
from fastgrad.codes import ORDER as ORDER_TENSOR  # noqa: E402
from fastgrad.data import digits, teacher  # noqa: E402
from fastgrad.rng import uniforms  # noqa: E402

SPEC = fg.MLP(depth=5, width=30, activation="sigmoid", init="normal", sigma_w=1.0, sigma_b=1.0)
LR, MOMENTUM, BATCH = 0.1, 0.9, 32


def torch_worker(path: str, out: str, epochs: int, repeats: int) -> None:
    """Train every trial with a PyTorch loop; save final weights and timings."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    d = dict(np.load(path))
    x, y, init, dims = torch.from_numpy(d["x"]), torch.from_numpy(d["y"]), d["initial"], d["dims"]
    labels = y.argmax(dim=1)
    orders = d["orders"]  # (trials, epochs, N)

    def run() -> np.ndarray:
        finals = []
        for k in range(init.shape[0]):
            flat, off, layers = init[k], 0, []
            shapes = [(int(dims[l]), int(dims[l + 1])) for l in range(len(dims) - 1)]
            ws = []
            for a, b in shapes:
                ws.append(torch.tensor(flat[off:off + a * b].reshape(a, b), requires_grad=True))
                off += a * b
            bs = []
            for _, b in shapes:
                bs.append(torch.tensor(flat[off:off + b], requires_grad=True))
                off += b
            layers = ws + bs
            opt = torch.optim.SGD(layers, lr=LR, momentum=MOMENTUM)
            for e in range(epochs):
                order = torch.from_numpy(orders[k, e])
                for s in range(x.shape[0] // BATCH):
                    rows = order[s * BATCH:(s + 1) * BATCH]
                    h = x[rows]
                    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
                        h = h @ w + b
                        if i < len(ws) - 1:
                            h = torch.sigmoid(h)
                    loss = torch.nn.functional.cross_entropy(h, labels[rows])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finals.append(torch.cat([w.detach().reshape(-1) for w in layers]).numpy())
        return np.stack(finals)

    t0 = time.perf_counter()
    finals = run()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    np.save(out + ".npy", finals)
    Path(out + ".json").write_text(json.dumps({"first": first, "times": times}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch_worker(args.worker[0], args.worker[1], args.epochs, args.repeats)
        return
    try:
        data = digits()
    except RuntimeError:
        data = teacher("classification", samples=1800, features=64, outputs=10)
    kw = dict(optimizer="momentum", lr=LR, momentum=MOMENTUM, epochs=args.epochs, batch=BATCH, trials=args.trials)
    first = fg.train(SPEC, data, **kw)
    times = [fg.train(SPEC, data, **kw).seconds for _ in range(args.repeats)]
    n = data.x_train.shape[0]
    orders = np.stack([np.stack([np.argsort(uniforms(0, k, ORDER_TENSOR + e, n), kind="stable")
                                 for e in range(args.epochs)]) for k in range(args.trials)])
    rows = [("fastgrad.train (all trials in parallel)", float(np.median(times)), first.seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x=data.x_train, y=data.y_train, initial=first.initial, dims=first.spec.dims, orders=orders)
        out = os.path.join(tmp, "torch")
        proc = subprocess.run([sys.executable, __file__, "--worker", path, out, "--epochs", str(args.epochs),
                               "--repeats", str(args.repeats)], capture_output=True, text=True)
        if proc.returncode == 0:
            timing = json.loads(Path(out + ".json").read_text())
            diff = float(np.max(np.abs(np.load(out + ".npy") - first.final)))
            rows.append(("PyTorch loop over trials (torch.optim.SGD)", float(np.median(timing["times"])),
                         timing["first"]))
        else:
            diff = float("nan")
            print(f"PyTorch run failed or torch is absent:\n{proc.stderr[-1500:]}", file=sys.stderr)
    te = args.trials * args.epochs
    print(f"{data.name}, {args.trials} trials x {args.epochs} epochs, depth 5 width 30 sigmoid, momentum SGD, "
          f"batch {BATCH}, {time.strftime('%Y-%m-%d')}; max |final weight difference| = {diff:.1e}")
    print("| implementation | seconds (median) | trials x epochs / s | first call s |\n|---|---|---|---|")
    for name, sec, firstcall in rows:
        print(f"| {name} | {sec:.2f} | {te / sec:,.1f} | {firstcall:.2f} |")
    if len(rows) == 2:
        print(f"\nfastgrad / PyTorch: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()

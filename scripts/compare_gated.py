"""LSTM and GRU statistics: fastgrad against PyTorch on identical arrays, interleaved in one process.

Usage: python scripts/compare_gated.py [--trials 64] [--repeats 5] [--dtype float64] [--out results/peers]

The workload is W-rnn's shape (100 steps, hidden 64, inputs 16, batch 16, the ``last`` loss). Per
trial every implementation computes ||dL/dh_t|| at every step and dL/dW_h; PyTorch through autograd:
"torch bmm" unrolls the cell over all trials at once with batched products (one weight set per trial,
torch.bmm, retain_grad on every h_t); "torch loop" runs torch.nn.LSTM / nn.GRU trial by trial (weight
gradients only: less work than the others, a bound on that peer). Repeats alternate between the
implementations; medians of trials/s are reported, the first call (compilation) apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402

STEPS, HIDDEN, INPUTS, BATCH = 100, 64, 16, 16


def torch_bmm(cell: str, arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Per-step ||dL/dh_t|| and the W_h gradient of every trial, by autograd over batched cells."""
    import torch

    if cell == "lstm":
        wh, wx, b, x, y = (torch.from_numpy(a) for a in arrays)
        bh = None
    else:
        wh, wx, b, bh, x, y = (torch.from_numpy(a) for a in arrays)
    wh = wh.clone().requires_grad_(True)
    trials, steps, batch, _ = x.shape
    n = wh.shape[1]
    xs = torch.einsum("tsbd,tdg->stbg", x, wx) + b[None, :, None, :]  # input products of every step
    h = torch.zeros(trials, batch, n, dtype=x.dtype)
    c = torch.zeros_like(h)
    hs = []
    for s in range(steps):
        ah = torch.bmm(h, wh)
        if cell == "lstm":
            a = xs[s] + ah
            i, f, g, o = a.split(n, dim=2)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            ah = ah + bh[:, None, :]
            ax = xs[s]
            r = torch.sigmoid(ax[..., :n] + ah[..., :n])
            z = torch.sigmoid(ax[..., n:2 * n] + ah[..., n:2 * n])
            cand = torch.tanh(ax[..., 2 * n:] + r * ah[..., 2 * n:])
            h = (1 - z) * cand + z * h
        h.retain_grad()
        hs.append(h)
    loss = ((h - y) ** 2).sum() / (2 * batch)
    loss.backward()
    grad_h = torch.stack([t.grad.flatten(1).norm(dim=1) for t in hs], dim=1)
    return {"grad_h": grad_h.numpy(), "grad_whh": wh.grad.flatten(1).norm(dim=1).numpy()}


def torch_loop(cell: str, arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """torch.nn.LSTM / nn.GRU trial by trial: the W_h gradient norms only."""
    import torch

    wh, wx, b = arrays[0], arrays[1], arrays[2]
    x, y = arrays[-2], arrays[-1]
    dt = torch.float64 if x.dtype == np.float64 else torch.float32
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(x.shape[3], wh.shape[1]).to(dt)
    out = np.empty(x.shape[0])
    for t in range(x.shape[0]):
        with torch.no_grad():
            module.weight_hh_l0.copy_(torch.from_numpy(wh[t].T))
            module.weight_ih_l0.copy_(torch.from_numpy(wx[t].T))
            module.bias_ih_l0.copy_(torch.from_numpy(b[t]))
            module.bias_hh_l0.copy_(torch.from_numpy(arrays[3][t]) if cell == "gru" else 0.0 * module.bias_hh_l0)
        module.zero_grad()
        hs, _ = module(torch.from_numpy(x[t]))
        (((hs[-1] - torch.from_numpy(y[t])) ** 2).sum() / (2 * x.shape[2])).backward()
        out[t] = float(module.weight_hh_l0.grad.norm())
    return {"grad_whh": out}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--out", default="results/peers")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for cell in ("lstm", "gru"):
        spec = (fg.LSTM if cell == "lstm" else fg.GRU)(steps=STEPS, hidden=HIDDEN, inputs=INPUTS, init="orthogonal")
        arrays = fg.gated_trial_arrays(spec, seed=0, trials=args.trials, batch=BATCH, dtype=args.dtype)
        backprop = fg.lstm_backprop if cell == "lstm" else fg.gru_backprop
        impls = {
            "fastgrad": lambda: backprop(*arrays).arrays,  # noqa: B023
            "fastgrad generated": lambda: fg.run(spec, trials=args.trials, batch=BATCH, dtype=args.dtype).arrays,  # noqa: B023
            "torch bmm": lambda: torch_bmm(cell, arrays),  # noqa: B023
            "torch loop": lambda: torch_loop(cell, arrays),  # noqa: B023
        }
        first, times, outs = {}, {k: [] for k in impls}, {}
        for name, fn in impls.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            first[name] = time.perf_counter() - t0
        for _ in range(args.repeats):
            for name, fn in impls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        ref = outs["fastgrad"]
        for name in impls:
            err = max(float(np.max(np.abs(outs[name][k] - ref[k]) / np.abs(ref[k]))) for k in outs[name])
            rate = [args.trials / t for t in times[name]]
            rows.append({"workload": f"{cell.upper()} S={STEPS} n={HIDDEN} d={INPUTS} B={BATCH}", "dtype": args.dtype,
                         "implementation": name, "trials_per_s": statistics.median(rate), "min": min(rate),
                         "max": max(rate), "first_call_s": first[name], "max_rel_diff": err})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gated_{args.dtype}.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# LSTM and GRU: fastgrad and PyTorch {torch.__version__}, {args.dtype}, {args.trials} trials, "
             f"median of {args.repeats} interleaved repeats", "",
             "| workload | implementation | trials/s (min-max) | first call s | max rel. diff | fastgrad / this |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        fast = next(q["trials_per_s"] for q in rows
                    if q["workload"] == r["workload"] and q["implementation"] == "fastgrad")
        lines.append(f"| {r['workload']} | {r['implementation']} | {r['trials_per_s']:.1f} "
                     f"({r['min']:.1f}-{r['max']:.1f}) | {r['first_call_s']:.2f} | {r['max_rel_diff']:.1e} "
                     f"| {fast / r['trials_per_s']:.2f} |")
    (out / f"gated_{args.dtype}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

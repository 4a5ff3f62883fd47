"""The price of generality: fastgrad.torch_run against the compiled engine and a plain PyTorch loop, on W-mlp.

Usage: python scripts/bench_torch_run.py [--trials 256] [--repeats 3] [--threads 2] [--out results/torch_run]

W-mlp (benchmarks/workloads.py): depth 50, width 64, tanh, W ~ N(0, 1/64), b ~ N(0, 0.1^2), batch 32, mse.
Rows, each the median trials/s over the repeats, first call (compiling or warming up) apart:

- ``fastgrad run``: the compiled engine, fg.run(W_MLP);
- ``torch_run vmap``: fg.torch_run of the same network as an nn.Sequential, vectorised with torch.func;
- ``torch_run vmap, init= (one module)``: the same trials' draws made by ``init`` on one module built once
  (TorchNet's ``init``), so no module is built per trial;
- ``torch_run loop``: the same, vectorize=False (one autograd pass per trial inside torch_run);
- ``plain torch loop``: what a user writes without fastgrad: per trial, build the module, hooks with
  retain_grad on every output, backward, read the norms;
- ``torch_run vmap, building excluded``: the vmapped measurement alone, modules built beforehand (how much
  of torch_run's time is building trial modules in Python);
- ``plain torch loop, building excluded``: the plain loop's measurement alone, on the same 64 modules.

All torch rows run with torch.set_num_threads(threads). Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fastgrad as fg  # noqa: E402
from benchmarks.workloads import W_MLP, W_MLP_BATCH  # noqa: E402
from fastgrad.models._torch_run import Runner  # noqa: E402

WIDTH = 64
"""W-mlp's width; --width changes it (and the compiled engine's spec with it)."""


def w_mlp(g: torch.Generator) -> nn.Sequential:
    """W-mlp as a PyTorch module: 50 x (Linear(n, n), Tanh), W ~ N(0, 1/n), b ~ N(0, 0.01)."""
    layers: list[nn.Module] = []
    for _ in range(W_MLP.depth):
        lin = nn.Linear(WIDTH, WIDTH)
        nn.init.normal_(lin.weight, std=WIDTH**-0.5, generator=g)
        nn.init.normal_(lin.bias, std=0.1, generator=g)
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers)


def w_mlp_init(module: nn.Sequential, g: torch.Generator) -> None:
    """W-mlp's draws on a built module (torch_run's ``init``): W ~ N(0, 1/64), b ~ N(0, 0.01)."""
    for lin in module[::2]:
        nn.init.normal_(lin.weight, std=WIDTH**-0.5, generator=g)
        nn.init.normal_(lin.bias, std=0.1, generator=g)


def plain_loop(trials: int, batch: int, built: list | None = None) -> np.ndarray:  # type: ignore[type-arg]
    """Per trial: build, hooks, backward, norms (the gradient norms of each Linear's output and weight).

    With ``built`` (a list of (module, x, y)), the modules are given: the measurement alone.
    """
    out = np.empty((trials, 2, W_MLP.depth))
    for k in range(trials):
        if built is None:
            g = torch.Generator().manual_seed(k)
            net = w_mlp(g)
            x = torch.randn(batch, WIDTH, generator=g)
            y = torch.randn(batch, WIDTH, generator=g)
        else:
            net, x, y = built[k % len(built)]
            net.zero_grad(set_to_none=True)
        zs: list[torch.Tensor] = []
        handles = [m.register_forward_hook(lambda mod, i, o, zs=zs: (o.retain_grad(), zs.append(o))[0])
                   for m in net if isinstance(m, nn.Linear)]
        loss = 0.5 * ((net(x) - y) ** 2).sum() / batch
        loss.backward()
        for h in handles:
            h.remove()
        out[k, 0] = [z.grad.norm().item() for z in zs]
        out[k, 1] = [m.weight.grad.norm().item() for m in net if isinstance(m, nn.Linear)]
    return out


def timed(fn, repeats: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    """(first call's seconds, the repeats' seconds)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, times


def main() -> None:
    global WIDTH
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=int, default=64, help="another width than W-mlp's")
    p.add_argument("--batch", type=int, default=W_MLP_BATCH, help="another batch than W-mlp's 32")
    p.add_argument("--out", default="results/torch_run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    WIDTH = args.width
    n, b = args.trials, args.batch
    mlp = fg.MLP(depth=W_MLP.depth, width=WIDTH, activation="tanh", init="scaled_normal", sigma_w=1.0, sigma_b=0.1)
    spec = fg.TorchNet(w_mlp, inputs=WIDTH)
    runner = Runner(spec, b, 0, np.dtype("float64"))
    built = [runner.trial(k) for k in range(64)]
    rows = {
        "fastgrad run": (lambda: fg.run(mlp, 8 * n, batch=b, threads=args.threads), 8 * n),
        "torch_run vmap": (lambda: fg.torch_run(w_mlp, n, batch=b, inputs=WIDTH), n),
        "torch_run vmap, building excluded": (lambda: runner._vmapped(built), 64),
        "torch_run vmap, init= (one module)": (lambda: fg.torch_run(w_mlp, n, batch=b, inputs=WIDTH, init=w_mlp_init),
                                              n),
        "torch_run loop": (lambda: fg.torch_run(w_mlp, n // 4, batch=b, inputs=WIDTH, vectorize=False), n // 4),
        "plain torch loop": (lambda: plain_loop(n // 4, b), n // 4),
        "plain torch loop, building excluded": (lambda: plain_loop(64, b, built), 64),
    }
    results = []
    for name, (fn, trials) in rows.items():
        first, times = timed(fn, args.repeats)
        med = statistics.median(times)
        results.append({"row": name, "trials": trials, "trials_per_s": trials / med,
                        "min_max": [trials / max(times), trials / min(times)], "first_call_s": first})
        print(f"{name:36s} {trials / med:10,.0f} trials/s  (first call {first:.2f} s)", flush=True)
    base = next(r["trials_per_s"] for r in results if r["row"] == "fastgrad run")
    plain = next(r["trials_per_s"] for r in results if r["row"] == "plain torch loop")
    lines = [f"{time.strftime('%Y-%m-%d')}, W-mlp (depth 50, tanh, float64) at width {WIDTH}, batch {b}, "
             f"{args.threads} threads, torch {torch.__version__}", "",
             "| row | trials/s (median, min-max) | first call s | x compiled engine | x plain torch loop |",
             "|---|---|---|---|---|"]
    for r in results:
        lo, hi = r["min_max"]
        lines.append(f"| {r['row']} | {r['trials_per_s']:,.0f} ({lo:,.0f}-{hi:,.0f}) | {r['first_call_s']:.2f} | "
                     f"{r['trials_per_s'] / base:.3f} | {r['trials_per_s'] / plain:.1f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

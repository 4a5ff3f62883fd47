"""The cures' workloads (LSTM, GRU, residual MLP): fastgrad against PyTorch and JAX on identical arrays.

Usage: python scripts/compare_gated.py [--trials 64] [--repeats 5] [--dtype float64] [--out results/peers]

All implementations run interleaved in one process. The recurrent workloads have W-rnn's shape
(100 steps, hidden 64, inputs 16, batch 16, the ``last`` loss); the residual one W-mlp's (depth 50,
width 64, batch 32, tanh, a = 1/sqrt(L), pre-LayerNorm). For the residual MLP every implementation
computes ||dL/dh_{l-1}|| and ||dL/dW_l|| per layer ("torch bmm": the layers over all trials at once).
Per
trial every implementation computes ||dL/dh_t|| at every step and dL/dW_h; PyTorch through autograd:
"torch bmm" unrolls the cell over all trials at once with batched products (one weight set per trial,
torch.bmm, retain_grad on every h_t); "torch loop" runs torch.nn.LSTM / nn.GRU trial by trial (weight
gradients only: less work than the others, a bound on that peer); "jax vmap" is jit(vmap(grad)) of one
trial unrolled with lax.scan (benchmarks/peers.jax_gated), when JAX is installed. Repeats alternate
between the implementations; medians of trials/s are reported, the first call (compilation) apart.
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # fastgrad and benchmarks/

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


def torch_resmlp(arrays: tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray],
                 a: float) -> dict[str, np.ndarray]:
    """||dL/dh_{l-1}|| and ||dL/dW_l|| per layer of every trial by autograd, layers batched over trials."""
    import torch

    W = [torch.from_numpy(w).requires_grad_(True) for w in arrays[0]]
    b = [torch.from_numpy(v) for v in arrays[1]]
    x, y = torch.from_numpy(arrays[2]), torch.from_numpy(arrays[3])
    depth = len(W)
    hs = [x.clone().requires_grad_(True)]
    h = hs[0]
    for l in range(depth):
        if 0 < l < depth - 1:
            u = torch.nn.functional.layer_norm(h, h.shape[-1:], eps=1e-5)
            h = h + a * torch.tanh(torch.bmm(u, W[l]) + b[l][:, None, :])
        else:
            h = torch.tanh(torch.bmm(h, W[l]) + b[l][:, None, :])
        if l < depth - 1:
            h.retain_grad()
            hs.append(h)
    (((h - y) ** 2).sum() / (2 * x.shape[1])).backward()
    return {"grad_h": torch.stack([t.grad.flatten(1).norm(dim=1) for t in hs], dim=1).numpy(),
            "grad_w": torch.stack([w.grad.flatten(1).norm(dim=1) for w in W], dim=1).numpy()}


def jax_resmlp(a: float):  # type: ignore[no-untyped-def]
    """jit(vmap(grad)) of one residual trial; dL/dh via zero perturbations of h."""
    import jax
    import jax.numpy as jnp

    def loss(W, eps, b, x, y):  # type: ignore[no-untyped-def]
        h = x + eps[0]
        for l in range(len(W)):
            if 0 < l < len(W) - 1:
                mu = h.mean(axis=-1, keepdims=True)
                u = (h - mu) / jnp.sqrt(((h - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
                h = h + a * jnp.tanh(u @ W[l] + b[l])
            else:
                h = jnp.tanh(h @ W[l] + b[l])
            if l < len(W) - 1:
                h = h + eps[l + 1]
        return 0.5 * jnp.sum((h - y) ** 2) / x.shape[0]

    def one(W, b, x, y):  # type: ignore[no-untyped-def]
        eps = [jnp.zeros((x.shape[0], w.shape[0]), x.dtype) for w in W]
        gw, ge = jax.grad(loss, argnums=(0, 1))(W, eps, b, x, y)
        return {"grad_h": jnp.stack([jnp.linalg.norm(g) for g in ge]),
                "grad_w": jnp.stack([jnp.linalg.norm(g) for g in gw])}

    fn = jax.jit(jax.vmap(one))
    return lambda W, b, x, y: fn(list(W), list(b), x, y)


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


def _measure(workload: str, dtype: str, impls: dict, trials: int, repeats: int) -> list[dict]:  # type: ignore[type-arg]
    """Each implementation's first call, then ``repeats`` interleaved rounds; rows against the first one's output."""
    first, times, outs = {}, {k: [] for k in impls}, {}
    for name, fn in impls.items():
        t0 = time.perf_counter()
        outs[name] = fn()
        first[name] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ref = next(iter(outs.values()))
    rows = []
    for name in impls:
        err = max(float(np.max(np.abs(outs[name][k] - ref[k]) / np.abs(ref[k]))) for k in outs[name])
        rate = [trials / t for t in times[name]]
        rows.append({"workload": workload, "dtype": dtype, "implementation": name,
                     "trials_per_s": statistics.median(rate), "min": min(rate), "max": max(rate),
                     "first_call_s": first[name], "max_rel_diff": err})
    return rows


def residual_rows(args: argparse.Namespace) -> list[dict]:  # type: ignore[type-arg]
    """The residual MLP with pre-LayerNorm (depth 50, width 64, batch 32): fastgrad, torch bmm, jax vmap."""
    depth, width, batch = 50, 64, 32
    a = 1 / np.sqrt(depth)
    spec = fg.ResMLP(depth=depth, width=width, init="scaled_normal", residual="1/sqrt(L)", norm="layer")
    arrays = fg.mlp_trial_arrays(spec, 0, args.trials * 4, batch, args.dtype)

    def ours() -> dict[str, np.ndarray]:
        res = fg.resmlp_backprop(*arrays, residual="1/sqrt(L)", norm="layer")
        return {"grad_h": res.grad_h, "grad_w": res.grad_w}

    impls = {"fastgrad": ours,
             "fastgrad generated": lambda: {k: v for k, v in fg.run(spec, trials=args.trials * 4, batch=batch,
                                                                      dtype=args.dtype).arrays.items()
                                            if k in ("grad_h", "grad_w")},
             "torch bmm": lambda: torch_resmlp(arrays, a)}
    try:
        import jax

        jax.config.update("jax_enable_x64", args.dtype == "float64")
        jfn = jax_resmlp(a)
        impls["jax vmap"] = lambda: {k: np.asarray(jax.block_until_ready(v)) for k, v in jfn(*arrays).items()}
    except ImportError:
        pass
    return _measure(f"ResMLP+LN L={depth} n={width} B={batch}", args.dtype, impls, args.trials * 4, args.repeats)


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
        try:
            import jax

            jax.config.update("jax_enable_x64", args.dtype == "float64")
            from benchmarks.peers import jax_gated

            jfn = jax_gated(cell)
            impls["jax vmap"] = lambda: {k: np.asarray(jax.block_until_ready(v))  # noqa: B023
                                         for k, v in jfn(*arrays).items()}  # noqa: B023
        except ImportError:
            print("jax is not installed: its row is left out")
        rows += _measure(f"{cell.upper()} S={STEPS} n={HIDDEN} d={INPUTS} B={BATCH}", args.dtype, impls,
                         args.trials, args.repeats)
    rows += residual_rows(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gated_{args.dtype}.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# LSTM, GRU, ResMLP: fastgrad, PyTorch {torch.__version__} and JAX, {args.dtype}, {args.trials} trials, "
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

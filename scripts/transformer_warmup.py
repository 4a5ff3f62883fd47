"""Xiong et al.'s warm-up question on fastgrad's transformer trials, trained in PyTorch.

Post-LN without warm-up, post-LN with a linear warm-up and pre-LN without warm-up, at two depths,
each trial starting from the weights that ``fg.run`` measures (``fg.transformer_trial_arrays``,
trial k of ``--seed``), trained with Adam on ``fg.data.sort_digits``. ``fg.train`` has no transformer
kernel yet, so the training runs in PyTorch (torch.nn.functional, the network of
tests/test_transformer.py), the trials of one configuration batched along a leading axis: Adam is
elementwise and the loss is a sum of the trials' losses, so each trial trains exactly as it would
alone. Every configuration sees the same minibatches in the same order (paired).

The readout is fixed: the logits are the first ``digits`` channels of the last stream (after the
last norm), so the trial's weights are all that trains.

    PYTHONPATH=$PWD python scripts/transformer_warmup.py            # writes results/transformers/warmup.*
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import fastgrad as fg

F = torch.nn.functional
DIGITS = 10
SAMPLES = 2500  # 2000 training sequences, 500 held out
CONFIGS = (("post", False), ("post", True), ("pre", False))  # (norm, warm-up)


def forward(ws: list[torch.Tensor], x: torch.Tensor, heads: int, norm: str) -> torch.Tensor:
    """The last stream, (K, B, T, d), of K trials at once; ``ws`` each (K, L, ., .), x (B, T, d)."""
    wq, wk, wv, wo, w1, w2 = ws
    k_trials, depth = wq.shape[:2]
    batch, tokens, d = x.shape
    dh = d // heads

    def nrm(h: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(h, (d,), eps=1e-5)

    def split(t: torch.Tensor) -> torch.Tensor:  # (K, B, T, d) -> (K, B, H, T, dh)
        return t.view(k_trials, batch, tokens, heads, dh).transpose(2, 3)

    h = x.expand(k_trials, batch, tokens, d)
    for l in range(depth):
        u = nrm(h) if norm == "pre" else h
        q, k, v = (split(torch.einsum("kbtd,kde->kbte", u, m[:, l])) for m in (wq, wk, wv))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), -1)
        o = (att @ v).transpose(2, 3).reshape(k_trials, batch, tokens, d)
        t = h + torch.einsum("kbtd,kde->kbte", o, wo[:, l])
        t = nrm(t) if norm == "post" else t
        v_in = nrm(t) if norm == "pre" else t
        z = F.gelu(torch.einsum("kbtd,kdm->kbtm", v_in, w1[:, l]))
        t = t + torch.einsum("kbtm,kmd->kbtd", z, w2[:, l])
        h = nrm(t) if norm == "post" else t
    return nrm(h) if norm == "pre" else h  # pre-LN: Xiong et al.'s final norm; post-LN ends with one


def losses(ws: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, heads: int, norm: str) -> torch.Tensor:
    """Per-trial mean token cross-entropy, (K,); y holds class indices (B, T)."""
    logits = forward(ws, x, heads, norm)[..., :DIGITS]
    k_trials = logits.shape[0]
    target = y.expand(k_trials, *y.shape)
    return F.cross_entropy(logits.reshape(-1, DIGITS), target.reshape(-1), reduction="none").view(k_trials, -1).mean(1)


def train_config(arrays: tuple[np.ndarray, ...], data: fg.data.Dataset, norm: str, warm: bool, args: argparse.Namespace,
                 order: np.ndarray) -> np.ndarray:
    """Held-out losses (K, evaluations) of one configuration's trials."""
    ws = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in arrays[:6]]
    opt = torch.optim.Adam(ws, lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    x_tr = torch.tensor(data.x_train, dtype=torch.float32)
    y_tr = torch.tensor(data.y_train.argmax(-1))
    x_te = torch.tensor(data.x_test, dtype=torch.float32)
    y_te = torch.tensor(data.y_test.argmax(-1))
    curve = []
    for step in range(args.steps + 1):
        if step % args.every == 0:
            with torch.no_grad():
                curve.append(losses(ws, x_te, y_te, args.heads, norm).numpy())
        if step == args.steps:
            break
        scale = min(1.0, (step + 1) / args.warmup) if warm else 1.0
        for g in opt.param_groups:
            g["lr"] = args.lr * scale
        rows = order[step]
        loss = losses(ws, x_tr[rows], y_tr[rows], args.heads, norm)
        opt.zero_grad()
        # A trial whose loss is nan keeps nan weights; the others are untouched (the sum's gradient is per trial).
        loss.sum().backward()
        opt.step()
    return np.stack(curve, axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[4, 12])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=60, help="linear warm-up steps (the warm-up configuration)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--every", type=int, default=20, help="evaluate the held-out loss every this many steps")
    p.add_argument("--threshold", type=float, default=0.5, help="held-out cross-entropy (nats) counted as trained")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/transformers/warmup")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = fg.data.sort_digits(samples=SAMPLES, tokens=args.tokens, digits=DIGITS, width=args.width,
                               test_fraction=0.2, seed=args.seed)
    order = np.random.default_rng(args.seed).integers(0, len(data.x_train), (args.steps, args.batch))
    rows, curves = [], {}
    t_all = time.perf_counter()
    for depth in args.depths:
        for norm, warm in CONFIGS:
            spec = fg.Transformer(depth=depth, tokens=args.tokens, width=args.width, heads=args.heads, norm=norm)
            arrays = fg.transformer_trial_arrays(spec, args.seed, args.trials, 1)
            t0 = time.perf_counter()
            curve = train_config(arrays, data, norm, warm, args, order)
            secs = time.perf_counter() - t0
            name = f"{norm}-LN" + (" + warm-up" if warm else "")
            curves[(depth, name)] = curve
            steps_axis = np.arange(curve.shape[1]) * args.every
            for k in range(args.trials):
                hit = np.nonzero(curve[k] <= args.threshold)[0]
                rows.append({"depth": depth, "config": name, "trial": k, "reached": int(hit.size > 0),
                             "step": int(steps_axis[hit[0]]) if hit.size else "",
                             "final_loss": float(curve[k, -1]), "min_loss": float(np.nanmin(curve[k]))
                             if np.isfinite(curve[k]).any() else float("nan"),
                             "curve": " ".join(f"{v:.4g}" for v in curve[k])})
            got = [r for r in rows if r["depth"] == depth and r["config"] == name]
            print(f"L={depth:2d} {name:18s} reached {sum(r['reached'] for r in got):2d}/{args.trials}"
                  f"  median final {np.median([r['final_loss'] for r in got]):.3f}  ({secs:.0f} s)", flush=True)
    wall = time.perf_counter() - t_all
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_md(out.with_suffix(".md"), rows, args, wall)
    plot(out.with_suffix(".png"), curves, args)
    print(f"wall {wall:.0f} s")


def summary(rows: list[dict], args: argparse.Namespace) -> list[tuple]:
    """(depth, config, reached, trials, median step of those reaching, median final loss) per configuration."""
    out = []
    for depth in args.depths:
        for norm, warm in CONFIGS:
            name = f"{norm}-LN" + (" + warm-up" if warm else "")
            got = [r for r in rows if r["depth"] == depth and r["config"] == name]
            steps = [r["step"] for r in got if r["reached"]]
            out.append((depth, name, sum(r["reached"] for r in got), len(got),
                        float(np.median(steps)) if steps else float("nan"),
                        float(np.median([r["final_loss"] for r in got]))))
    return out


def write_md(path: Path, rows: list[dict], args: argparse.Namespace, wall: float) -> None:
    """The table, the settings and the machine."""
    lines = ["# Warm-up: post-LN and pre-LN trained from fastgrad's trials (PyTorch)", "",
             f"Task `fg.data.sort_digits(samples={SAMPLES}, tokens={args.tokens}, digits={DIGITS}, width={args.width}, "
             f"seed={args.seed})` (2000 train, 500 held out); d = {args.width}, T = {args.tokens}, H = {args.heads}, "
             f"MLP 4d, GELU, LayerNorm; Adam lr {args.lr:g} (betas 0.9, 0.98), batch {args.batch}, {args.steps} steps, "
             f"no clipping; warm-up linear over {args.warmup} steps; threshold: held-out cross-entropy <= "
             f"{args.threshold} nats (uniform guess {math.log(DIGITS):.2f}), evaluated every {args.every} steps.", "",
             "| L | configuration | reached | median step to threshold | median final loss |",
             "|---:|---|---:|---:|---:|"]
    for depth, name, hit, n, step, final in summary(rows, args):
        lines.append(f"| {depth} | {name} | {hit}/{n} | {'-' if math.isnan(step) else f'{step:.0f}'} | {final:.3f} |")
    cpu = platform.processor() or platform.machine()
    lines += ["", f"Wall time {wall:.0f} s, torch {torch.__version__}, 1 thread, {cpu} "
              f"({os.cpu_count()} cores, shared).", ""]
    path.write_text("\n".join(lines))


def plot(path: Path, curves: dict, args: argparse.Namespace) -> None:
    """Held-out loss curves, one panel per depth, thin lines per trial and a thick median per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"post-LN": "tab:red", "post-LN + warm-up": "tab:blue", "pre-LN": "tab:green"}
    fig, axes = plt.subplots(1, len(args.depths), figsize=(5.5 * len(args.depths), 4), sharey=True, squeeze=False)
    for ax, depth in zip(axes[0], args.depths, strict=True):
        for name, color in colors.items():
            c = curves[(depth, name)]
            s = np.arange(c.shape[1]) * args.every
            for row in c:
                ax.plot(s, row, color=color, alpha=0.15, lw=0.7)
            ax.plot(s, np.median(c, axis=0), color=color, lw=2.2, label=f"{name} (median)")
        ax.axhline(args.threshold, color="k", ls="--", lw=0.8, label=f"threshold {args.threshold}")
        ax.axhline(math.log(DIGITS), color="gray", ls=":", lw=0.8, label="uniform guess")
        ax.set_title(f"L = {depth}: {args.trials} trials each, Adam lr {args.lr:g}")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("held-out cross-entropy (nats)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

"""Xiong et al.'s warm-up question with ``fg.train``: post-LN with and without warm-up, pre-LN, at two depths.

Each configuration trains ``--trials`` transformers at once (trial k starts from trial k of
``fg.run`` of the same spec, plus a read-out), with Adam on ``fg.data.sort_digits``, every
configuration on the same data; a trial's minibatch order is its own (seeded by the trial) and
the same in every configuration (paired). Counts the trials whose epoch-mean training
cross-entropy reaches ``--threshold``, the epochs taken, the held-out accuracy per token, and
divergences, and draws the loss curves and the first epoch's gradient per block.

    PYTHONPATH=$PWD python scripts/transformer_training.py     # writes results/transformers/training.*
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

import fastgrad as fg

CONFIGS = (("post", False), ("post", True), ("pre", False))  # (norm, warm-up)
COLORS = {"post-LN": "tab:red", "post-LN + warm-up": "tab:blue", "pre-LN": "tab:green"}


def name_of(norm: str, warm: bool) -> str:
    return f"{norm}-LN" + (" + warm-up" if warm else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[4, 12])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--samples", type=int, default=1000, help="sequences, a fifth held out")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up updates (the warm-up configuration)")
    p.add_argument("--threshold", type=float, default=0.5, help="epoch-mean training cross-entropy (nats)")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--digits", type=int, default=10)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/transformers/training")
    args = p.parse_args()
    data = fg.data.sort_digits(samples=args.samples, tokens=args.tokens, digits=args.digits, width=args.width,
                               test_fraction=0.2, seed=args.seed)
    steps = len(data.x_train) // args.batch
    if args.warmup > steps * args.epochs:
        print(f"warning: the warm-up ({args.warmup} updates) is longer than the run ({steps * args.epochs} updates): "
              f"the warm-up configuration never reaches lr {args.lr:g}", flush=True)
    rows, results = [], {}
    t_all = time.perf_counter()
    for depth in args.depths:
        for norm, warm in CONFIGS:
            spec = fg.Transformer(depth=depth, tokens=args.tokens, width=args.width, heads=args.heads, norm=norm)
            res = fg.train(spec, data, optimizer="adam", lr=args.lr, betas=(0.9, 0.98), epochs=args.epochs,
                           batch=args.batch, trials=args.trials, seed=args.seed, dtype=args.dtype,
                           warmup_steps=args.warmup if warm else 0)
            results[(depth, name_of(norm, warm))] = res
            reached = res.epochs_to(args.threshold)
            for k in range(args.trials):
                rows.append({"depth": depth, "config": name_of(norm, warm), "trial": k,
                             "reached": int(np.isfinite(reached[k])),
                             "epoch": "" if np.isnan(reached[k]) else int(reached[k]),
                             "final_loss": float(res.loss[k, -1]), "test_accuracy": float(res.test_accuracy[k, -1]),
                             "diverged": int(res.diverged[k]),
                             "loss": " ".join(f"{v:.4g}" for v in res.loss[k])})
            print(f"L={depth:2d} {name_of(norm, warm):18s} reached {int(np.isfinite(reached).sum()):2d}/{args.trials}"
                  f"  median final {np.median(res.loss[:, -1]):.3f}  ({res.seconds:.0f} s)", flush=True)
    wall = time.perf_counter() - t_all
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_md(out.with_suffix(".md"), rows, results, args, steps, wall)
    plot(out.with_suffix(".png"), results, args, steps)
    print(f"wall {wall:.0f} s")


def write_md(path: Path, rows: list[dict], results: dict, args: argparse.Namespace, steps: int, wall: float) -> None:
    """The table, the settings and the machine."""
    lines = ["# Warm-up with fg.train: post-LN and pre-LN transformers on sorting digits", "",
             f"Task `fg.data.sort_digits(samples={args.samples}, tokens={args.tokens}, digits={args.digits}, "
             f"width={args.width}, seed={args.seed})` ({args.samples - round(0.2 * args.samples)} train, "
             f"{round(0.2 * args.samples)} held out); `fg.Transformer(depth=L, tokens={args.tokens}, "
             f"width={args.width}, heads={args.heads}, norm=...)` (normal init, every sigma^2 = 1; GELU MLP of "
             f"width 4d; LayerNorm; pre-LN with the final norm) and a read-out per token; "
             f"`fg.train(optimizer='adam', lr={args.lr:g}, betas=(0.9, 0.98), batch={args.batch}, "
             f"epochs={args.epochs}, trials={args.trials}, seed={args.seed}, dtype='{args.dtype}')` "
             f"({steps} updates per epoch), warm-up `warmup_steps={args.warmup}` (linear). Threshold: the "
             f"epoch-mean training cross-entropy <= {args.threshold} nats (uniform guess "
             f"{math.log(args.digits):.2f}).", "",
             "| L | configuration | reached | median epochs to threshold | median final loss | "
             "median held-out accuracy | diverged |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for (depth, name), res in results.items():
        got = [r for r in rows if r["depth"] == depth and r["config"] == name]
        epochs = [r["epoch"] for r in got if r["reached"]]
        med = f"{np.median(epochs):.1f}" if epochs else "-"
        lines.append(f"| {depth} | {name} | {sum(r['reached'] for r in got)}/{len(got)} | {med} | "
                     f"{np.median(res.loss[:, -1]):.3f} | {np.median(res.test_accuracy[:, -1]):.3f} | "
                     f"{int((res.diverged >= 0).sum())} |")
    lines += ["", "Gradient per block in the first epoch (median over trials of the epoch's mean "
              "||dLoss/d(W_q .. W_2)||, block 1 nearest the input; last column the read-out W_r):", "",
              "| L | configuration | block 1 | block L/2 | block L | read-out |", "|---:|---|---:|---:|---:|---:|"]
    for (depth, name), res in results.items():
        g = np.median(res.grad_w[:, 0, :], axis=0)
        lines.append(f"| {depth} | {name} | {g[0]:.3g} | {g[depth // 2 - 1]:.3g} | {g[depth - 1]:.3g} | "
                     f"{g[depth]:.3g} |")
    cpu = platform.processor() or platform.machine()
    lines += ["", f"Wall time {wall:.0f} s, fastgrad {fg.__version__}, {cpu} ({os.cpu_count()} cores, shared), "
              f"`python scripts/transformer_training.py`.", ""]
    path.write_text("\n".join(lines))


def plot(path: Path, results: dict, args: argparse.Namespace, steps: int) -> None:
    """Per depth: training loss per epoch (thin: trials, thick: median); the first epoch's gradient per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(args.depths)
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, n, figsize=(5.5 * n, 7.5), squeeze=False)
    for col, depth in enumerate(args.depths):
        ax, bx = axes[0][col], axes[1][col]
        for name, color in COLORS.items():
            res = results[(depth, name)]
            e = np.arange(1, args.epochs + 1)
            for row in res.loss:
                ax.plot(e, row, color=color, alpha=0.15, lw=0.7)
            ax.plot(e, np.median(res.loss, axis=0), color=color, lw=2.2, label=f"{name} (median)")
            g = res.grad_w[:, 0, :depth]
            blocks = np.arange(1, depth + 1)
            bx.plot(blocks, np.median(g, axis=0), "o-", color=color, lw=1.8, ms=4, label=name)
            bx.fill_between(blocks, *np.percentile(g, [25, 75], axis=0), color=color, alpha=0.15)
        ax.axhline(args.threshold, color="k", ls="--", lw=0.8, label=f"threshold {args.threshold}")
        ax.axhline(math.log(args.digits), color="gray", ls=":", lw=0.8, label="uniform guess")
        ax.set_title(f"L = {depth}: {args.trials} trials each, Adam lr {args.lr:g}, {steps} steps/epoch")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        bx.set_title(f"L = {depth}: gradient per block, first epoch (median, IQR)")
        bx.set_xlabel("block l (1 = nearest the input)")
        bx.set_yscale("log")
        for axis in (ax, bx):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("training cross-entropy (nats, epoch mean)")
    axes[1][0].set_ylabel("mean ||dLoss/d(W_q..W_2)|| of block l")
    axes[0][0].legend(fontsize=8)
    axes[1][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

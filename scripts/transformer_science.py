"""Transformers at initialisation, measured against the papers: Xiong et al. 2020, Dong et al. 2021, Noci et al. 2022.

Usage: python scripts/transformer_science.py [--trials 128] [--out results/transformers]

1. Xiong et al.'s picture: ||dLoss/dW_2|| of every block at init, post-LN and pre-LN (Xavier weights,
   relu MLP, pre-LN with its closing LayerNorm), L = 6 .. 48; the exponent of the last block's
   gradient against L, with a bootstrap interval over trials (their bound: post ~ L^0, pre ~ L^-1/2).
2. Rank collapse: res(X_l) against depth for attention only, attention + residual, attention + MLP,
   the full block (no norm), and the pre-LN block; the order of convergence of pure attention
   (slope of log res_{l+1} on log res_l: 3 for Dong et al.'s cubic, doubly exponential, collapse).
3. Noci et al.: the query/key gradient against res(X) of the block's input, over the layers of
   networks without skips (where res sweeps many decades).

Writes xiong.png, rank_collapse.png, qk_gradient.png, transformers.csv and summary.md into --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402


def fit_exponent(logs: dict[int, np.ndarray], n_boot: int, seed: int) -> tuple[float, float, float]:
    """Least-squares slope of mean(log value) on log L, and its 95% bootstrap interval (trials resampled per L)."""
    depths = np.array(sorted(logs), dtype=float)
    x = np.log(depths)

    def slope(means: np.ndarray) -> float:
        return float(np.polyfit(x, means, 1)[0])

    point = slope(np.array([logs[int(d)].mean() for d in depths]))
    rng = np.random.default_rng(seed)
    boots = [slope(np.array([rng.choice(logs[int(d)], logs[int(d)].size).mean() for d in depths]))
             for _ in range(n_boot)]
    low, high = np.percentile(boots, [2.5, 97.5])
    return point, float(low), float(high)


def xiong(args: argparse.Namespace, rows: list[dict], lines: list[str]) -> dict:
    """Per-block ||dLoss/dW_2|| of post- and pre-LN transformers; the last block's exponent in L."""
    curves: dict = {}
    fits = {}
    for norm in ("post", "pre"):
        last: dict[int, np.ndarray] = {}
        last_sq: dict[int, np.ndarray] = {}
        stream: dict[int, np.ndarray] = {}
        for depth in args.depths:
            spec = fg.Transformer(depth=depth, tokens=args.tokens, width=args.width, heads=args.heads, norm=norm,
                                  init="xavier_normal", activation="relu")
            t0 = time.perf_counter()
            res = fg.run(spec, trials=args.trials, batch=args.batch, seed=args.seed)
            g = res.grad_w2
            curves[norm, depth] = np.median(g, axis=0)
            last[depth] = np.log(g[:, -1])
            last_sq[depth] = g[:, -1]
            stream[depth] = -0.5 * np.log(res.q[:, -1])  # log q_L^(-1/2): the closing norm's division
            curves[norm, depth, "q"] = float(np.exp(stream[depth].mean()))
            for l in range(depth):
                rows.append({"study": "xiong", "norm": norm, "depth": depth, "layer": l + 1,
                             "grad_w2_median": float(np.median(g[:, l])),
                             "grad_w2_rms": float(np.sqrt(np.mean(g[:, l] ** 2))),
                             "grad_x_median": float(np.median(res.grad_x[:, l])),
                             "q_median": float(np.median(res.q[:, l]))})
            print(f"xiong {norm} L={depth}: {time.perf_counter() - t0:.1f} s", flush=True)
        fits[norm] = fit_exponent(last, 2000, args.seed)
        fits[norm + "_q"] = fit_exponent(stream, 2000, args.seed)
        rms = {d: np.log(np.sqrt(np.mean(v ** 2))) for d, v in last_sq.items()}
        fits[norm + "_rms"] = float(np.polyfit(np.log(sorted(rms)), [rms[d] for d in sorted(rms)], 1)[0])
    lines += ["## Xiong et al.: the last block's ||dLoss/dW_2|| against depth", "",
              f"d = {args.width}, T = {args.tokens}, H = {args.heads}, batch {args.batch}, {args.trials} trials per "
              f"depth, L = {', '.join(map(str, args.depths))}; Xavier-normal weights, relu MLP (r = 4), mse loss.",
              "Exponent: slope of the mean log-norm on log L (95% bootstrap interval over trials); and of the "
              "root-mean-square. Last column: the exponent of q_L^(-1/2), q_L = mean(x_L^2) the last stream's "
              "second moment, which the closing norm (pre-LN's final LayerNorm, post-LN's last one) divides by.", "",
              "| norm | exponent (mean log) | 95% interval | exponent (rms) | Xiong et al. | exponent of q_L^(-1/2) |",
              "|---|---|---|---|---|---|"]
    for norm, paper in (("post", "0"), ("pre", "-1/2")):
        p, lo, hi = fits[norm]
        qp, qlo, qhi = fits[norm + "_q"]
        lines.append(f"| {norm}-LN | {p:.3f} | [{lo:.3f}, {hi:.3f}] | {fits[norm + '_rms']:.3f} | {paper} | "
                     f"{qp:.3f} [{qlo:.3f}, {qhi:.3f}] |")
    lines.append("")
    return {"curves": curves, "fits": fits}


RANK_CASES = {
    "attention only": {"skip": False, "mlp": False, "norm": "none"},
    "attention + residual": {"skip": True, "mlp": False, "norm": "none"},
    "attention + MLP": {"skip": False, "mlp": True, "norm": "none"},
    "full block (no norm)": {"skip": True, "mlp": True, "norm": "none"},
    "full block, pre-LN": {"skip": True, "mlp": True, "norm": "pre"},
}


def rank_collapse(args: argparse.Namespace, rows: list[dict], lines: list[str]) -> dict:
    """res(X_l) against depth for the four cases of Dong et al. (and the pre-LN block)."""
    out = {}
    for name, kw in RANK_CASES.items():
        spec = fg.Transformer(depth=args.rank_depth, tokens=args.tokens, width=args.width, heads=args.heads, **kw)
        res = fg.run(spec, trials=args.trials, batch=args.batch, seed=args.seed)
        out[name] = res
        for l in range(args.rank_depth):
            rows.append({"study": "rank", "case": name, "depth": args.rank_depth, "layer": l + 1,
                         "res_median": float(np.median(res.res[:, l])),
                         "res_q10": float(np.quantile(res.res[:, l], 0.1)),
                         "res_q90": float(np.quantile(res.res[:, l], 0.9)),
                         "entropy_median": float(np.median(res.entropy[:, l])),
                         "grad_wq_median": float(np.median(res.grad_wq[:, l]))})
    pure = out["attention only"].res
    # Order of convergence of pure attention: slope of log res_{l+1} on log res_l, pairs above the float64 floor.
    a, b = pure[:, :-1].ravel(), pure[:, 1:].ravel()
    keep = (b > 1e-13) & (a > 0)
    order = float(np.polyfit(np.log(a[keep]), np.log(b[keep]), 1)[0]) if keep.sum() > 2 else float("nan")
    x0 = float(np.median(pure[:, 0]))
    lines += ["## Rank collapse: res(X_l) = ||X - 1 xbar^T||_F / ||X||_F against depth", "",
              f"L = {args.rank_depth}, normal init (sigma^2 = 1 for every group), gelu MLP, residual scale 1; "
              f"median over {args.trials} trials. The input's res is about sqrt(1 - 1/T) = "
              f"{np.sqrt(1 - 1 / args.tokens):.3f}.", "",
              "| case | res(X_1) | res(X_2) | res(X_4) | res(X_L) | first layer below 1e-12 |",
              "|---|---|---|---|---|---|"]
    for name, res in out.items():
        med = np.median(res.res, axis=0)
        below = np.nonzero(med < 1e-12)[0]
        first = str(below[0] + 1) if below.size else "never"
        lines.append(f"| {name} | {med[0]:.3g} | {med[1]:.3g} | {med[3]:.3g} | {med[-1]:.3g} | {first} |")
    lines += ["", f"Pure attention: slope of log res_(l+1) on log res_l over {int(keep.sum())} layer pairs above "
                  f"1e-13: **{order:.2f}** (Dong et al.'s bound is cubic, res_(l+1) <= c res_l^3: doubly exponential "
                  f"decay; res(X_1) median {x0:.3g}).", ""]
    return {"runs": out, "order": order}


def qk_gradient(args: argparse.Namespace, rank: dict, lines: list[str]) -> dict:
    """||dLoss/dW_q|| of block l + 1 (relative to ||dLoss/dx_(l+1)||) against res(X_l), in nets without skips."""
    out = {}
    lines += ["## Noci et al.: the query/key gradient against res(X)", "",
              "Pairs (res(X_l), ||dLoss/dW_q^(l+1)|| / ||dLoss/dx_(l+1)||) over layers and trials of nets without "
              "skips, where res sweeps from ~1 to the float64 floor; slope of the log-log fit over res > 1e-10.", "",
              "| network | slope (W_q) | slope (W_k) | pairs |", "|---|---|---|---|"]
    for name in ("attention only", "attention + MLP"):
        r = rank["runs"][name]
        res_in = r.res[:, :-1].ravel()
        rel_q = (r.grad_wq[:, 1:] / r.grad_x[:, 1:]).ravel()
        rel_k = (r.grad_wk[:, 1:] / r.grad_x[:, 1:]).ravel()
        keep = (res_in > 1e-10) & (rel_q > 0) & (rel_k > 0) & np.isfinite(rel_q)
        sq = float(np.polyfit(np.log(res_in[keep]), np.log(rel_q[keep]), 1)[0])
        sk = float(np.polyfit(np.log(res_in[keep]), np.log(rel_k[keep]), 1)[0])
        out[name] = (res_in, rel_q, sq, sk)
        lines.append(f"| {name} | {sq:.2f} | {sk:.2f} | {int(keep.sum())} |")
    lines.append("")
    return out


def stream_growth(args: argparse.Namespace, rows: list[dict], lines: list[str]) -> None:
    """Which sublayer makes pre-LN's q_l grow faster than linearly: the attention alone, the MLP alone, both."""
    depth = max(args.depths)
    base = {"depth": depth, "tokens": args.tokens, "width": args.width, "heads": args.heads, "norm": "pre",
            "activation": "relu"}
    lines += ["## Pre-LN stream growth by sublayer", "",
              f"L = {depth}, normal init (every sigma^2 = 1), relu; median q_l = mean(x_l^2) over "
              f"{args.trials} trials; increment q_l - q_(l-1) at blocks 1, 2, 12, 24, L (q_0 = 1).", "",
              "| branches | q_L | increments | res(X_L) |", "|---|---|---|---|"]
    for name, kw in (("both", {}), ("attention only (mlp=False)", {"mlp": False}),
                     ("MLP only (sigma_vo2=0: the attention branch is 0)", {"sigma_vo2": 0.0})):
        res = fg.run(fg.Transformer(**base, **kw), trials=args.trials, batch=args.batch, seed=args.seed)
        q = np.median(res.q, axis=0)
        inc = np.diff(np.concatenate([[1.0], q]))
        pick = [0, 1, 11, 23, depth - 1]
        lines.append(f"| {name} | {q[-1]:.1f} | {', '.join(f'{inc[i]:.2f}' for i in pick)} | "
                     f"{np.median(res.res[:, -1]):.3f} |")
        for l in range(depth):
            rows.append({"study": "growth", "case": name, "depth": depth, "layer": l + 1, "q_median": float(q[l])})
    lines.append("")


def structured_inputs(args: argparse.Namespace, rows: list[dict], lines: list[str]) -> None:
    """Xiong et al.'s per-block profile with token embeddings and sinusoidal positions instead of i.i.d. inputs.

    The same weights (trial arrays of the L = 12 networks), given to :func:`fastgrad.transformer_backprop`
    with x = E[token] + PE: E ~ N(0, 1) per trial, a vocabulary of 10 or 1000, random tokens.
    """
    depth, tokens, d = 12, args.tokens, args.width
    rng = np.random.default_rng(args.seed + 1)
    pos, i = np.arange(tokens)[:, None], np.arange(d)[None, :]
    pe = np.where(i % 2 == 0, np.sin(pos / 10000 ** (i / d)), np.cos(pos / 10000 ** ((i - 1) / d)))
    lines += ["## Xiong et al.'s per-block profile with token and position inputs", "",
              f"L = {depth}, the same weights as above, x = E[token] + sinusoidal positions (E ~ N(0, 1), random "
              "tokens) instead of x ~ N(0, 1); median ||dLoss/dW_2|| of blocks 1, 2, 6, 12.", "",
              "| norm | inputs | block 1 | block 2 | block 6 | block 12 |", "|---|---|---|---|---|---|"]
    for norm in ("post", "pre"):
        spec = fg.Transformer(depth=depth, tokens=tokens, width=d, heads=args.heads, norm=norm,
                              init="xavier_normal", activation="relu")
        arrays = list(fg.transformer_trial_arrays(spec, args.seed, args.trials, args.batch))
        for vocab in (0, 10, 1000):
            if vocab:
                emb = rng.normal(size=(args.trials, vocab, d))
                ids = rng.integers(0, vocab, size=(args.trials, args.batch, tokens))
                arrays[6] = np.ascontiguousarray(emb[np.arange(args.trials)[:, None, None], ids] + pe)
            g = np.median(fg.transformer_backprop(*arrays, heads=args.heads, norm=norm, activation="relu").grad_w2, 0)
            what = f"tokens of a vocabulary of {vocab} + positions" if vocab else "i.i.d. N(0, 1)"
            lines.append(f"| {norm}-LN | {what} | {g[0]:.1f} | {g[1]:.1f} | {g[5]:.1f} | {g[11]:.1f} |")
            for l in range(depth):
                rows.append({"study": "inputs", "norm": norm, "vocab": vocab, "depth": depth, "layer": l + 1,
                             "grad_w2_median": float(g[l])})
    lines.append("")


def figures(args: argparse.Namespace, xi: dict, rank: dict, qk: dict, out: Path) -> None:
    """The three figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(args.depths)))
    for ax, norm in zip(axes[:2], ("post", "pre"), strict=True):
        for c, depth in zip(colours, args.depths, strict=True):
            curve = xi["curves"][norm, depth]
            ax.plot(np.arange(1, depth + 1), curve, "-o", ms=2.5, color=c, label=f"L = {depth}")
        ax.set_yscale("log")
        ax.set_xlabel("block l (1 = nearest the input)")
        ax.set_ylabel("median ||dLoss/dW_2^(l)||_F")
        ax.set_title(f"{norm}-LN: W_2 gradient of every block at init")
        ax.legend(fontsize=7, ncol=2)
    ax = axes[2]
    depths = np.array(args.depths, dtype=float)
    for norm, colour, paper in (("post", "C3", 0.0), ("pre", "C0", -0.5)):
        last = np.array([xi["curves"][norm, d][-1] for d in args.depths])
        p, lo, hi = xi["fits"][norm]
        ax.plot(depths, last, "o", color=colour, label=f"{norm}-LN: fitted L^{p:.2f} [{lo:.2f}, {hi:.2f}]")
        ref = np.exp(np.mean(np.log(last)) - paper * np.mean(np.log(depths)))
        ax.plot(depths, ref * depths ** paper, ":", color=colour, label=f"Xiong et al.: L^{paper:g}")
        fit_c = np.exp(np.mean(np.log(last)) - p * np.mean(np.log(depths)))
        ax.plot(depths, fit_c * depths ** p, "-", color=colour, lw=0.8)
        qs = np.array([xi["curves"][norm, d, "q"] for d in args.depths])  # q_L^(-1/2), scaled to the data
        ax.plot(depths, qs * np.exp(np.mean(np.log(last) - np.log(qs))), "--", color=colour, lw=1,
                label=f"{norm}-LN: prop. to q_L^(-1/2) (measured stream)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel("median ||dLoss/dW_2|| of the last block")
    ax.set_title("the last block's gradient against depth")
    ax.legend(fontsize=7)
    fig.suptitle(f"Xiong et al. (2020) at initialisation: d = {args.width}, T = {args.tokens}, H = {args.heads}, "
                 f"{args.trials} trials per depth (fastgrad)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "xiong.png", dpi=130)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for i, (name, res) in enumerate(rank["runs"].items()):
        layers = np.arange(1, res.res.shape[1] + 1)
        med = np.median(res.res, axis=0)
        axes[0].plot(layers, np.maximum(med, 1e-17), "-o", ms=3, color=f"C{i}", label=name)
        axes[0].fill_between(layers, np.maximum(np.quantile(res.res, 0.1, axis=0), 1e-17),
                             np.maximum(np.quantile(res.res, 0.9, axis=0), 1e-17), color=f"C{i}", alpha=0.15)
        axes[1].plot(layers, np.median(res.entropy, axis=0), "-o", ms=3, color=f"C{i}", label=name)
    axes[0].axhline(np.sqrt(1 - 1 / args.tokens), color="0.5", ls=":", lw=1, label="res(X_0) ~ sqrt(1 - 1/T)")
    axes[0].set_yscale("log")
    axes[0].set_ylim(1e-17, 3)
    axes[0].set_xlabel("block l")
    axes[0].set_ylabel("res(X_l) (median; band: 10-90%; 1e-17 marks exact 0)")
    axes[0].set_title(f"rank collapse (pure attention: log res_(l+1) / log res_l slope {rank['order']:.2f})")
    axes[0].legend(fontsize=7)
    axes[1].axhline(np.log(args.tokens), color="0.5", ls=":", lw=1, label="uniform attention: log T")
    axes[1].set_xlabel("block l")
    axes[1].set_ylabel("mean attention entropy (nats)")
    axes[1].set_title("attention entropy")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"Dong et al. (2021) at initialisation: d = {args.width}, T = {args.tokens}, H = {args.heads}, "
                 f"{args.trials} trials (fastgrad)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "rank_collapse.png", dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    for i, (name, (res_in, rel, sq, _)) in enumerate(qk.items()):
        keep = res_in > 0
        ax.loglog(res_in[keep], rel[keep], ".", ms=2, alpha=0.3, color=f"C{i}", label=f"{name}: slope {sq:.2f}")
    xs = np.array([1e-10, 1.0])
    ax.loglog(xs, 0.3 * xs ** 2, "k:", lw=1, label="prop. to res^2 (fits use res > 1e-10)")
    ax.set_xlabel("res(X_l) of the block's input")
    ax.set_ylabel("||dLoss/dW_q^(l+1)|| / ||dLoss/dx_(l+1)||")
    ax.set_title("Noci et al. (2022): query gradients vanish with the rank")
    ax.legend(fontsize=8, markerscale=5)
    fig.tight_layout()
    fig.savefig(out / "qk_gradient.png", dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--depths", default="6,8,12,16,24,32,48")
    parser.add_argument("--rank-depth", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/transformers")
    args = parser.parse_args()
    args.depths = [int(d) for d in args.depths.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[dict] = []
    lines = ["# Transformers at initialisation (scripts/transformer_science.py)", "",
             f"Command: `python scripts/transformer_science.py --trials {args.trials} --out {args.out}`, "
             f"fastgrad {fg.__version__}, float64, seed {args.seed}.", ""]
    xi = xiong(args, rows, lines)
    rank = rank_collapse(args, rows, lines)
    qk = qk_gradient(args, rank, lines)
    structured_inputs(args, rows, lines)
    stream_growth(args, rows, lines)
    figures(args, xi, rank, qk, out)
    lines.append(f"Total run time {time.perf_counter() - t0:.0f} s (2 shared cores).")
    pd.DataFrame(rows).to_csv(out / "transformers.csv", index=False)
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

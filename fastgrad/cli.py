"""The ``fastgrad`` command."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd

import fastgrad as fg
from fastgrad._numba import max_threads


def _demo_rows(trials: int, chain_trials: int, depth: int, width: int, batch: int) -> list[dict[str, object]]:
    """Run the classic examples; one summary row per configuration."""
    rows: list[dict[str, object]] = []

    def add(name: str, res: fg.Result, metric: str) -> None:
        values = getattr(res, metric)
        with np.errstate(all="ignore"):
            ratio = values[:, 0] / values[:, -1]
        finite = np.isfinite(ratio)
        rows.append({
            "configuration": name,
            "metric": metric,
            "depth": res.depth,
            "trials": res.trials,
            "median_first_over_last": float(np.median(ratio[finite])) if finite.any() else float("nan"),
            "fraction_vanished_1e-6": float(np.mean(ratio < 1e-6)),
            "fraction_exploded_1e6": float(np.mean(ratio > 1e6)),
            "fraction_nonfinite": float(np.mean(~np.all(np.isfinite(values), axis=1))),
            "trials_per_second": res.trials_per_second(),
        })

    add("chain sigmoid N(0,1)", fg.run(fg.Chain(depth=30), trials=chain_trials), "grad_b")
    add("chain sigmoid w=100, z=0", fg.run(fg.Chain(depth=30, init="constant", value=100.0, bias_init="centered"),
                                             trials=1000), "grad_b")
    configs: list[tuple[str, dict[str, Any]]] = [
        ("mlp sigmoid N(0,1)", dict(activation="sigmoid", init="normal", sigma_w=1.0, sigma_b=1.0)),
        ("mlp sigmoid xavier", dict(activation="sigmoid", init="xavier_normal")),
        ("mlp tanh xavier", dict(activation="tanh", init="xavier_normal")),
        ("mlp tanh orthogonal", dict(activation="tanh", init="orthogonal")),
        ("mlp relu he", dict(activation="relu", init="he_normal")),
        ("mlp relu xavier", dict(activation="relu", init="xavier_normal")),
    ]
    for name, kwargs in configs:
        add(name, fg.run(fg.MLP(depth=depth, width=width, **kwargs), trials=trials, batch=batch), "grad_w")
    rnns: list[tuple[str, dict[str, Any]]] = [
        ("rnn tanh normal g=0.9", dict(init="normal", gain=0.9)),
        ("rnn tanh orthogonal g=1", dict(init="orthogonal", gain=1.0)),
        ("rnn tanh normal g=1.5", dict(init="normal", gain=1.5)),
        ("rnn relu identity g=1", dict(init="identity", gain=1.0, activation="relu")),
    ]
    for name, kwargs in rnns:
        spec = fg.RNN(steps=100, hidden=width, inputs=16, **kwargs)
        add(name, fg.run(spec, trials=max(trials // 4, 1), batch=16), "grad_h")
    return rows


def demo(args: argparse.Namespace) -> int:
    """Run the classic vanishing/exploding examples, print and save their table."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(_demo_rows(args.trials, args.chain_trials, args.depth, args.width, args.batch))
    path = out / "summary.csv"
    table.to_csv(path, index=False)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(table.drop(columns=["trials_per_second"]).to_string(index=False))
    print(f"\nwrote {path}")
    return 0


def info(args: argparse.Namespace) -> int:
    """Print versions, threads and usable backends."""
    print(f"fastgrad {fg.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}")
    print(f"cpu: {max_threads()} threads ({platform.machine()})")
    print("cuda: not available (this version has no CUDA kernels)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastgrad`` command."""
    parser = argparse.ArgumentParser(prog="fastgrad", description=fg.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the classic vanishing/exploding gradient examples")
    p.add_argument("--out", default="fastgrad-demo", help="output folder (default ./fastgrad-demo)")
    p.add_argument("--trials", type=int, default=2000, help="MLP trials per configuration")
    p.add_argument("--chain-trials", type=int, default=200_000, help="trials of the sigmoid chain")
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.set_defaults(func=demo)
    p = sub.add_parser("info", help="versions, threads and usable backends")
    p.set_defaults(func=info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastgrad`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

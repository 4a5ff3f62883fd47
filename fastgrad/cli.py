"""The ``fastgrad`` command."""

from __future__ import annotations

import argparse
import platform
import sys

import numba
import numpy as np
import pandas as pd

import fastgrad as fg
from fastgrad._numba import max_threads


def demo(args: argparse.Namespace) -> int:
    """Run the classic vanishing/exploding experiments; print the table, write figures."""
    from fastgrad.demo import DemoSize, run_demo

    size = DemoSize(trials=args.trials, chain_trials=args.chain_trials, depth=args.depth, width=args.width,
                    batch=args.batch, rnn_steps=args.rnn_steps, phase_trials=args.phase_trials)
    table = run_demo(args.out, size, progress=not args.quiet)
    cols = ["configuration", "slope", "slope_low", "slope_high", "depth_scale", "vanished", "exploded", "nonfinite"]
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(table[cols].to_string(index=False))
    print(f"\nwrote figures, summary.md and summary.csv to {args.out}")
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
    p.add_argument("--trials", type=int, default=1000, help="MLP trials per configuration (RNN: a quarter)")
    p.add_argument("--chain-trials", type=int, default=200_000, help="trials of the sigmoid chain")
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rnn-steps", type=int, default=100)
    p.add_argument("--phase-trials", type=int, default=16, help="trials per cell of the phase diagram")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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

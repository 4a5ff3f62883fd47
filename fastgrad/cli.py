"""The ``fastgrad`` command."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd

from fastgrad import models
from fastgrad._numba import max_threads
from fastgrad.version import __version__

DESCRIPTION = ("fastgrad: statistics of vanishing and exploding gradients over thousands of random deep "
               f"networks ({', '.join(m.spec.__name__ for m in models.REGISTRY.values())}).")


def _depths(text: str) -> tuple[int, ...]:
    """``"8,32,128"`` -> (8, 32, 128); anything else is refused by argparse with this message."""
    try:
        depths = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not depths or min(depths) < 1:
        raise argparse.ArgumentTypeError(f"depths must be >= 1, got {text!r}")
    return depths


def demo(args: argparse.Namespace) -> int:
    """Run the classic vanishing/exploding experiments; print the table, write figures."""
    from fastgrad.studies.demo import DemoSize, run_demo

    size = DemoSize(trials=args.trials, chain_trials=args.chain_trials, depth=args.depth, width=args.width,
                    batch=args.batch, rnn_steps=args.rnn_steps, phase_trials=args.phase_trials,
                    train_trials=args.train_trials, train_epochs=args.train_epochs, cure_steps=args.cure_steps,
                    cure_depth=args.cure_depth, spectrum_depths=args.spectrum_depths,
                    transformer_depth=args.transformer_depth, transformer_trials=args.transformer_trials)
    table = run_demo(args.out, size, progress=not args.quiet)
    cols = ["configuration", "slope", "slope_low", "slope_high", "depth_scale", "vanished", "exploded", "nonfinite"]
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(table[cols].to_string(index=False))
    print(f"\nwrote figures, summary.md, summary.csv and training_summary.csv to {args.out}")
    return 0


def parse_values(name: str, text: str) -> list[Any]:
    """Parse a grid flag: ``a:b`` (integers a..b), ``a:b:step`` (inclusive), or ``x,y,z``.

    Numbers become int or float, ``none`` becomes None, anything else stays a string.
    A range with a non-integer end needs its step (``0.5:3`` is refused: ``0.5:3:0.1``).
    """
    def scalar(tok: str) -> Any:
        tok = tok.strip()
        if tok.lower() == "none":
            return None
        for kind in (int, float):
            try:
                return kind(tok)
            except ValueError:
                pass
        return tok

    if ":" in text and "," not in text:
        parts = [scalar(p) for p in text.split(":")]
        if len(parts) not in (2, 3) or not all(isinstance(p, (int, float)) for p in parts):
            raise ValueError(f"--{name}: expected START:STOP or START:STOP:STEP with numbers, got {text!r}")
        start, stop = parts[0], parts[1]
        if len(parts) == 2 and not all(isinstance(p, int) for p in parts):
            raise ValueError(f"--{name}: a range of non-integers needs a step: START:STOP:STEP "
                             f"(e.g. {text}:0.1), got {text!r}")
        step = parts[2] if len(parts) == 3 else 1
        if step <= 0:
            raise ValueError(f"--{name}: step must be > 0, got {step}")
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        if count < 1:
            raise ValueError(f"--{name}: empty range {text!r}")
        if all(isinstance(p, int) for p in parts):
            return list(range(start, stop + 1, step))
        return [round(start + i * step, 12) for i in range(count)]
    values = [scalar(t) for t in text.split(",") if t.strip()]
    if not values:
        raise ValueError(f"--{name}: no values in {text!r}")
    return values


def read_grid(path: str) -> dict[str, Any]:
    """A grid from a TOML or JSON file: a table of parameter -> value, list, or range string ``"a:b:step"``.

    Raises
    ------
    ValueError
        Naming the file when it cannot be read or parsed, or holds no table.
    """
    import json

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ValueError(f"--grid: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--grid: cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    toml = path.endswith(".toml")
    try:
        if toml:
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as err:  # tomllib.TOMLDecodeError, json.JSONDecodeError
        raise ValueError(f"--grid: {path} is not valid {'TOML' if toml else 'JSON'}: {err}") from None
    grid = data.get("grid", data) if isinstance(data, dict) else data
    if not isinstance(grid, dict):
        raise ValueError(f"--grid: {path} must hold a table of parameter -> values")
    # The command line's range syntax works in the file too: sigma_w = "0.5:3:0.1".
    return {k: parse_values(k, v) if isinstance(v, str) and ":" in v else v for k, v in grid.items()}


def sweep_command(args: argparse.Namespace, extra: list[str]) -> int:
    """Run a sweep whose grid comes from flags and/or a file."""
    grid: dict[str, Any] = read_grid(args.grid) if args.grid else {}
    i = 0
    while i < len(extra):
        flag = extra[i]
        if not flag.startswith("--") or i + 1 >= len(extra):
            raise ValueError(f"grid flags: expected --NAME VALUES pairs, got {' '.join(extra[i:])!r}")
        name = flag[2:].replace("-", "_")
        grid[name] = parse_values(flag[2:], extra[i + 1])
        i += 2
    from fastgrad.sweep import sweep

    report = sweep(args.model, grid, trials=args.trials, batch=args.batch, seed=args.seed, store=args.store,
                   dtype=args.dtype, backend=args.backend,
                   executor="dask" if (args.workers or args.scheduler) else "local", address=args.scheduler,
                   workers=args.workers, threads=args.threads, progress=not args.quiet, spectrum=args.spectrum,
                   save_every=args.save_every)
    return 1 if report.failed else 0


def plot_command(args: argparse.Namespace) -> int:
    """Draw the standard figures of a store."""
    from fastgrad.report import plot_store

    paths = plot_store(args.store, args.out)
    for p in paths:
        print(p)
    return 0


def warmup_command(args: argparse.Namespace) -> int:
    """Compile kernels ahead of time (or empty the kernel cache)."""
    from fastgrad import _cache

    if args.clear:
        removed = _cache.clear()
        print(f"emptied the kernel cache {_cache.cache_dir()} ({removed} files)")
        return 0
    from fastgrad.warmup import warmup

    models = parse_values("model", args.model)
    dtypes = parse_values("dtype", args.dtype)
    activations = parse_values("activation", args.activation)
    t0 = time.perf_counter()
    done = warmup(dtypes=[str(d) for d in dtypes], activations=[str(a) for a in activations],
                  models=[str(m) for m in models], processes=args.processes, progress=True)
    print(f"{len(done)} kernels ready in {time.perf_counter() - t0:.1f} s, cached in {_cache.cache_dir()}")
    return 0


def analyze_command(args: argparse.Namespace) -> int:
    """Print a store's decay table (and its edge along an axis), optionally as CSV."""
    from fastgrad.analysis import check, decay_table, edge, read

    # Every argument is checked, and everything computed, before anything is printed or written.
    if args.by is not None and not args.edge:
        raise ValueError("--by: applies only with --edge AXIS")
    if args.n_boot < 1:
        raise ValueError(f"--n-boot: must be >= 1, got {args.n_boot}")
    if args.csv and not Path(args.csv).resolve().parent.is_dir():
        raise ValueError(f"--csv: the folder of {args.csv} does not exist")
    sweep = read(args.store)
    check(sweep, metric=args.metric, x=args.edge, by=args.by, statistic=args.statistic,
          names={"x": "--edge", "by": "--by", "metric": "--metric", "statistic": "--statistic"})
    table = decay_table(sweep, metric=args.metric, n_boot=args.n_boot)
    edges = (edge(sweep, x=args.edge, by=args.by, metric=args.metric, n_boot=args.n_boot, statistic=args.statistic)
             if args.edge else None)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
        if edges is not None:
            print(f"\nwhere the decay rate crosses zero along {args.edge} (95% bootstrap interval):")
            print(edges.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def info(args: argparse.Namespace) -> int:
    """Print versions, threads and usable backends."""
    print(f"fastgrad {__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}")
    print(f"cpu: {max_threads()} threads ({platform.machine()})")
    from fastgrad import _cache

    print(f"kernel cache: {_cache.cache_dir()}")
    from fastgrad import gpu

    ok, why = gpu.status()
    print(f"cuda: {'usable' if ok else 'not usable'}: {why}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastgrad`` command."""
    parser = argparse.ArgumentParser(prog="fastgrad", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"fastgrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the classic vanishing/exploding gradient examples")
    p.add_argument("--out", default="fastgrad-demo", help="output folder (default ./fastgrad-demo)")
    p.add_argument("--trials", type=int, default=1000, help="MLP trials per configuration (RNN: a quarter)")
    p.add_argument("--chain-trials", type=int, default=200_000, help="trials of the sigmoid chain")
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rnn-steps", type=int, default=100)
    p.add_argument("--cure-steps", type=int, default=200, help="steps of the gated cells' comparison")
    p.add_argument("--cure-depth", type=int, default=100, help="depth of the residual nets' comparison")
    p.add_argument("--spectrum-depths", type=_depths, default=(8, 32, 128),
                   help="depths of the Jacobian spectra, comma-separated (default 8,32,128)")
    p.add_argument("--phase-trials", type=int, default=16, help="trials per cell of the phase diagram")
    p.add_argument("--train-trials", type=int, default=8, help="trials per training configuration")
    p.add_argument("--train-epochs", type=int, default=20)
    p.add_argument("--transformer-depth", type=int, default=12, help="blocks of the transformers (default 12)")
    p.add_argument("--transformer-trials", type=int, default=64, help="trials per transformer configuration")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=demo)
    p = sub.add_parser("sweep", help="run a grid of configurations into a resumable store",
                       description="Grid parameters are given as --NAME VALUES (e.g. --depth 1:60 "
                                   "--activation tanh,relu --sigma-w 0.5:3:0.1) and/or --grid FILE.")
    p.add_argument("--model", default="mlp", choices=list(models.REGISTRY))
    p.add_argument("--grid", help="TOML or JSON file with the grid")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--store", required=True, help="the store's folder (resumed if it exists)")
    p.add_argument("--workers", type=int, help="run on a Dask LocalCluster of this many worker processes")
    p.add_argument("--scheduler", help="run on the Dask cluster at this scheduler address")
    p.add_argument("--threads", type=int, help="threads per cell")
    p.add_argument("--save-every", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between saves of the trials finished in running cells (default 5; 0: every chunk)")
    p.add_argument("--spectrum", action="store_true",
                   help="also store each trial's Jacobian-spectrum summaries (sv_max, sv_condition, lambda_mean, "
                        "lambda_var)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=sweep_command, takes_extra=True)
    p = sub.add_parser("plot", help="draw the standard figures of a sweep's store")
    p.add_argument("store")
    p.add_argument("--out", help="output folder (default STORE/figures)")
    p.set_defaults(func=plot_command)
    p = sub.add_parser("analyze", help="a store's decay rates per configuration, and where they cross zero")
    p.add_argument("store")
    p.add_argument("--metric", help="the statistic (default the model's main one: delta, grad_h, grad_b)")
    p.add_argument("--edge", metavar="AXIS", help="also find where the rate crosses zero along this grid axis")
    p.add_argument("--by", default=None, help="one edge per value of this axis (with --edge)")
    p.add_argument("--statistic", default="log", choices=["log", "square"],
                   help="edge of the mean log-norm (default) or of the mean squared norm (what theory predicts)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.set_defaults(func=analyze_command)
    p = sub.add_parser("warmup", help="compile kernels ahead of time (they are cached on disk)",
                       description="Compile the statistics kernels for the given models, dtypes and activations, "
                                   "so that later runs in any process on this machine start at once.")
    p.add_argument("--model", default=",".join(models.REGISTRY),
                   help="comma-separated: mlp, resmlp, rnn, lstm, gru, chain (default all)")
    p.add_argument("--dtype", default="float64", help="comma-separated: float32, float64 (default float64)")
    p.add_argument("--activation", default="tanh,relu,sigmoid", help="comma-separated activation names")
    p.add_argument("--processes", type=int, default=1, help="compile in this many processes side by side")
    p.add_argument("--clear", action="store_true", help="empty the kernel cache instead")
    p.set_defaults(func=warmup_command)
    p = sub.add_parser("info", help="versions, threads and usable backends")
    p.set_defaults(func=info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastgrad`` command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if getattr(args, "takes_extra", False):
            return int(args.func(args, extra))
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args))
    except (ValueError, RuntimeError) as err:  # bad input or an unusable backend: one clear line
        print(f"fastgrad: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line (a sweep says what is saved), the shell's status
        print(f"fastgrad: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

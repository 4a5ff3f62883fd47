"""The cures for vanishing gradients measured while training: vanilla RNN, LSTM and GRU on two memory tasks.

Usage: python scripts/train_cures.py [--trials 8] [--adding-epochs 15] [--copy-epochs 30] [--copy-delay 50]
       [--tasks adding copy] [--out results/cures]

The adding problem (T = 100) and the copy task (5 symbols of 8, delay 50: 60 steps), each
cell with 64 hidden units, Adam (lr 1e-2), clipping at 1, 2000 training sequences of 2500.
Writes cures_training_summary.csv/.md and cures_training_loss_adding.png/.svg,
cures_training_loss_copy.png/.svg.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastgrad import plot  # noqa: E402
from fastgrad.data import adding, copy_task  # noqa: E402
from fastgrad.remedies import cures_markdown, run_cures_training  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=2500, help="sequences per task, 20%% held out")
    parser.add_argument("--adding-steps", type=int, default=100)
    parser.add_argument("--adding-epochs", type=int, default=15)
    parser.add_argument("--copy-symbols", type=int, default=5, help="symbols to copy")
    parser.add_argument("--copy-delay", type=int, default=50)
    parser.add_argument("--copy-epochs", type=int, default=30)
    parser.add_argument("--tasks", nargs="+", default=["adding", "copy"], choices=["adding", "copy"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="results/cures")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = {
        "adding": (adding(samples=args.samples, steps=args.adding_steps, seed=0), args.adding_epochs),
        "copy": (copy_task(samples=args.samples, steps=args.copy_symbols, symbols=8, delay=args.copy_delay, seed=0),
                 args.copy_epochs),
    }
    tasks = {key: tasks[key] for key in args.tasks}
    # Compile (or load) the three training kernels first, so that ``seconds`` is training time only.
    run_cures_training(copy_task(samples=40, steps=1, delay=1), hidden=args.hidden, epochs=1, trials=1, batch=8)
    tables = []
    for key, (data, epochs) in tasks.items():
        table, results = run_cures_training(data, hidden=args.hidden, epochs=epochs, trials=args.trials, lr=args.lr,
                                            clip_norm=args.clip, threads=args.threads)
        table.insert(1, "epochs", epochs)
        tables.append(table)
        steps = data.x_train.shape[1]
        title = (f"{data.name} ({steps} steps): hidden {args.hidden}, Adam lr {args.lr:g}, clip {args.clip:g}, "
                 f"{args.trials} trials")
        plot.save(plot.training_curves(results, title), out / f"cures_training_loss_{key}")
        print(table.to_string(index=False), flush=True)
    summary = pd.concat(tables, ignore_index=True)
    summary.to_csv(out / "cures_training_summary.csv", index=False)
    settings = (f"{args.trials} trials per cell, hidden {args.hidden}, orthogonal recurrent blocks (gain 1), "
                f"Adam lr {args.lr:g}, global-norm clipping {args.clip:g}, batch 32, "
                f"{round(0.8 * args.samples)} training sequences of {args.samples} per task; float64.")
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/train_cures.py", *sys.argv[1:]])
    (out / "cures_training_summary.md").write_text(cures_markdown(tables, command, settings))


if __name__ == "__main__":
    main()

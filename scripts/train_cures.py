"""The cures for vanishing gradients measured while training: vanilla RNN, LSTM and GRU on two memory tasks,
plain and residual deep MLPs on the digits.

Usage: python scripts/train_cures.py [--trials 8] [--adding-epochs 15] [--copy-epochs 30] [--copy-delay 50]
       [--tasks adding copy digits-depth50] [--out results/cures]

The adding problem (T = 100) and the copy task (5 symbols of 8, delay 50: 60 steps), each
cell with 64 hidden units, Adam (lr 1e-2), clipping at 1, 2000 training sequences of 2500.
Writes cures_training_summary.csv/.md and cures_training_loss_adding.png/.svg,
cures_training_loss_copy.png/.svg.

``digits-depth50`` (not run by default): plain tanh MLPs against residual ones (a = 1/sqrt(L),
with and without pre-LayerNorm) of depth ``--depth`` (50) and width 64 on the 8x8 digits, Adam
(``--depth-lr`` 1e-3), ``--depth-trials`` (16) trials, ``--depth-epochs`` (30) epochs
(``fastgrad.studies.remedies.run_depth_training``). Writes cures_depth50_summary.csv/.md and
cures_depth50_loss.png/.svg.
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
from fastgrad.data import adding, copy_task, digits  # noqa: E402
from fastgrad.stats import markdown_table  # noqa: E402
from fastgrad.studies.remedies import cures_markdown, run_cures_training, run_depth_training  # noqa: E402


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
    parser.add_argument("--tasks", nargs="+", default=["adding", "copy"],
                        choices=["adding", "copy", "digits-depth50"])
    parser.add_argument("--depth", type=int, default=50, help="digits-depth50: weight layers")
    parser.add_argument("--depth-width", type=int, default=64)
    parser.add_argument("--depth-trials", type=int, default=16)
    parser.add_argument("--depth-epochs", type=int, default=30)
    parser.add_argument("--depth-lr", type=float, default=1e-3, help="digits-depth50: Adam's learning rate")
    parser.add_argument("--depth-threshold", type=float, default=0.1, help="digits-depth50: training-loss level")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="results/cures")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/train_cures.py", *sys.argv[1:]])
    if "digits-depth50" in args.tasks:
        depth_experiment(args, out, command)
    if not {"adding", "copy"} & set(args.tasks):
        return
    tasks = {
        "adding": (adding(samples=args.samples, steps=args.adding_steps, seed=0), args.adding_epochs),
        "copy": (copy_task(samples=args.samples, steps=args.copy_symbols, symbols=8, delay=args.copy_delay, seed=0),
                 args.copy_epochs),
    }
    tasks = {key: tasks[key] for key in args.tasks if key in tasks}
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
    (out / "cures_training_summary.md").write_text(cures_markdown(tables, command, settings))


def depth_experiment(args: argparse.Namespace, out: Path, command: str) -> None:
    """Plain against residual tanh MLPs at depth ``args.depth`` on the digits: table, Markdown and loss figure."""
    data = digits()
    table, results = run_depth_training(data, depth=args.depth, width=args.depth_width, epochs=args.depth_epochs,
                                        trials=args.depth_trials, optimizer="adam", lr=args.depth_lr,
                                        threshold=args.depth_threshold, threads=args.threads)
    stem = f"cures_depth{args.depth}"
    table.to_csv(out / f"{stem}_summary.csv", index=False)
    title = (f"digits, depth {args.depth}, width {args.depth_width}, tanh: Adam lr {args.depth_lr:g}, batch 32, "
             f"{args.depth_trials} trials")
    plot.save(plot.training_curves(results, title), out / f"{stem}_loss")
    print(table.to_string(index=False), flush=True)
    lines = [f"## Plain and residual MLPs of depth {args.depth} on the digits", "",
             f"{args.depth_trials} trials per net, depth {args.depth} (the input layer, {args.depth - 2} hidden "
             f"layers or residual blocks, a linear read-out), width {args.depth_width}, tanh; Adam lr "
             f"{args.depth_lr:g} (betas 0.9, 0.999), batch 32, {args.depth_epochs} epochs, no clipping or L2, "
             f"{len(data.x_train)} training images and {len(data.x_test)} held out; float64. `reached`: the "
             f"fraction of trials whose training loss (an epoch's mean minibatch cross-entropy) falls below "
             f"{args.depth_threshold:g}; `epochs_to_threshold` the median first such epoch over those trials; "
             "losses and accuracies are medians over trials at the last epoch; `grad_w_first_over_last` the "
             "median first-epoch ||dL/dW_1|| / ||dL/dW_L||.", "",
             *markdown_table(table), "", f"Command: `{command}`", ""]
    (out / f"{stem}_summary.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()

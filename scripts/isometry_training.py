"""The training link of dynamical isometry: do nets whose initial Jacobian is better conditioned learn faster?

Usage: python scripts/isometry_training.py [--depth 32] [--width 64] [--sigma-b2 1e-4] [--trials 32]
       [--epochs 20] [--lr 0.05] [--at-epoch 3] [--threshold 0.5] [--out results/spectra]

Depth-32 tanh MLPs at the edge of chaos (sigma_w^2 = theory.critical_sigma_w2("tanh", sigma_b^2)),
Gaussian against orthogonal weights (Pennington, Schoenholz & Ganguli 2017), trained by plain SGD
on the 8x8 digits; each trial's initial spectrum from fastgrad.spectrum with training's own draws
(``fastgrad.studies.remedies.run_isometry_training``). Writes training_link.csv (one row per trial),
training_link.md (per init, the rank correlations, the command), training_link.png/.svg (spread
against speed) and training_link_loss.png/.svg (loss curves).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastgrad import plot  # noqa: E402
from fastgrad.data import digits  # noqa: E402
from fastgrad.stats import markdown_table  # noqa: E402
from fastgrad.studies.remedies import run_isometry_training  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--sigma-b2", type=float, default=1e-4)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05, help="plain SGD's learning rate, both inits")
    parser.add_argument("--at-epoch", type=int, default=3, help="speed: the training loss after this epoch")
    parser.add_argument("--threshold", type=float, default=0.5, help="speed: the first epoch with loss below it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="results/spectra")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = digits()
    per_trial, summary, correlations, results = run_isometry_training(
        data, depth=args.depth, width=args.width, sigma_b2=args.sigma_b2, trials=args.trials, epochs=args.epochs,
        lr=args.lr, at_epoch=args.at_epoch, threshold=args.threshold, seed=args.seed, threads=args.threads)
    per_trial.to_csv(out / "training_link.csv", index=False)
    print(summary.to_string(index=False), correlations.to_string(index=False), sep="\n\n", flush=True)
    net = (f"depth {args.depth}, width {args.width}, tanh, sigma_b^2 {args.sigma_b2:g}, "
           f"sigma_w^2 {summary.sigma_w2.iloc[0]:.4g}; SGD lr {args.lr:g}, batch 32")
    setting = f"{net}, {args.trials} trials"
    speed = f"training loss after epoch {args.at_epoch} (lower: faster)"
    plot.save(plot.isometry_scatter(per_trial, correlations, y_label=speed,
                                    title=f"digits: initial spectral spread against learning speed\n({setting})"),
              out / "training_link")
    plot.save(plot.training_curves(results, f"digits, {setting}"), out / "training_link_loss")
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/isometry_training.py", *sys.argv[1:]])
    lines = ["## The training link of dynamical isometry", "",
             f"{args.trials} trials per init, {net}, {args.epochs} epochs, {len(data.x_train)} training images "
             f"and {len(data.x_test)} held out; float64. Spread: var(lambda) / E[lambda]^2 over a trial's lambda = "
             "s^2, the squared singular values of its initial J at an N(0, 1) input (`fg.spectrum`, training's own "
             f"draws): the whole net's J ({data.features} x {data.outputs}) and its body's (the first L - 1 layers, "
             f"{data.features} x {args.width}). "
             f"Speed: the training loss after epoch {args.at_epoch} (`loss_at_epoch`), and the first epoch with "
             f"training loss below {args.threshold:g} (`epochs_to_threshold`, median over the `reached` trials). "
             "Medians over trials.", "", *markdown_table(summary), "",
             "Spearman's rank correlation between spread and slowness (a trial that never reaches the threshold "
             "ranks slowest), over all trials and within each init, with two-sided p-values.", "",
             *markdown_table(correlations), "",
             f"Command: `{command}`", ""]
    (out / "training_link.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()

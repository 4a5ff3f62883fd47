"""The remedies for unstable gradients, measured during training, at full size.

Usage: python scripts/train_remedies.py [--trials 32] [--epochs 40] [--out results/remedies]

Writes training_summary.csv/.md, training_loss.png/.svg, learning_speed.png/.svg, and for the
RNN clipping experiment (adding problem) rnn_training_summary.csv and rnn_training_loss.png/.svg.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastgrad import plot  # noqa: E402
from fastgrad.data import adding, digits, teacher  # noqa: E402
from fastgrad.studies.demo import training_markdown  # noqa: E402
from fastgrad.studies.remedies import (  # noqa: E402
    mean_predictor_label,
    mean_predictor_loss,
    run_remedies,
    run_rnn_remedies,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--data", default="digits", choices=["digits", "teacher"])
    parser.add_argument("--out", default="results/remedies")
    parser.add_argument("--rnn-steps", type=int, default=30)
    args = parser.parse_args()
    data = digits() if args.data == "digits" else teacher("classification", samples=2000, features=64, outputs=10)
    table, results = run_remedies(data, epochs=args.epochs, trials=args.trials)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "training_summary.csv", index=False)
    (out / "training_summary.md").write_text(training_markdown(table).lstrip("\n"))
    setting = f"MLP depth 5, width 30, SGD lr 0.1, batch 32, {args.trials} trials per configuration"
    scale = {"reference": mean_predictor_loss(data), "reference_label": mean_predictor_label(data)}
    plot.save(plot.training_curves(results, f"The remedies on {data.name}: {setting}", **scale), out / "training_loss")
    plot.save(plot.learning_speed(results, title=f"How fast each layer learns on {data.name}: ||dC/db_l|| per epoch, "
                                                 f"median over trials; {setting}"), out / "learning_speed")
    print(table.to_string(index=False))
    rnn_data = adding(samples=2000, steps=args.rnn_steps)
    rnn_table, rnn_results = run_rnn_remedies(rnn_data, epochs=args.epochs // 2, trials=args.trials)
    rnn_table.to_csv(out / "rnn_training_summary.csv", index=False)
    title = (f"Vanilla RNNs, hidden 32, on the adding problem ({args.rnn_steps} steps): exploding gradients, "
             f"clipping and the IRNN; SGD lr 0.1, {args.trials} trials per configuration")
    plot.save(plot.training_curves(rnn_results, title, reference=mean_predictor_loss(rnn_data),
                                   reference_label=mean_predictor_label(rnn_data)), out / "rnn_training_loss")
    print(rnn_table.to_string(index=False))


if __name__ == "__main__":
    main()

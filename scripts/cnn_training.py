"""Deep tanh CNNs trained on the 8x8 digits: delta-orthogonal against Gaussian, at and off the critical point.

Xiao et al. (2018): at depth, delta-orthogonal CNNs at the critical point train, Gaussian ones off the
critical line do not. Here: 2-D 8 x 8 digits (scikit-learn's), 3 x 3 circular convolutions of
``--channels`` channels, ``--depth`` layers, global average pooling and a linear read-out, softmax
cross-entropy, Adam (or SGD with momentum, ``--optimizer momentum``); pixels standardised with the
training set's mean and standard deviation (``--raw`` keeps them in [0, 1]); ``--trials`` trials of each of:
delta-orthogonal at chi_1 = 1,
Gaussian at chi_1 = 1, Gaussian at sigma_w^2 = 2 (chaotic side, chi_1 > 1). Reports the fraction
of trials whose held-out accuracy reaches ``--threshold`` (and ``--low-threshold``) and the epochs taken.

usage: PYTHONPATH=. python scripts/cnn_training.py [--depth 200] [--trials 16] [--epochs 10] [--name training]
Writes results/cnn/NAME.{csv,md,png} and NAME_curves.csv (every trial's loss and held-out accuracy per epoch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import fastgrad as fg  # noqa: E402
from fastgrad import theory  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "results" / "cnn"


def main() -> None:
    """Train the three nets and write the table and the figure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=200)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--samples", type=int, default=512, help="training images used (of 1438)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=("adam", "momentum"), default="adam")
    p.add_argument("--raw", action="store_true", help="keep pixels in [0, 1] (default: standardise)")
    p.add_argument("--low-threshold", type=float, default=0.25)
    p.add_argument("--name", default="training")
    p.add_argument("--sigma-b2", type=float, default=1e-4)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    full = fg.data.digits(seed=0)
    x_train, x_test = full.x_train, full.x_test
    if not a.raw:
        mean, std = x_train.mean(), x_train.std()
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    data = fg.data.Dataset(x_train[: a.samples], full.y_train[: a.samples], x_test, full.y_test, full.task, full.name)
    w2 = theory.critical_sigma_w2("tanh", a.sigma_b2)
    nets = {"delta-orthogonal, critical": ("delta_orthogonal", w2),
            "Gaussian, critical": ("scaled_normal", w2),
            "Gaussian, sigma_w^2 = 2": ("scaled_normal", 2.0)}
    rows, curves, long = [], {}, []
    extra = {"momentum": 0.9} if a.optimizer == "momentum" else {}
    for name, (init, sw2) in nets.items():
        spec = fg.CNN(depth=a.depth, channels=a.channels, size=8, ndim=2, init=init, sigma_w2=sw2,
                      sigma_b2=a.sigma_b2)
        t0 = time.perf_counter()
        res = fg.train(spec, data, optimizer=a.optimizer, lr=a.lr, epochs=a.epochs, batch=32, trials=a.trials,
                       seed=0, threads=a.threads, **extra)
        wall = time.perf_counter() - t0
        acc = res.test_accuracy
        curves[name] = acc
        for t in range(a.trials):
            for e in range(a.epochs):
                long.append({"net": name, "trial": t, "epoch": e + 1, "loss": res.loss[t, e],
                             "test_accuracy": acc[t, e]})
        best = np.nanmax(np.nan_to_num(acc, nan=0.0), axis=1)
        reached = best >= a.threshold
        low = best >= a.low_threshold
        first = [int(np.argmax(r >= a.threshold)) + 1 for r, ok in zip(acc, reached, strict=True) if ok]
        rows.append({"net": name, "sigma_w2": sw2, "chi1": theory.chi1("tanh", sw2, a.sigma_b2),
                     "trials": a.trials, "reached": float(reached.mean()), "reached_low": float(low.mean()),
                     "best_test_accuracy_median": float(np.median(best)), "best_test_accuracy_max": float(best.max()),
                     "final_loss_median": float(np.nanmedian(res.loss[:, -1])),
                     "epochs_to_threshold_median": float(np.median(first)) if first else np.nan,
                     "final_test_accuracy_median": float(np.nanmedian(acc[:, -1])),
                     "final_test_accuracy_q10": float(np.nanquantile(acc[:, -1], 0.1)),
                     "final_test_accuracy_q90": float(np.nanquantile(acc[:, -1], 0.9)),
                     "diverged": float(np.mean(res.diverged >= 0)),
                     "grad_w_first_over_last_epoch1_median": float(np.median(res.grad_w[:, 0, 0]
                                                                             / res.grad_w[:, 0, a.depth - 1])),
                     "seconds": wall})
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(a.out / f"{a.name}.csv", index=False)
    pd.DataFrame(long).to_csv(a.out / f"{a.name}_curves.csv", index=False)
    steps = a.epochs * -(-min(a.samples, full.x_train.shape[0]) // 32)
    opt = "Adam" if a.optimizer == "adam" else "SGD momentum 0.9"
    lines = [f"Depth {a.depth}, c = {a.channels}, 8x8 digits ({min(a.samples, full.x_train.shape[0])} training images, "
             f"{full.x_test.shape[0]} held out, pixels {'in [0, 1]' if a.raw else 'standardised'}), {opt}, lr {a.lr}, "
             f"batch 32, {a.epochs} epochs ({steps} steps), sigma_b^2 = {a.sigma_b2}", "",
             f"| net | sigma_w^2 | chi_1 | trials | reach {a.threshold:.0%} held-out | median epochs to it | "
             f"reach {a.low_threshold:.0%} | best held-out accuracy: median, max | "
             "final held-out accuracy: median [10%, 90%] | final training loss (median) | "
             "epoch-1 ||dL/dW_1|| / ||dL/dW_L|| | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['sigma_w2']:.4f} | {r['chi1']:.3f} | {r['trials']} | {r['reached']:.0%} | "
                     f"{r['epochs_to_threshold_median']:.0f} | {r['reached_low']:.0%} | "
                     f"{r['best_test_accuracy_median']:.3f}, {r['best_test_accuracy_max']:.3f} | "
                     f"{r['final_test_accuracy_median']:.3f} "
                     f"[{r['final_test_accuracy_q10']:.3f}, {r['final_test_accuracy_q90']:.3f}] | "
                     f"{r['final_loss_median']:.3f} | "
                     f"{r['grad_w_first_over_last_epoch1_median']:.3g} | {r['seconds']:.0f} |")
    (a.out / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = np.arange(1, a.epochs + 1)
    for (name, acc), color in zip(curves.items(), ("C0", "C3", "C2"), strict=True):
        lo, mid, hi = np.nanquantile(acc, [0.1, 0.5, 0.9], axis=0)
        ax.plot(epochs, mid, color=color, label=name)
        ax.fill_between(epochs, lo, hi, color=color, alpha=0.2)
    ax.axhline(a.threshold, color="grey", lw=0.5, ls="--")
    ax.axhline(a.low_threshold, color="grey", lw=0.5, ls=":")
    ax.axhline(0.1, color="k", lw=0.5, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{a.depth}-layer tanh CNNs (c = {a.channels}) on 8x8 digits, {opt} lr {a.lr}, {steps} steps:\n"
                 f"median and 10-90% of {a.trials} trials each", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out / f"{a.name}.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

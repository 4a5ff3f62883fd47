"""Deep tanh CNNs trained on the 8x8 digits: delta-orthogonal against Gaussian, at and off the critical point.

Xiao et al. (2018): at depth, delta-orthogonal CNNs at the critical point train, Gaussian ones off the
critical line do not. Here: 2-D 8 x 8 digits (scikit-learn's), 3 x 3 circular convolutions of
``--channels`` channels, ``--depth`` layers, global average pooling and a linear read-out, softmax
cross-entropy, SGD with momentum; ``--trials`` trials of each of: delta-orthogonal at chi_1 = 1,
Gaussian at chi_1 = 1, Gaussian at sigma_w^2 = 2 (chaotic side, chi_1 > 1). Reports the fraction
of trials whose held-out accuracy reaches ``--threshold`` and the epochs taken.

usage: PYTHONPATH=. python scripts/cnn_training.py [--depth 200] [--trials 16] [--epochs 10]
Writes results/cnn/training.{csv,md,png}.
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
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--sigma-b2", type=float, default=1e-4)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    full = fg.data.digits(seed=0)
    data = fg.data.Dataset(full.x_train[: a.samples], full.y_train[: a.samples], full.x_test, full.y_test,
                           full.task, full.name)
    w2 = theory.critical_sigma_w2("tanh", a.sigma_b2)
    nets = {"delta-orthogonal, critical": ("delta_orthogonal", w2),
            "Gaussian, critical": ("scaled_normal", w2),
            "Gaussian, sigma_w^2 = 2": ("scaled_normal", 2.0)}
    rows, curves = [], {}
    for name, (init, sw2) in nets.items():
        spec = fg.CNN(depth=a.depth, channels=a.channels, size=8, ndim=2, init=init, sigma_w2=sw2,
                      sigma_b2=a.sigma_b2)
        t0 = time.perf_counter()
        res = fg.train(spec, data, optimizer="momentum", lr=a.lr, momentum=0.9, epochs=a.epochs, batch=32,
                       trials=a.trials, seed=0, threads=a.threads)
        wall = time.perf_counter() - t0
        acc = res.test_accuracy
        curves[name] = acc
        reached = np.nanmax(np.nan_to_num(acc, nan=0.0), axis=1) >= a.threshold
        first = [int(np.argmax(r >= a.threshold)) + 1 for r, ok in zip(acc, reached, strict=True) if ok]
        rows.append({"net": name, "sigma_w2": sw2, "chi1": theory.chi1("tanh", sw2, a.sigma_b2),
                     "trials": a.trials, "reached": float(reached.mean()),
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
    frame.to_csv(a.out / "training.csv", index=False)
    lines = [f"Depth {a.depth}, c = {a.channels}, 8x8 digits ({a.samples} training images, {full.x_test.shape[0]} "
             f"held out), SGD momentum 0.9, lr {a.lr}, batch 32, {a.epochs} epochs, sigma_b^2 = {a.sigma_b2}", "",
             f"| net | sigma_w^2 | chi_1 | trials | reach {a.threshold:.0%} held-out | median epochs to it | "
             "final held-out accuracy: median [10%, 90%] | epoch-1 ||dL/dW_1|| / ||dL/dW_L|| | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['sigma_w2']:.4f} | {r['chi1']:.3f} | {r['trials']} | {r['reached']:.0%} | "
                     f"{r['epochs_to_threshold_median']:.0f} | {r['final_test_accuracy_median']:.3f} "
                     f"[{r['final_test_accuracy_q10']:.3f}, {r['final_test_accuracy_q90']:.3f}] | "
                     f"{r['grad_w_first_over_last_epoch1_median']:.3g} | {r['seconds']:.0f} |")
    (a.out / "training.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = np.arange(1, a.epochs + 1)
    for (name, acc), color in zip(curves.items(), ("C0", "C3", "C2"), strict=True):
        lo, mid, hi = np.nanquantile(acc, [0.1, 0.5, 0.9], axis=0)
        ax.plot(epochs, mid, color=color, label=name)
        ax.fill_between(epochs, lo, hi, color=color, alpha=0.2)
    ax.axhline(a.threshold, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{a.depth}-layer tanh CNNs on 8x8 digits: median and 10-90% of {a.trials} trials", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out / "training.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

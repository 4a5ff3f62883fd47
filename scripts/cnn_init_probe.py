"""Linear probe of an untrained deep tanh CNN: how much of the 8x8 digits its pooled features still carry.

For delta-orthogonal (chi_1 = 1), Gaussian (chi_1 = 1) and Gaussian (sigma_w^2 = 2) CNNs of 8 channels,
3 x 3 circular convolutions, sigma_b^2 = 1e-4, at depths 3, 50 and 200: a logistic regression fitted on
the global-average-pooled features of the 1438 training digits (pixels standardised), its held-out
accuracy, the mean square activation q_L, and the between-image spread of the features over their mean.
An independent PyTorch forward pass (float64), three draws each.

usage: PYTHONPATH=. python scripts/cnn_init_probe.py    (about 2 minutes of CPU)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

import fastgrad as fg
from fastgrad import theory

C, SIGMA_B2 = 8, 1e-4


def draw(depth: int, init: str, sigma_w2: float, rng: np.random.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Weights (c_out, c_in, 3, 3) and biases of one CNN: delta-orthogonal or scaled Gaussian."""
    layers = []
    for layer in range(depth):
        c_in = 1 if layer == 0 else C
        if init == "delta":
            q, r = np.linalg.qr(rng.normal(size=(C, C)))
            q = q * np.sign(np.diag(r))
            w = np.zeros((C, c_in, 3, 3))
            w[:, :, 1, 1] = np.sqrt(sigma_w2) * q[:, :c_in]
        else:
            w = rng.normal(size=(C, c_in, 3, 3)) * np.sqrt(sigma_w2 / (9 * c_in))
        layers.append((torch.tensor(w), torch.tensor(rng.normal(size=C) * np.sqrt(SIGMA_B2))))
    return layers


def pooled(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> tuple[np.ndarray, float]:
    """Global-average-pooled features (N, C) of the last layer and its mean square activation."""
    h = x
    for w, b in layers:
        h = torch.tanh(F.conv2d(F.pad(h, (1, 1, 1, 1), mode="circular"), w, b))
    return h.mean(dim=(2, 3)).numpy(), float((h**2).mean())


def main() -> None:
    """Print, per depth and net, q_L, the features' spread over their mean, and the probe's accuracy."""
    full = fg.data.digits(seed=0)
    mean, std = full.x_train.mean(), full.x_train.std()
    x_train = torch.tensor(((full.x_train - mean) / std).reshape(-1, 1, 8, 8))
    x_test = torch.tensor(((full.x_test - mean) / std).reshape(-1, 1, 8, 8))
    y_train, y_test = full.y_train.argmax(1), full.y_test.argmax(1)
    critical = theory.critical_sigma_w2("tanh", SIGMA_B2)
    nets = (("delta-orthogonal, critical", "delta", critical), ("Gaussian, critical", "gauss", critical),
            ("Gaussian, sigma_w^2 = 2", "gauss", 2.0))
    for depth in (3, 50, 200):
        for name, init, sigma_w2 in nets:
            accs, spread, qs = [], [], []
            for t in range(3):
                layers = draw(depth, init, sigma_w2, np.random.default_rng(t))
                f_train, q = pooled(layers, x_train)
                f_test, _ = pooled(layers, x_test)
                mu, sd = f_train.mean(0), f_train.std(0) + 1e-300
                clf = LogisticRegression(max_iter=2000).fit((f_train - mu) / sd, y_train)
                accs.append(clf.score((f_test - mu) / sd, y_test))
                spread.append(np.linalg.norm(f_train - mu) / np.sqrt(len(f_train)) / np.linalg.norm(mu))
                qs.append(q)
            print(f"depth {depth:3d} {name}: q_L = {np.mean(qs):.3g}, between-image spread / |mean feature| = "
                  f"{np.median(spread):.3g}, linear-probe held-out accuracy = {np.round(accs, 3)}", flush=True)


if __name__ == "__main__":
    main()

"""What one MLP layer's products and passes cost, and the alternatives tried for them.

Usage: python scripts/profile_layer.py [--batch 32] [--width 64] [--repeats 5]

Each operation runs 20,000 times inside one compiled loop (no Python in between), on one core,
with the W-mlp layer's shapes: the three products of a layer (forward ``h W``, ``h^T delta`` for
dLoss/dW, ``delta W^T`` for dLoss/dh), the elementwise passes around them, and two alternatives:

- ``delta W^T`` through an explicit transposed copy of W (BLAS's NN instead of its NT kernel);
- the Gram form of ||h^T delta||_F, sqrt(<h h^T, delta delta^T>) (``norms.product_norm``: two B x B
  products and a few passes), which has fewer flops than h^T delta when the batch is below half the width.

Prints microseconds per call (median over the repeats) for float64 and float32; rerun with
``--batch 8`` to see the Gram form where it has the fewer flops.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fastgrad._numba import jit  # noqa: E402
from fastgrad.kernels.norms import product_norm, sum_squares  # noqa: E402

REPS = 20_000


@jit
def _forward(h: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    for _ in range(REPS):
        np.dot(h, w, out)


@jit
def _grad_w(h: np.ndarray, d: np.ndarray, dw: np.ndarray) -> float:
    acc = 0.0
    for _ in range(REPS):
        np.dot(h.T, d, dw)
        acc += sum_squares(dw.reshape(dw.size))
    return acc


@jit
def _gram(h: np.ndarray, d: np.ndarray, scratch_a: np.ndarray, scratch_b: np.ndarray) -> float:
    acc = 0.0
    for _ in range(REPS):
        acc += product_norm(h, d, sum_squares(d.reshape(d.size)), scratch_a.reshape(scratch_a.size), scratch_b)
    return acc


@jit
def _back_nt(d: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    for _ in range(REPS):
        np.dot(d, w.T, out)


@jit
def _back_copy(d: np.ndarray, w: np.ndarray, wt: np.ndarray, out: np.ndarray) -> None:
    for _ in range(REPS):
        wt[:, :] = w.T
        np.dot(d, wt, out)


@jit
def _passes(z: np.ndarray, b: np.ndarray, dphi: np.ndarray, colsum: np.ndarray) -> float:
    # Forward: bias add, mean square; backward: delta = dh * phi', its norm, the column sums and their norm.
    acc = 0.0
    flat = z.reshape(z.size)
    dflat = dphi.reshape(dphi.size)
    for _ in range(REPS):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                z[i, j] += b[j]
        acc += sum_squares(flat)
        for i in range(flat.size):
            flat[i] *= dflat[i]
        acc += sum_squares(flat)
        colsum[:] = 0.0
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                colsum[j] += z[i, j]
        acc += sum_squares(colsum)
    return acc


def _time_ops(dt: type, batch: int, n: int, repeats: int) -> tuple[dict[str, float], float]:
    """Median microseconds per call of each operation in ``dt``, and the Gram form's relative difference."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((batch, n)).astype(dt)
    d = rng.standard_normal((batch, n)).astype(dt)
    w = rng.standard_normal((n, n)).astype(dt)
    out, wt, dw = np.empty((batch, n), dt), np.empty((n, n), dt), np.empty((n, n), dt)
    scratch = np.empty(n * n, dt)
    ones = np.ones((batch, n), dt)
    ops: dict[str, Callable[[], object]] = {
        "h W (forward)": lambda: _forward(h, w, out),
        "h^T delta and its norm (dLoss/dW)": lambda: _grad_w(h, d, dw),
        "Gram form (norms.product_norm)": lambda: _gram(h, d, out, scratch),
        "delta W^T (dLoss/dh, BLAS NT)": lambda: _back_nt(d, w, out),
        "delta W^T through a transposed copy": lambda: _back_copy(d, w, wt, out),
        "elementwise passes (bias, q, delta, norms, column sums)":
            lambda: _passes(out, np.zeros(n, dt), ones, np.empty(n)),
    }
    for fn in ops.values():
        fn()  # compile
    times: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(repeats):
        for name, fn in ops.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / REPS * 1e6)
    exact = float(np.linalg.norm(h.astype(np.float64).T @ d.astype(np.float64)))
    gram = _gram(h, d, out, scratch) / REPS
    return {k: statistics.median(v) for k, v in times.items()}, abs(gram - exact) / exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"one layer, batch {args.batch}, width {args.width}, one core; microseconds per call "
          f"(median of {args.repeats})\n")
    f64, err64 = _time_ops(np.float64, args.batch, args.width, args.repeats)
    f32, err32 = _time_ops(np.float32, args.batch, args.width, args.repeats)
    print("| operation | float64 | float32 |\n|---|---|---|")
    for name in f64:
        print(f"| {name} | {f64[name]:.2f} | {f32[name]:.2f} |")
    print(f"\nGram form, relative difference from the float64 norm of the same factors: "
          f"{err64:.1e} (float64), {err32:.1e} (float32)")


if __name__ == "__main__":
    main()

"""The standard workloads, shared by the pytest-benchmark suite and scripts/bench_engine.py."""

from __future__ import annotations

import time

import numba
import numpy as np

import fastgrad as fg
from fastgrad.executor import threads_context

# W-mlp: width 64, depth 50, batch 32, tanh, W ~ N(0, 1/64), b ~ N(0, 0.1^2), mse, 512 trials.
W_MLP = fg.MLP(depth=50, width=64, activation="tanh", init="scaled_normal", sigma_w=1.0, sigma_b=0.1)
W_MLP_TRIALS = 512
W_MLP_BATCH = 32
# The three variants of W-mlp compared with the peers (tanh is W_MLP itself).
W_MLP_VARIANTS = {
    "tanh": W_MLP,
    "relu": fg.MLP(depth=50, width=64, activation="relu", init="he_normal"),  # W ~ N(0, 2/n), b = 0
    "sigmoid": fg.MLP(depth=50, width=64, activation="sigmoid", init="normal", sigma_w=1.0, sigma_b=1.0),
}
# Chain: depth 30, sigmoid, N(0, 1) weights and biases, 200 000 trials.
CHAIN = fg.Chain(depth=30, activation="sigmoid")
CHAIN_TRIALS = 200_000


def mlp_flops(spec: fg.MLP, batch: int) -> float:
    """Floating-point operations of one trial: forward 2*B*n_in*n_out, backward twice that."""
    dims = spec.dims
    return float(sum(6 * batch * dims[l] * dims[l + 1] for l in range(spec.depth)))


# W-rnn: hidden 64, inputs 16, 100 steps, batch 16, tanh, W_hh ~ N(0, g^2/64), W_xh ~ N(0, 1/16),
# b = 0, mse on the last step, 256 trials, g in {0.9, 1.0, 1.5}.
W_RNN = {g: fg.RNN(steps=100, hidden=64, inputs=16, activation="tanh", init="normal", gain=g) for g in (0.9, 1.0, 1.5)}
W_RNN_TRIALS = 256
W_RNN_BATCH = 16


def rnn_flops(spec: fg.RNN, batch: int) -> float:
    """Flops of one trial: per step the forward 2B(n^2 + dn), the backward 4B(n^2 + dn)."""
    n, d = spec.hidden, spec.inputs
    return float(spec.steps * 6 * batch * (n * n + d * n))


# The W-transformer (issue 23): T = 16 tokens, d = 64, H = 4, L = 12, batch 8, pre-LN (gelu, mse).
W_TRANSFORMER = fg.Transformer(depth=12, tokens=16, width=64, heads=4, norm="pre")
W_TRANSFORMER_BATCH = 8


def transformer_flops(spec: fg.Transformer, batch: int) -> float:
    """Flops of one trial's products: per block forward 2N(4d^2 + 2dm) + 4 N T d (scores, A V), backward twice that."""
    n, d, m = batch * spec.tokens, spec.width, spec.hidden
    return float(spec.depth * 3 * (2 * n * (4 * d * d + 2 * d * m) + 4 * n * spec.tokens * d))


@numba.njit(parallel=True, cache=True)
def _matmuls(h, w, d, reps):  # the W-mlp's products alone: z = h W, dW = h^T d, dh = d W^T
    for _t in numba.prange(reps):
        z = np.empty((h.shape[0], w.shape[1]), dtype=h.dtype)
        dw = np.empty((w.shape[0], w.shape[1]), dtype=h.dtype)
        dh = np.empty((h.shape[0], w.shape[0]), dtype=h.dtype)
        for _ in range(50):
            np.dot(h, w, z)
            np.dot(h.T, d, dw)
            np.dot(d, w.T, dh)


def matmul_peak(dtype: str, repeats: int, trials: int = W_MLP_TRIALS) -> float:
    """GFLOP/s of the W-mlp's matrix products alone (Numba calling BLAS, same shapes and threads)."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(32, 64)).astype(dtype)
    w = rng.normal(size=(64, 64)).astype(dtype)
    d = rng.normal(size=(32, 64)).astype(dtype)
    with threads_context(None):
        _matmuls(h, w, d, 2)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            _matmuls(h, w, d, trials)
            times.append(time.perf_counter() - t0)
    return trials * mlp_flops(W_MLP, W_MLP_BATCH) / np.median(times) / 1e9

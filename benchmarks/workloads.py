"""The standard workloads, shared by the pytest-benchmark suite and scripts/bench_engine.py."""

from __future__ import annotations

import fastgrad as fg

# W-mlp: width 64, depth 50, batch 32, tanh, W ~ N(0, 1/64), b ~ N(0, 0.1^2), mse, 512 trials.
W_MLP = fg.MLP(depth=50, width=64, activation="tanh", init="scaled_normal", sigma_w=1.0, sigma_b=0.1)
W_MLP_TRIALS = 512
W_MLP_BATCH = 32
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

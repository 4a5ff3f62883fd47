"""Engine benchmarks (pytest-benchmark). CI runs them once as smoke tests
(``--benchmark-disable``); ``pytest benchmarks --benchmark-enable`` measures.
Kernels are compiled before timing: compile time never counts as run time.
"""

import numpy as np
import pytest

import fastgrad as fg
from benchmarks.workloads import (
    CHAIN,
    CHAIN_TRIALS,
    W_MLP,
    W_MLP_BATCH,
    W_MLP_TRIALS,
    W_RNN,
    W_RNN_BATCH,
    W_RNN_TRIALS,
    mlp_flops,
    rnn_flops,
)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_w_mlp(benchmark, dtype):
    fg.run(W_MLP, trials=2, batch=W_MLP_BATCH, dtype=dtype)  # compile
    res = benchmark(fg.run, W_MLP, trials=W_MLP_TRIALS, batch=W_MLP_BATCH, dtype=dtype)
    assert res.grad_w.shape == (W_MLP_TRIALS, 50) and res.grad_w.dtype == np.dtype(dtype)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["trials_per_s"] = W_MLP_TRIALS / seconds
        benchmark.extra_info["gflops"] = W_MLP_TRIALS * mlp_flops(W_MLP, W_MLP_BATCH) / seconds / 1e9


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chain(benchmark, dtype):
    fg.run(CHAIN, trials=2, dtype=dtype)
    res = benchmark(fg.run, CHAIN, trials=CHAIN_TRIALS, dtype=dtype)
    assert res.grad_b.shape == (CHAIN_TRIALS, 30)
    if benchmark.stats is not None:
        benchmark.extra_info["trials_per_s"] = CHAIN_TRIALS / benchmark.stats.stats.median


def test_mlp_explicit_arrays(benchmark):
    spec = fg.MLP(depth=50, width=64, init="scaled_normal", sigma_b=0.1)
    W, b, x, y = fg.mlp_trial_arrays(spec, seed=0, trials=64, batch=32)
    fg.mlp_backprop([w[:1] for w in W], [v[:1] for v in b], x[:1], y[:1])
    res = benchmark(fg.mlp_backprop, W, b, x, y)
    assert res.grad_w.shape == (64, 50)


@pytest.mark.parametrize("gain", sorted(W_RNN))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_w_rnn(benchmark, gain, dtype):
    spec = W_RNN[gain]
    fg.run(spec, trials=2, batch=W_RNN_BATCH, dtype=dtype)
    res = benchmark(fg.run, spec, trials=W_RNN_TRIALS, batch=W_RNN_BATCH, dtype=dtype)
    assert res.grad_h.shape == (W_RNN_TRIALS, 100) and res.grad_h.dtype == np.dtype(dtype)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["trials_per_s"] = W_RNN_TRIALS / seconds
        benchmark.extra_info["gflops"] = W_RNN_TRIALS * rnn_flops(spec, W_RNN_BATCH) / seconds / 1e9

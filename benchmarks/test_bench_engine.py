"""Engine benchmarks (pytest-benchmark) for every kernel: W-mlp (tanh, relu, sigmoid), the
chain and W-rnn (g = 0.9, 1, 1.5), float32 and float64, generated trials and explicit arrays.

CI runs them once as smoke tests (``--benchmark-disable``); ``pytest benchmarks
--benchmark-enable`` measures (median, min-max, trials/s and GFLOP/s in extra_info).
Kernels are compiled before timing: compile time never counts as run time.
"""

import numpy as np
import pytest

import fastgrad as fg
from benchmarks.workloads import (
    CHAIN,
    CHAIN_TRIALS,
    W_MLP_BATCH,
    W_MLP_TRIALS,
    W_MLP_VARIANTS,
    W_RNN,
    W_RNN_BATCH,
    W_RNN_TRIALS,
    mlp_flops,
    rnn_flops,
)

DTYPES = ["float64", "float32"]


def report(benchmark, trials, flops_per_trial=0.0):
    if benchmark.stats is not None:  # None when benchmarks are disabled (the CI smoke run)
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["trials_per_s"] = trials / seconds
        if flops_per_trial:
            benchmark.extra_info["gflops"] = trials * flops_per_trial / seconds / 1e9


@pytest.mark.parametrize("variant", sorted(W_MLP_VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_w_mlp_generated(benchmark, variant, dtype):
    spec = W_MLP_VARIANTS[variant]
    fg.run(spec, trials=2, batch=W_MLP_BATCH, dtype=dtype)  # compile
    res = benchmark(fg.run, spec, trials=W_MLP_TRIALS, batch=W_MLP_BATCH, dtype=dtype)
    assert res.grad_w.shape == (W_MLP_TRIALS, 50) and res.grad_w.dtype == np.dtype(dtype)
    report(benchmark, W_MLP_TRIALS, mlp_flops(spec, W_MLP_BATCH))


@pytest.mark.parametrize("variant", sorted(W_MLP_VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_w_mlp_explicit(benchmark, variant, dtype):
    spec = W_MLP_VARIANTS[variant]
    W, b, x, y = fg.mlp_trial_arrays(spec, seed=0, trials=64, batch=W_MLP_BATCH, dtype=dtype)
    W, b = np.stack(W, axis=1), np.stack(b, axis=1)
    res = benchmark(fg.mlp_backprop, W, b, x, y, activation=spec.activation)
    assert res.grad_w.shape == (64, 50) and res.grad_w.dtype == np.dtype(dtype)
    report(benchmark, 64, mlp_flops(spec, W_MLP_BATCH))


@pytest.mark.parametrize("dtype", DTYPES)
def test_chain_generated(benchmark, dtype):
    fg.run(CHAIN, trials=2, dtype=dtype)
    res = benchmark(fg.run, CHAIN, trials=CHAIN_TRIALS, dtype=dtype)
    assert res.grad_b.shape == (CHAIN_TRIALS, 30)
    report(benchmark, CHAIN_TRIALS)


@pytest.mark.parametrize("dtype", DTYPES)
def test_chain_explicit(benchmark, dtype):
    w, b, x, y = fg.chain_trial_arrays(CHAIN, seed=0, trials=20_000, dtype=dtype)
    res = benchmark(fg.chain_backprop, w, b, x, y)
    assert res.shape == (20_000, 30) and res.dtype == np.dtype(dtype)
    report(benchmark, 20_000)


@pytest.mark.parametrize("gain", sorted(W_RNN))
@pytest.mark.parametrize("dtype", DTYPES)
def test_w_rnn_generated(benchmark, gain, dtype):
    spec = W_RNN[gain]
    fg.run(spec, trials=2, batch=W_RNN_BATCH, dtype=dtype)
    res = benchmark(fg.run, spec, trials=W_RNN_TRIALS, batch=W_RNN_BATCH, dtype=dtype)
    assert res.grad_h.shape == (W_RNN_TRIALS, 100) and res.grad_h.dtype == np.dtype(dtype)
    report(benchmark, W_RNN_TRIALS, rnn_flops(spec, W_RNN_BATCH))


@pytest.mark.parametrize("dtype", DTYPES)
def test_w_rnn_explicit(benchmark, dtype):
    spec = W_RNN[1.0]
    arrays = fg.rnn_trial_arrays(spec, seed=0, trials=32, batch=W_RNN_BATCH, dtype=dtype)
    res = benchmark(fg.rnn_backprop, *arrays)
    assert res.grad_h.shape == (32, 100)
    report(benchmark, 32, rnn_flops(spec, W_RNN_BATCH))

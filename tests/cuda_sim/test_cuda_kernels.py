"""The CUDA kernels under Numba's CUDA simulator, against the CPU kernels.

Run by tests/test_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (it must
be set before numba is imported). Tiny sizes and 8 threads per block, so that
every loop strides over several passes and a trial's statistics need the
block reductions; one block per trial, so several blocks run.
"""

import os
import warnings

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import gpu
from fastgrad.activations import NAMES

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                                reason="needs NUMBA_ENABLE_CUDASIM=1 (run through tests/test_cuda.py)")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(gpu, "THREADS_PER_BLOCK", 8)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # uint64 wrap-around in the simulator's numpy


def compare(spec, batch, dtype="float64", trials=3, rtol=1e-10, atol=0.0):
    cpu = fg.run(spec, trials=trials, batch=batch, seed=2, dtype=dtype)
    gpu_res = fg.run(spec, trials=trials, batch=batch, seed=2, dtype=dtype, backend="cuda")
    assert gpu_res.backend == "cuda" and set(gpu_res.arrays) == set(cpu.arrays)
    for k, v in cpu.arrays.items():
        assert gpu_res.arrays[k].dtype == np.dtype(dtype)
        np.testing.assert_allclose(gpu_res.arrays[k], v, rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("activation", NAMES)  # every activation of the registry
def test_mlp_matches_cpu(activation):
    # Small enough for the simulator, large enough that 8 threads stride over 12-element layers.
    compare(fg.MLP(depth=2, width=4, activation=activation, init="he_normal", sigma_b=0.1, input_width=3,
                   output_width=3), batch=3, trials=2)


def test_mlp_probe_uniform_and_last_activation():
    compare(fg.MLP(depth=2, width=6, activation="tanh", init="xavier_uniform", loss="probe",
                   last_activation="linear"), batch=2)


def test_mlp_float32():
    compare(fg.MLP(depth=3, width=5, init="scaled_normal", sigma_w=1.3), batch=2, dtype="float32", rtol=1e-5)


@pytest.mark.parametrize("loss", ["last", "all", "probe"])
def test_rnn_matches_cpu(loss):
    compare(fg.RNN(steps=4, hidden=5, inputs=3, gain=1.2, sigma_b=0.1, loss=loss), batch=2)


def test_rnn_identity_init():
    compare(fg.RNN(steps=5, hidden=4, inputs=2, init="identity", activation="relu"), batch=2)


def test_chain_matches_cpu():
    compare(fg.Chain(depth=6), batch=1, trials=20)  # 20 trials: three blocks of 8 threads
    compare(fg.Chain(depth=5, init="constant", value=100.0, bias_init="centered"), batch=1, trials=9, atol=1e-12)


def test_chunking_does_not_change_results():
    spec = fg.MLP(depth=2, width=4)
    whole = fg.run(spec, trials=5, batch=2, backend="cuda")
    chunked = fg.run(spec, trials=5, batch=2, backend="cuda", chunk=2)
    np.testing.assert_array_equal(whole.grad_w, chunked.grad_w)


def test_unsupported_inits_say_so():
    with pytest.raises(ValueError, match="orthogonal"):
        fg.run(fg.MLP(depth=2, width=4, init="orthogonal"), trials=1, backend="cuda")
    with pytest.raises(ValueError, match="spectral"):
        fg.run(fg.RNN(steps=2, hidden=3, inputs=1, init="spectral"), trials=1, backend="cuda")
    with pytest.raises(ValueError, match="jacobian"):
        fg.run(fg.RNN(steps=2, hidden=3, inputs=1, jacobian=True), trials=1, backend="cuda")

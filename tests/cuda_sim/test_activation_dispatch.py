"""The CUDA activation dispatch, generated from the registry, under Numba's CUDA simulator.

Run by tests/test_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1. Every registered
activation's ``phi_dphi`` branch is checked against its NumPy reference (tests/naive.py) and
against the CPU loop; a code outside the registry computes nan, not GELU (the hand-written
chain used to end in GELU); and a registry with one more entry gets a branch for it with no
other edit.
"""

import math
import os
import warnings

import numpy as np
import pytest
from numba import cuda  # a global of the kernels below: the simulator swaps it for its own

from fastgrad._numba import jit
from fastgrad.activations import CODES, NAMES, REGISTRY, Activation, evaluate
from tests import naive

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                                reason="needs NUMBA_ENABLE_CUDASIM=1 (run through tests/test_cuda.py)")

# Both tails, the kinks, zeros of either sign, overflow of exp, and nan / inf (results, not errors).
GRID = np.concatenate([np.linspace(-8.0, 8.0, 33), [-800.0, -40.0, -1e-300, -0.0, 0.0, 1e-300, 40.0, 800.0],
                       [np.nan, np.inf, -np.inf]])


@pytest.fixture(autouse=True)
def quiet():
    warnings.filterwarnings("ignore", category=RuntimeWarning)


def device_evaluate(dispatch, code, z, alpha):
    """(phi, dphi) of ``code`` over ``z`` by ``dispatch`` in a CUDA kernel: a few threads per block, several blocks."""

    @cuda.jit
    def kernel(code, z, alpha, h, d):
        i = cuda.grid(1)
        if i < z.size:
            hv, dv = dispatch(code, z[i], alpha)
            h[i] = hv
            d[i] = dv

    h, d = np.empty_like(z), np.empty_like(z)
    kernel[(z.size + 7) // 8, 8](code, z, alpha, h, d)
    return h, d


def assert_close(got, want, what):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-13, atol=1e-300, err_msg=what)


@pytest.mark.parametrize("name", NAMES)  # every activation of the registry
def test_every_registered_activation_matches_numpy_and_the_cpu(name):
    from fastgrad.kernels.cuda_device import phi_dphi

    alpha = REGISTRY[name].alpha
    h, d = device_evaluate(phi_dphi, CODES[name], GRID, alpha)
    with np.errstate(all="ignore"):
        assert_close(h, naive.phi(name, GRID, alpha), f"{name} phi vs NumPy")
        assert_close(d, naive.dphi(name, GRID, alpha), f"{name} dphi vs NumPy")
        cpu_h, cpu_d = evaluate(name, GRID, alpha)
    assert_close(h, cpu_h, f"{name} phi vs CPU")
    assert_close(d, cpu_d, f"{name} dphi vs CPU")


@pytest.mark.parametrize("code", [len(NAMES), len(NAMES) + 7, -1])
def test_an_unknown_code_gives_nan_not_gelu(code):
    from fastgrad.kernels.cuda_device import phi_dphi

    z = np.array([-1.0, 0.0, 0.5, 2.0])
    gelu_h, _ = device_evaluate(phi_dphi, CODES["gelu"], z, 0.0)
    np.testing.assert_allclose(gelu_h, 0.5 * z * np.array([math.erfc(-v / math.sqrt(2)) for v in z]), rtol=1e-13)
    h, d = device_evaluate(phi_dphi, code, z, 0.0)
    assert np.isnan(h).all() and np.isnan(d).all()


@jit(inline="always")
def _cube(z: float, alpha: float) -> float:
    return z * z * z


@jit(inline="always")
def _d_cube(z: float, alpha: float) -> float:
    return 3.0 * z * z


def test_a_new_registry_entry_is_dispatched_with_no_other_edit():
    from fastgrad.kernels.cuda_device import activation_dispatch, dispatch_source

    registry = {**REGISTRY, "cube": Activation("cube", _cube, _d_cube)}
    source = dispatch_source(registry)
    assert source.count("if code == ") == len(NAMES) + 1 and "# cube" in source
    dispatch = activation_dispatch(registry)
    z = np.linspace(-3.0, 3.0, 13)
    h, d = device_evaluate(dispatch, len(NAMES), z, 0.0)
    np.testing.assert_allclose(h, z**3, rtol=1e-15)
    np.testing.assert_allclose(d, 3 * z**2, rtol=1e-15)
    tanh_h, _ = device_evaluate(dispatch, CODES["tanh"], z, 0.0)  # the registered codes are unchanged
    np.testing.assert_allclose(tanh_h, np.tanh(z), rtol=1e-14)


def test_the_generator_refuses_codes_the_host_does_not_share():
    from fastgrad.kernels.cuda_device import activation_dispatch

    reordered = {"tanh": REGISTRY["tanh"], **REGISTRY}  # tanh would be code 0 here, 2 on the host
    with pytest.raises(ValueError, match="tanh"):
        activation_dispatch(reordered)
    with pytest.raises(ValueError, match="compiled"):
        activation_dispatch({**REGISTRY, "cube": Activation("cube", _cube.py_func, _d_cube)})

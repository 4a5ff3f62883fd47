"""Activations and derivatives against NumPy/SciPy over the whole real line."""

import numpy as np
import pytest

from fastgrad.activations import NAMES, evaluate
from tests import naive

GRID = np.concatenate(
    [
        np.linspace(-60, 60, 120_001),
        np.geomspace(1e-300, 1e300, 3000),
        -np.geomspace(1e-300, 1e300, 3000),
        [0.0, -0.0, 5e-324, -5e-324, 709.7, 709.8, -745.1, 1e308],
    ]
)


def relative_error(got: np.ndarray, ref: np.ndarray, tiny: float) -> np.ndarray:
    """|got - ref| / |ref| where |ref| >= tiny / eps, else |got - ref| / (tiny / eps).

    Within 2**52 (float32: 2**23) of the underflow threshold the intermediate
    values of any implementation are subnormal, so relative accuracy is not
    defined there; the error is measured against that scale instead.
    """
    floor = tiny / np.finfo(type(tiny)).eps
    got = got.astype(np.float64)
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    scale = np.maximum(np.abs(ref), floor)
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(got - ref) / scale)
    return np.where(np.isnan(err), np.inf, err)


def tolerance64(name: str, z: np.ndarray, derivative: bool) -> np.ndarray:
    """1e-14, widened only where gelu is ill-conditioned in every implementation.

    gelu evaluates erfc(-z / sqrt 2) and exp(-z^2 / 2): rounding z / sqrt 2 or
    z^2 moves the result by ~z^2 * 1.1e-16. Its derivative Phi(z) + z phi(z)
    also crosses zero at z = -0.75, where the two terms cancel; the bound adds
    that sum's condition number (|Phi| + |z phi|) / |Phi + z phi|.
    """
    tol = np.full(z.shape, 1e-14)
    if name == "gelu":
        zc = np.minimum(np.abs(z), 1e10)
        tol += 4e-16 * zc**2
        if derivative:
            with np.errstate(all="ignore"):
                cdf = naive.phi("gelu", z) / np.where(z == 0, 1, z)
                terms = np.abs(cdf) + np.abs(z * np.exp(-0.5 * zc**2) / np.sqrt(2 * np.pi))
                tol += 4e-16 * np.nan_to_num(terms / np.abs(naive.dphi("gelu", z)), nan=0.0, posinf=1e300)
    return tol


@pytest.mark.parametrize("name", NAMES)
def test_float64_matches_numpy(name):
    with np.errstate(all="ignore"):
        h, d = evaluate(name, GRID)
        ref_h = naive.phi(name, GRID)
        ref_d = naive.dphi(name, GRID)
    tiny = np.finfo(np.float64).tiny
    assert np.all(relative_error(h, ref_h, tiny) <= tolerance64(name, GRID, derivative=False))
    assert np.all(relative_error(d, ref_d, tiny) <= tolerance64(name, GRID, derivative=True))
    assert h.dtype == np.float64 and d.dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_float32_matches_numpy(name):
    z = GRID.astype(np.float32)
    z = z[np.isfinite(z)]
    with np.errstate(all="ignore"):
        h, d = evaluate(name, z)
        # The reference: float64 NumPy on the same float32 inputs, rounded once.
        ref_h = naive.phi(name, z.astype(np.float64)).astype(np.float32).astype(np.float64)
        ref_d = naive.dphi(name, z.astype(np.float64)).astype(np.float32).astype(np.float64)
    assert h.dtype == np.float32 and d.dtype == np.float32
    tiny = np.finfo(np.float32).tiny
    assert relative_error(h, ref_h, tiny).max() <= 5e-7
    assert relative_error(d, ref_d, tiny).max() <= 5e-7


def test_tanh_derivative_tail_is_not_flushed_in_float32():
    # 1 - tanh(z)^2 is exactly 0 in float32 for z > 9; the true value at z = 28 is ~1e-24.
    z = np.array([10.0, 20.0, 28.0, 40.0], dtype=np.float32)
    _, d = evaluate("tanh", z)
    assert np.all(d > 0)
    np.testing.assert_allclose(d, 4 * np.exp(-2 * z.astype(np.float64)), rtol=1e-6)
    h = np.tanh(z)
    assert np.all(1 - h * h == 0)  # what a derivative from h would give


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_and_nan_propagate_like_numpy(name, dtype):
    z = np.array([np.inf, -np.inf, np.nan], dtype=dtype)
    with np.errstate(all="ignore"):
        h, d = evaluate(name, z)
        ref_h = naive.phi(name, z.astype(np.float64))
    assert np.isnan(h[2]) and np.isnan(d[2])
    np.testing.assert_array_equal(np.isnan(h), np.isnan(ref_h))
    finite = ~np.isnan(ref_h)
    np.testing.assert_array_equal(h[finite], ref_h[finite].astype(dtype))


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        evaluate("swish", np.zeros(3))

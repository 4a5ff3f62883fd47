"""The counter-based generator: identity, distribution, independence."""

import math

import numpy as np
import pytest
from scipy import stats

from fastgrad.rng import normals


def test_same_key_same_numbers_different_keys_differ():
    a = normals(1, 2, 3, 1001)
    np.testing.assert_array_equal(a, normals(1, 2, 3, 1001))
    for other in (normals(2, 2, 3, 1001), normals(1, 3, 3, 1001), normals(1, 2, 4, 1001)):
        assert not np.any(a == other)
        assert abs(np.corrcoef(a, other)[0, 1]) < 0.15  # 1001 pairs: |r| < 0.15 at ~5 sigma


def test_prefix_property_within_a_pair_layout():
    # Element j < m of an n-element tensor is the cosine half of pair j.
    a = normals(0, 0, 0, 10)
    b = normals(0, 0, 0, 12)
    np.testing.assert_array_equal(a[:5], b[:5])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_standard_normal_distribution(dtype):
    x = normals(123, 0, 0, 400_001, dtype).astype(np.float64)
    assert stats.kstest(x, "norm").pvalue > 1e-4
    assert abs(x.mean()) < 5 / np.sqrt(x.size)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / x.size)
    assert abs(stats.kurtosis(x)) < 5 * np.sqrt(24 / x.size)
    # Tail mass beyond 4 sigma: 6.3e-5 expected.
    assert 5 < np.sum(np.abs(x) > 4) < 60


def test_cosine_and_sine_halves_are_uncorrelated():
    x = normals(5, 1, 0, 200_000)
    r = np.corrcoef(x[:100_000], x[100_000:])[0, 1]
    assert abs(r) < 5 / np.sqrt(100_000)
    r2 = np.corrcoef(x[:100_000] ** 2, x[100_000:] ** 2)[0, 1]
    assert abs(r2) < 5 / np.sqrt(100_000)


# An independent reference of the stream: SplitMix64 in NumPy uint64 arithmetic (which wraps),
# and the float32 transform with NumPy's float32 log, sqrt, cos and sin.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _words(seed, trial, tensor, pairs):
    one = np.uint64(1)
    with np.errstate(over="ignore"):
        k = _mix(np.array([seed], dtype=np.uint64) * GOLDEN + np.uint64(0xBF58476D1CE4E5B9))
        k = _mix(k + (np.uint64(trial) + one) * GOLDEN)
        k = _mix(k + (np.uint64(tensor) + one) * GOLDEN)
        return _mix(k + (np.arange(pairs, dtype=np.uint64) + one) * GOLDEN)


def _reference(seed, trial, tensor, n, dtype):
    m = (n + 1) // 2
    bits = _words(seed, trial, tensor, m)
    if dtype == "float64":
        u1 = ((bits >> np.uint64(32)) + np.uint64(1)).astype(np.float64) * 2.0**-32
        u2 = (bits & np.uint64(0xFFFFFFFF)).astype(np.float64) * 2.0**-32
        r, a = np.sqrt(-2.0 * np.log(u1)), 2.0 * math.pi * u2
    else:
        f = np.float32
        u1 = ((bits >> np.uint64(33)).astype(np.int32).astype(f) + f(1.0)) * f(2.0**-31)
        u2 = ((bits & np.uint64(0xFFFFFFFF)) >> np.uint64(8)).astype(np.int32).astype(f) * f(2.0**-24)
        r, a = np.sqrt(f(-2.0) * np.log(u1)), f(2.0 * math.pi) * u2
    return np.concatenate([r * np.cos(a), (r * np.sin(a))[: n - m]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normals_match_an_independent_numpy_reference(dtype):
    n = 100_001
    got = normals(7, 3, 11, n, dtype)
    ref = _reference(7, 3, 11, n, dtype)
    assert got.dtype == np.dtype(dtype)
    # float64: polynomial log and sincos to ~1e-13; float32: a few float32 ulp of r and of the angle.
    atol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(got, ref, rtol=atol, atol=atol)


def test_float32_normals_are_the_float64_normals_to_float32_accuracy():
    # The same words through float32 arithmetic: u1 and u2 agree to 2**-24, so the normals
    # agree to float32 rounding except where r is small (u1 near 1 is quantised to 2**-24).
    a = normals(3, 4, 5, 1_000_001)
    b = normals(3, 4, 5, 1_000_001, "float32").astype(np.float64)
    rel = np.abs(a - b) / np.abs(a)
    assert np.median(rel) < 1e-6
    assert np.quantile(rel, 0.99) < 3e-5  # 1.2e-5 measured: the 1% with small r or a near-zero angle term
    assert np.max(np.abs(a - b)) < 2e-4


def test_normals_refuse_other_dtypes():
    with pytest.raises(ValueError, match="dtype"):
        normals(0, 0, 0, 4, "float16")

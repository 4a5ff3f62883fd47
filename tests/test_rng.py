"""The counter-based generator: identity, distribution, independence."""

import numpy as np
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


def test_standard_normal_distribution():
    x = normals(123, 0, 0, 400_001)
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

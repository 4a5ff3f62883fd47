"""Every recorded statistic of ``tests/data/golden.npz`` is reproduced bit for bit.

The file was written by ``tests/make_golden.py`` with the kernels of an earlier
design; a rewrite of the kernel layer must compute exactly the same numbers.
"""

import numpy as np
import pytest

from tests.make_golden import PATH, golden


@pytest.fixture(scope="module")
def recorded():
    with np.load(PATH) as data:
        return dict(data)


@pytest.fixture(scope="module")
def computed():
    return golden()


def test_same_keys(recorded, computed):
    assert sorted(recorded) == sorted(computed)


def test_bitwise_identical(recorded, computed):
    for key, want in recorded.items():
        got = computed[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        # Bitwise: compare the raw bytes, so nan and -0.0 count too.
        assert got.tobytes() == want.tobytes(), f"{key}: max abs diff {np.nanmax(np.abs(got - want))}"

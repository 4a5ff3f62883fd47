"""Every recorded statistic of ``tests/data/golden.npz`` is reproduced bit for bit.

The file was written by ``tests/make_golden.py`` with the kernels of an earlier
design (before the 0.2 kernel layer); a rewrite of the kernel layer must compute
exactly the same numbers.

One documented exception: RNN training now runs the statistics kernels' forward
pass, which adds ``x_t W_xh + b`` (all steps in one product) to ``h_{t-1} W_hh``,
where the old training loop added ``x_t W_xh`` and then ``b``. The sums round
differently in the last bit, so RNN training is held to 1e-12 relative instead.
Likewise ``grad_w`` of the MLPs whose batch is at most a quarter of the width, now
formed as sqrt(<h h^T, delta delta^T>) (``GRAM`` below).

The float32 entries were re-recorded once, when float32 runs moved from rounded
float64 draws to float32 arithmetic draws (``rng.normal_pair32``); every float64
entry, and the chain's float32 ones (the chain still draws in float64), were
checked unchanged at that step.
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


ROUNDED = ("train_rnn/",)
# Statistics that now take the Gram form of ||h^T delta||_F (batch 3 <= width 12 / 4:
# norms.product_norm), which rounds differently: held to the recorded values to rounding.
GRAM = {"mlp_tanh_xavier/float64/grad_w": 1e-13, "mlp_tanh_xavier/float32/grad_w": 1e-5}


def test_bitwise_identical(recorded, computed):
    differ = []
    for key, want in recorded.items():
        got = computed[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        if key.startswith(ROUNDED):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=key)
        elif key in GRAM:
            np.testing.assert_allclose(got, want, rtol=GRAM[key], atol=0, err_msg=key)
            assert not np.array_equal(got, want), f"{key} no longer takes the Gram form: move it back"
        elif got.tobytes() != want.tobytes():  # the raw bytes, so nan and -0.0 count too
            differ.append(f"{key}: max abs diff {np.nanmax(np.abs(got - want))}")
    assert not differ, "\n".join(differ)

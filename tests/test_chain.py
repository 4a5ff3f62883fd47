"""The one-neuron chain: reference, the classic vanishing and exploding examples."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.activations import NAMES
from tests import naive


@pytest.mark.parametrize("activation", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chain_backprop_matches_reference(activation, dtype):
    rng = np.random.default_rng(1)
    n, depth = 700, 12  # several blocks of trials, one partial
    w, b = rng.normal(size=(2, n, depth))
    x, y = rng.normal(size=(2, n))
    got = fg.chain_backprop(w.astype(dtype), b.astype(dtype), x.astype(dtype), y.astype(dtype), activation)
    assert got.dtype == dtype and got.shape == (n, depth)
    up = [a.astype(dtype).astype(np.float64) for a in (w, b, x, y)]
    ref = naive.chain(*up, activation)
    if dtype == np.float64:
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-300)
    else:
        # Typical error: a few float32 roundings (6e-8) per layer, so the median is
        # ~1e-7. The tail is conditioning, not the kernel: z_l carries the rounding
        # of every earlier layer times the forward gain prod |w phi'|, and phi'(z)
        # is ill-conditioned near its zeros (gelu at z = -0.75). Measured on these
        # 8400 values: median <= 1.7e-7, 99th percentile <= 5e-6, max 9e-4 (gelu).
        mask = np.abs(ref) > 1e-30
        rel = np.abs(got - ref)[mask] / np.abs(ref[mask])
        assert np.median(rel) < 5e-7
        assert np.quantile(rel, 0.99) < 2e-5
        assert rel.max() < 3e-3


def test_generated_chain_matches_its_arrays():
    spec = fg.Chain(depth=9, activation="sigmoid")
    res = fg.run(spec, trials=600, seed=3)
    w, b, x, y = fg.chain_trial_arrays(spec, seed=3, trials=600)
    ref = naive.chain(w, b, x, y, "sigmoid")
    np.testing.assert_allclose(res.dc_db, ref, rtol=1e-12)
    np.testing.assert_allclose(res.grad_b, np.abs(ref), rtol=1e-12)
    a_prev = np.concatenate([x[:, None], naive.phi("sigmoid", ref * 0 + _z(w, b, x))[:, :-1]], axis=1)
    np.testing.assert_allclose(res.grad_w, np.abs(ref * a_prev), rtol=1e-12)


def _z(w, b, x):
    a = x.copy()
    zs = []
    for l in range(w.shape[1]):
        zs.append(w[:, l] * a + b[:, l])
        a = naive.phi("sigmoid", zs[-1])
    return np.stack(zs, axis=1)


def test_sigmoid_chain_vanishes():
    # N(0, 1) weights and biases: every factor |w sigma'(z)| is usually < 1/4.
    res = fg.run(fg.Chain(depth=30, activation="sigmoid"), trials=20_000, seed=0)
    ratio = res.grad_b[:, 0] / res.grad_b[:, -1]
    median = np.median(ratio)
    assert median < 1e-12  # measured: ~1e-29 at depth 30 (README)
    assert np.mean(ratio < 1.0) > 0.99
    # Reference: the median of a product of 29 independent-ish factors, from NumPy.
    w, b, x, y = fg.chain_trial_arrays(fg.Chain(depth=30), seed=0, trials=2000)
    ref = np.abs(naive.chain(w, b, x, y, "sigmoid"))
    ref_median = np.median(ref[:, 0] / ref[:, -1])
    assert 0.1 < median / ref_median < 10


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exploding_chain_every_factor_is_25(dtype):
    depth = 12
    res = fg.run(fg.Chain(depth=depth, init="constant", value=100.0, bias_init="centered"), trials=50, dtype=dtype)
    ratio = res.dc_db[:, 0] / res.dc_db[:, -1]
    np.testing.assert_allclose(ratio, 25.0 ** (depth - 1), rtol=1e-12 if dtype == "float64" else 1e-5)
    np.testing.assert_allclose(res.q, 0.0, atol=1e-20 if dtype == "float64" else 1e-6)

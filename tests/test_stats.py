"""Decay statistics on synthetic inputs with known answers."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import stats
from fastgrad.results import Result


def synthetic(slope=0.3, trials=4000, layers=12, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    logs = slope * np.arange(layers) + noise * rng.normal(size=(trials, layers))
    return np.exp(logs)


def test_decay_curve_quantiles_and_geomean():
    values = np.tile(np.arange(1.0, 101.0)[:, None], (1, 3))  # 100 trials: 1..100 at every layer
    values[:, 2] *= 10
    frame = stats.decay_curve(values, "grad_w", configuration="toy")
    np.testing.assert_allclose(frame["median"], [50.5, 50.5, 505.0])
    np.testing.assert_allclose(frame["q25"], [np.quantile(np.arange(1, 101), 0.25)] * 2 + [10 * 25.75])
    np.testing.assert_allclose(frame["geomean"][:2], np.exp(np.mean(np.log(np.arange(1, 101)))))
    assert list(frame["layer"]) == [1, 2, 3] and set(frame["configuration"]) == {"toy"}
    ratio = stats.decay_curve(values, "grad_w", normalize=True)
    np.testing.assert_allclose(ratio["median"], [0.1, 0.1, 1.0])
    assert ratio["metric"][0] == "grad_w_ratio"


def test_nonfinite_trials_are_counted_not_dropped():
    values = np.ones((10, 4))
    values[0, 1] = np.inf
    values[1, 1] = np.nan
    values[2, 0] = 0.0
    frame = stats.decay_curve(values, "delta")
    assert list(frame["nonfinite"]) == [0, 2, 0, 0]
    assert list(frame["zero"]) == [1, 0, 0, 0]
    assert frame["q95"][1] == np.inf  # inf ranks above every finite value
    frac = stats.fractions(values, "delta")
    assert frac["nonfinite"] == 0.2 and frac["trials"] == 10
    rate = stats.decay_rate(values, "delta", n_boot=20)
    assert rate["excluded"] == 3 and rate["trials"] == 10


def test_decay_rate_recovers_a_known_slope():
    rate = stats.decay_rate(synthetic(slope=0.3), "grad_w", n_boot=300)
    assert rate["low"] < 0.3 < rate["high"]
    assert rate["high"] - rate["low"] < 0.01  # 4000 trials, noise 0.5: se ~ 0.5 / sqrt(4000 * 143) per layer
    assert rate["depth_scale"] == pytest.approx(1 / rate["slope"])
    down = stats.decay_rate(synthetic(slope=-0.2), "grad_w", n_boot=100)
    assert down["low"] < -0.2 < down["high"]


def test_fractions_known_counts():
    values = np.ones((5, 3))
    values[0, 0] = 1e-9  # vanished
    values[1, 0] = 1e9  # exploded
    values[2, 2] = np.inf  # non-finite: neither
    frac = stats.fractions(values, "grad_w", vanish=1e-6, explode=1e6)
    assert (frac["vanished"], frac["exploded"], frac["nonfinite"]) == (0.2, 0.2, 0.2)


def test_paired_comparison_uses_common_random_numbers():
    a = Result({"grad_w": synthetic(noise=2.0), "q": synthetic()}, seed=1, trials=4000)
    b = Result({"grad_w": a.grad_w * 2.0, "q": a.q}, seed=1, trials=4000)
    cmp = stats.paired_comparison(a, b, "grad_w", layer=1)
    assert cmp["log_ratio"] == pytest.approx(np.log(2.0))
    assert cmp["high"] - cmp["low"] < 1e-12  # paired: the noise cancels exactly
    c = Result({"grad_w": a.grad_w, "q": a.q}, seed=2, trials=4000)
    with pytest.raises(ValueError, match="seed"):
        stats.paired_comparison(a, c)
    with pytest.raises(ValueError, match="layer: must be 1"):  # layers are numbered from 1, as in frames
        stats.paired_comparison(a, b, layer=0)


def test_paired_comparison_on_engine_runs():
    spec_a = fg.MLP(depth=10, width=16, activation="tanh", init="scaled_normal", sigma_w=1.0)
    spec_b = fg.MLP(depth=10, width=16, activation="tanh", init="scaled_normal", sigma_w=0.8)
    a = fg.run(spec_a, trials=400, batch=4, seed=3)
    b = fg.run(spec_b, trials=400, batch=4, seed=3)
    cmp = stats.paired_comparison(a, b, "delta", layer=1)
    frame_a, frame_b = a.to_frame(), b.to_frame()  # layer 1 of the call is layer 1 of the frames
    first = np.log(frame_b[frame_b.layer == 1].delta.to_numpy()) - np.log(frame_a[frame_a.layer == 1].delta.to_numpy())
    assert cmp["log_ratio"] == pytest.approx(first.mean(), rel=1e-12)
    assert cmp["high"] < 0  # smaller weights: the first layer's signal is smaller, for sure
    assert cmp["trials"] == 400


def test_summary_is_tidy():
    res = fg.run(fg.MLP(depth=4, width=6), trials=20, batch=2)
    table = stats.summary({"x": res, "y": res}, "grad_w")
    assert len(table) == 8 and list(table["configuration"].unique()) == ["x", "y"]
    with pytest.raises(ValueError, match="metric"):
        stats.decay_curve(np.ones(3), "grad_w")

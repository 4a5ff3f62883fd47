"""Mean-field theory against known values and against the engine on wide nets."""

import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import theory


def test_known_values():
    assert theory.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    for s in (0.5, 1.3, 2.0, 3.0):
        assert theory.chi1("relu", s, 0.0) == pytest.approx(s / 2, rel=1e-12)
        assert theory.chi1("relu", s, 0.2) == pytest.approx(s / 2, rel=1e-12)
    assert theory.critical_sigma_w2("relu", 0.1) == pytest.approx(2.0, abs=1e-6)
    # linear: q* = sigma_b^2 / (1 - sigma_w^2), chi_1 = sigma_w^2
    assert theory.fixed_point("linear", 0.5, 0.3) == pytest.approx(0.6, rel=1e-10)
    assert theory.chi1("linear", 0.7, 0.1) == pytest.approx(0.7, rel=1e-12)
    # E[relu(sqrt(q) z)^2] = q / 2, E[tanh'(0)^2] = 1
    assert theory.gaussian_moments("relu", 3.0)[0] == pytest.approx(1.5, rel=1e-10)
    assert theory.gaussian_moments("tanh", 0.0)[1] == pytest.approx(1.0, rel=1e-12)
    # The edge moves to larger sigma_w^2 with sigma_b^2 (Poole et al. 2016, Fig. 2).
    assert 1.0 < theory.critical_sigma_w2("tanh", 0.05) < theory.critical_sigma_w2("tanh", 0.2)
    assert theory.depth_scale("tanh", 0.8, 0.05) == pytest.approx(-1 / math.log(theory.chi1("tanh", 0.8, 0.05)))
    assert theory.fixed_point("relu", 3.0, 0.1) == math.inf


def test_gaussian_moments_against_monte_carlo():
    z = np.random.default_rng(0).normal(size=2_000_000)
    for name in ("sigmoid", "gelu", "elu"):
        h, d = fg.activations.evaluate(name, np.sqrt(1.7) * z)
        m = theory.gaussian_moments(name, 1.7)
        assert m[0] == pytest.approx(np.mean(h * h), rel=5e-3)
        assert m[1] == pytest.approx(np.mean(d * d), rel=5e-3)


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(0.8, 0.05), (2.0, 0.05)])  # ordered, chaotic
def test_engine_slope_matches_ln_chi1_on_wide_nets(sigma_w2, sigma_b2):
    depth = 30
    spec = fg.MLP(depth=depth, width=256, activation="tanh", init="scaled_normal", sigma_w=math.sqrt(sigma_w2),
                  sigma_b=math.sqrt(sigma_b2), loss="probe")
    res = fg.run(spec, trials=256, batch=8, seed=1)
    log_e = np.log(np.mean(res.delta.astype(np.float64) ** 2, axis=0))
    layers = np.arange(depth)
    fitted = np.polyfit(layers[10:], log_e[10:], 1)[0]  # past the transient of q_l
    expected = -math.log(theory.chi1("tanh", sigma_w2, sigma_b2))
    # Measured (4 seeds): ordered 1.000 +- 0.002 of the prediction; chaotic 1.04-1.046
    # at width 256 (1.051 at 128, 1.033 at 512): a finite-width excess that shrinks with width.
    assert fitted == pytest.approx(expected, rel=0.02 if sigma_w2 < 1 else 0.06)
    # And the finite-depth curve (from the actual q_l sequence) over all layers.
    predicted = np.log(theory.delta_curve("tanh", sigma_w2, sigma_b2, depth))
    np.testing.assert_allclose(log_e - log_e[-1], predicted, atol=0.05 * abs(predicted[0]) + 0.05)


def test_rnn_theory_matches_engine():
    for gain in (0.9, 1.5):
        res = fg.run(fg.RNN(steps=30, hidden=256, inputs=16, gain=gain), trials=32, batch=8)
        measured = np.log(np.mean(res.grad_h**2, axis=0))
        predicted = np.log(theory.rnn_grad_h_curve("tanh", gain, 1.0, 0.0, 30))
        assert measured[0] - measured[-1] == pytest.approx(predicted[0], rel=0.05)


def test_relu_log_jacobian_variance_grows_with_sum_of_inverse_widths():
    # Var log ||J u||^2 = 5 sum 1/n to first order in 1/n; at n = 64 the next order is ~5%.
    variances = {}
    for width in (32, 64):
        res = fg.run(fg.MLP(depth=20, width=width, activation="relu", init="he_normal", loss="probe"),
                     trials=4000, batch=1, seed=2)
        log_ratio = np.log(res.delta[:, 0] ** 2 / res.delta[:, -1] ** 2)
        variances[width] = log_ratio.var()
        mean, var = theory.relu_log_jacobian([width] * 19)
        assert log_ratio.var() == pytest.approx(var, rel=0.15 if width == 32 else 0.1)
        assert log_ratio.mean() == pytest.approx(mean, rel=0.15)
        assert abs(np.mean(((log_ratio - log_ratio.mean()) / log_ratio.std()) ** 3)) < 0.3  # close to Gaussian
    assert variances[32] / variances[64] == pytest.approx(2.0, rel=0.15)


def test_finite_depth_edge_brackets_the_sign_change_and_tends_to_the_fixed_point():
    edge30 = theory.finite_depth_edge("tanh", 0.05, 30)
    assert theory.delta_slope("tanh", edge30 - 0.05, 0.05, 30) > 0 > theory.delta_slope("tanh", edge30 + 0.05, 0.05, 30)
    critical = theory.critical_sigma_w2("tanh", 0.05)
    assert edge30 > theory.finite_depth_edge("tanh", 0.05, 100) > critical
    assert theory.finite_depth_edge("tanh", 0.05, 300) == pytest.approx(critical, rel=1e-3)

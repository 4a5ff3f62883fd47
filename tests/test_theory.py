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


BAD_ARGUMENTS = [
    # (function, arguments, the argument the message must name)
    (theory.chi1, ("tanh", -1.0, 0.05), "sigma_w2"),  # returned -0.95 before it was checked
    (theory.delta_curve, ("tanh", 1.0, 0.05, -1), "depth"),  # raised NumPy's "negative dimensions"
    (theory.gaussian_moments, ("tanh", -1.0), "q"),
    (theory.gaussian_moments, ("swish", 1.0), "activation"),
    (theory.variance_map, ("tanh", 1.0, -0.5, 0.0), "sigma_w2"),
    (theory.variance_map, ("tanh", 1.0, 1.0, -0.1), "sigma_b2"),
    (theory.q_sequence, ("tanh", 1.0, 0.0, 0), "depth"),
    (theory.q_sequence, ("tanh", 1.0, 0.0, 5, 0.0), "q_in"),
    (theory.fixed_point, ("tanh", float("nan"), 0.0), "sigma_w2"),
    (theory.chi, ("tanh", float("nan"), 1.0), "q"),
    (theory.chi, ("tanh", 1.0, 1.0, 0.1), "alpha"),  # tanh takes no parameter
    (theory.depth_scale, ("tanh", 1.0, -1.0), "sigma_b2"),
    (theory.critical_sigma_w2, ("tanh", -0.1), "sigma_b2"),
    (theory.critical_sigma_w2, ("tanh", 0.1, None, (2.0, 1.0)), "bracket"),
    (theory.delta_slope, ("tanh", 1.0, 0.0, 2.5), "depth"),
    (theory.finite_depth_edge, ("tanh", 0.05, 0), "depth"),
    (theory.finite_depth_edge, ("tanh", 0.05, 10, 1.0, None, (-1.0, 3.0)), "bracket"),
    (theory.residual_q_sequence, ("tanh", -1.0, 0.0, 5, 1.0), "sigma_w2"),
    (theory.residual_delta_curve, ("tanh", 1.0, 0.0, 2, 1.0), "depth"),
    (theory.residual_delta_curve, ("tanh", 1.0, 0.0, 5, -1.0), "residual"),
    (theory.residual_delta_curve, ("tanh", 1.0, 0.0, 5, 1.0, -2.0), "q_in"),
    (theory.residual_delta_curve_for, (fg.MLP(depth=3, width=4),), "spec"),
    (theory.rnn_q_sequence, ("tanh", -1.0, 1.0, 0.0, 10), "gain"),
    (theory.rnn_grad_h_curve, ("tanh", 1.0, -1.0, 0.0, 10), "input_scale"),
    (theory.rnn_grad_h_curve, ("tanh", 1.0, 1.0, 0.0, 0), "steps"),
    (theory.relu_log_jacobian, ([64, 0],), "widths"),
    (theory.derivative_moments, ("tanh", -2.0), "q"),
    (theory.spectrum_moments, ("tanh", 1.0, 0.0, 4, "uniform"), "weights"),
    (theory.spectrum_moments, ("tanh", 1.0, -1.0, 4), "sigma_b2"),
    (theory.linear_gaussian_moments, (0, 32), "depth"),
    (theory.linear_gaussian_moments, (4, 0), "width"),
    (theory.fuss_catalan_density, (0,), "depth"),
    (theory.length_map_slope, ("tanh", 1.0, -1.0), "sigma_w2"),
    (theory.length_mode, ("relu", 2.0, 0.0, 4), "activation"),  # phi' = 0 on half the line: J is singular
    (theory.length_mode, ("gelu", 2.0, 0.0, 4), "activation"),  # phi' changes sign
    (theory.length_mode, ("tanh", 0.0, 0.0, 4), "sigma_w2"),
    (theory.length_mode, ("tanh", 1.0, 0.0, 4, float("inf")), "q_in"),
]


@pytest.mark.parametrize(("function", "arguments", "name"), BAD_ARGUMENTS,
                         ids=[f"{f.__name__}-{name}" for f, _, name in BAD_ARGUMENTS])
def test_every_public_function_refuses_bad_arguments_naming_them(function, arguments, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        function(*arguments)


def test_every_public_function_is_checked():
    # Every public function of theory.py appears above: a new one must come with its checks.
    public = {n for n, f in vars(theory).items() if callable(f) and not n.startswith("_")
              and getattr(f, "__module__", "") == "fastgrad.theory"}
    assert public - {f.__name__ for f, _, _ in BAD_ARGUMENTS} == set()


def test_zero_weights_are_an_answer_not_an_error():
    assert theory.chi1("tanh", 0.0, 0.1) == 0.0
    assert theory.depth_scale("tanh", 0.0, 0.1) == 0.0
    assert theory.delta_slope("tanh", 0.0, 0.1, 5) == math.inf


def test_length_map_slope_closed_forms():
    # linear: E[(sqrt(q) z)^2] = q, slope sigma_w^2; relu: q / 2, slope sigma_w^2 / 2; tanh: q - 2 q^2 + O(q^3)
    assert theory.length_map_slope("linear", 0.7, 1.3) == pytest.approx(1.3, rel=1e-12)
    assert theory.length_map_slope("relu", 0.7, 2.0) == pytest.approx(1.0, rel=1e-12)
    assert theory.length_map_slope("tanh", 0.0, 1.1) == pytest.approx(1.1, rel=1e-12)
    assert theory.length_map_slope("tanh", 1e-3, 1.0) == pytest.approx(1 - 4e-3, abs=1e-4)
    q = 0.3  # against a central difference of the variance map itself
    diff = (theory.variance_map("tanh", q + 1e-5, 1.4, 0.1) - theory.variance_map("tanh", q - 1e-5, 1.4, 0.1)) / 2e-5
    assert theory.length_map_slope("tanh", q, 1.4) == pytest.approx(diff, rel=1e-8)


def test_length_mode_closed_forms():
    # Linear nets (and leaky relu without biases: phi / phi' = z): no direction falls below the bulk.
    for w2 in (0.5, 1.0, 1.7):
        np.testing.assert_allclose(theory.length_mode("linear", w2, 0.0, 12), np.ones(12), rtol=1e-12)
    np.testing.assert_allclose(theory.length_mode("leaky_relu", 2.0, 0.0, 6, alpha=0.1), np.ones(6), rtol=1e-12)
    # tanh from its fixed point at the edge (chi_1 = 1, p_l = p*): kappa = E[cosh(2 z)] = exp(2 q*) per layer.
    b2 = 1e-3
    w2 = theory.critical_sigma_w2("tanh", b2)
    q_star = theory.fixed_point("tanh", w2, b2)
    q_in = (q_star - b2) / w2  # so that q_1 = q*
    got = theory.length_mode("tanh", w2, b2, 20, q_in=q_in)
    np.testing.assert_allclose(got, np.exp(-2 * q_star * np.arange(1, 21)), rtol=1e-7)


def test_length_mode_matches_measured_spectra():
    # tanh at the edge (sigma_b^2 = 1e-3), orthogonal weights, width 64, depth 32, 64 trials: the median
    # of log10(s_min / s_rms) over 6 seeds was -4.90 .. -5.11 (sd 0.07) against the theory's -5.08;
    # at width 128 (scripts/length_mode.py) within 0.03 decades. 0.35 decades is 2.5 sd beyond the
    # largest offset seen, and the length map's forward slope (-3.45 here) is 1.6 decades away.
    b2, depth = 1e-3, 32
    w2 = theory.critical_sigma_w2("tanh", b2)
    spec = fg.MLP(depth=depth, width=64, activation="tanh", init="orthogonal", sigma_w2=w2, sigma_b2=b2)
    sv = fg.spectrum(spec, trials=64, batch=1, seed=11).singular_values.astype(np.float64)
    rms = np.sqrt(np.mean(sv**2, axis=1))
    measured = np.median(np.log10(sv[:, -1] / rms))
    predicted = math.log10(theory.length_mode("tanh", w2, b2, depth)[-1])
    assert measured == pytest.approx(predicted, abs=0.35)
    # One mode: the second smallest singular value is in the bulk, two decades and more above.
    assert np.median(np.log10(sv[:, -2] / rms)) > measured + 2
    # The forward product of the length map's slopes is not what sets s_min.
    forward, p_prev = 0.0, 1.0
    for q in theory.q_sequence("tanh", w2, b2, depth):
        p = theory.gaussian_moments("tanh", q)[0]
        chi = theory.chi("tanh", q, w2)
        forward += math.log10(theory.length_map_slope("tanh", q, w2) * math.sqrt(p_prev / (p * chi)))
        p_prev = p
    assert abs(forward - measured) > 1.0


def _grad_h_ratio_interval(loss: str, column: int, trials: int = 1000) -> tuple[float, float]:
    """99.9% bootstrap interval of E||g_column||^2 / E||g_9||^2 on a linear ResMLP, depth 10, width 64, a = 1."""
    spec = fg.ResMLP(depth=10, width=64, activation="linear", init="scaled_normal", sigma_w2=1.0, residual=1.0,
                     loss=loss)
    g2 = fg.run(spec, trials=trials, batch=8, seed=3).grad_h.astype(np.float64) ** 2
    idx = np.random.default_rng(0).integers(0, trials, (2000, trials))
    ratios = g2[idx, column].mean(axis=1) / g2[idx, -1].mean(axis=1)
    low, high = np.quantile(ratios, [0.0005, 0.9995])
    return float(low), float(high)


def test_residual_law_holds_under_probe_and_not_under_mse():
    # The law: through 8 linear blocks of a = 1, E||dL/dh||^2 doubles per block; through the plain
    # input layer (sigma_w^2 = 1) it stays: 2^8 = 256 for both g_0 and g_1 against g_9.
    law = 2.0**8
    assert theory.residual_delta_curve("linear", 1.0, 0.0, 10, 1.0)[:2] == pytest.approx([law, law], rel=1e-12)
    for column in (0, 1):
        low, high = _grad_h_ratio_interval("probe", column)
        assert low < law < high, (column, low, high)
        assert high / low < 1.1  # measured 1.04: the interval is narrow enough to see a wrong law
    # mse: the output gradient h_L - y carries h_L, which the blocks amplified (measured 1215 and 1070
    # here; free probability at infinite width: 256 E[lambda^2] / (E[lambda]^2 E[(W W^T)^2]) = 1152, 1024).
    for column in (0, 1):
        low, _ = _grad_h_ratio_interval("mse", column)
        assert low > 3 * law, (column, low)


def test_residual_delta_curve_for_reads_the_spec_and_warns_on_losses_it_does_not_describe():
    import warnings

    probe = fg.ResMLP(depth=8, width=16, activation="tanh", init="scaled_normal", sigma_w2=1.5, sigma_b2=0.05,
                      residual="1/sqrt(L)", norm="layer", loss="probe")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning under probe
        got = theory.residual_delta_curve_for(probe)
    np.testing.assert_allclose(got, theory.residual_delta_curve("tanh", 1.5, 0.05, 8, "1/sqrt(L)", norm="layer"),
                               rtol=1e-12)
    mse = fg.ResMLP(depth=8, width=16, activation="linear", loss="mse")  # xavier_normal, square: sigma_w^2 = 1
    with pytest.warns(UserWarning, match="loss='mse'"):
        got = theory.residual_delta_curve_for(mse)
    np.testing.assert_allclose(got, theory.residual_delta_curve("linear", 1.0, 0.0, 8, 1.0), rtol=1e-12)
    # The theory takes one sigma_w^2: xavier's differs between a 4 -> 16 input layer and the blocks.
    with pytest.raises(ValueError, match="^spec: the theory takes one sigma_w2"):
        theory.residual_delta_curve_for(fg.ResMLP(depth=4, width=16, input_width=4, loss="probe"))
    with pytest.raises(ValueError, match="^spec: init='identity'"):
        theory.residual_delta_curve_for(fg.ResMLP(depth=4, width=16, init="identity", loss="probe"))

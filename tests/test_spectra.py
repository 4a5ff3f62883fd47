"""Jacobian spectra: J against finite differences and PyTorch, the exact linear cases, the edge of chaos."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import mlp_jacobian, spectrum, theory


def _forward(W, b, x, act):
    h = x
    for w, v in zip(W, b, strict=True):
        h = act(h @ w + v)
    return h


def test_jacobian_matches_central_differences():
    spec = fg.MLP(depth=4, width=6, input_width=5, output_width=3, activation="tanh", init="scaled_normal",
                  sigma_w2=1.5, sigma_b2=0.1)
    W, b, x, _ = fg.mlp_trial_arrays(spec, seed=0, trials=2, batch=3)
    jac = mlp_jacobian(W, b, x, activation="tanh")
    assert jac.shape == (2, 5, 3)
    for t in range(2):
        Wt, bt, x0 = [w[t] for w in W], [v[t] for v in b], x[t, 0]
        fd = np.empty((5, 3))
        for i in range(5):
            e = np.zeros(5)
            e[i] = 1e-6
            fd[i] = (_forward(Wt, bt, x0 + e, np.tanh) - _forward(Wt, bt, x0 - e, np.tanh)) / 2e-6
        np.testing.assert_allclose(jac[t], fd, rtol=1e-7, atol=1e-9)


def test_jacobian_and_singular_values_match_torch():
    torch = pytest.importorskip("torch")
    spec = fg.MLP(depth=5, width=8, activation="relu", init="he_normal", sigma_b=0.1)
    W, b, x, _ = fg.mlp_trial_arrays(spec, seed=4, trials=3, batch=2)
    jac = mlp_jacobian(W, b, x, activation="relu")
    sv = spectrum(spec, trials=3, batch=2, seed=4).singular_values  # run's trials, first input of batch 2
    for t in range(3):
        Wt = [torch.tensor(w[t]) for w in W]
        bt = [torch.tensor(v[t]) for v in b]

        def f(h, Wt=Wt, bt=bt):
            for w, v in zip(Wt, bt, strict=True):
                h = torch.relu(h @ w + v)
            return h

        want = torch.func.jacrev(f)(torch.tensor(x[t, 0]))  # (n_L, n_0): the transpose of fastgrad's
        np.testing.assert_allclose(jac[t], want.numpy().T, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(sv[t], torch.linalg.svdvals(want).numpy(), rtol=1e-10, atol=1e-13)


def test_linear_orthogonal_nets_are_isometries():
    spec = fg.MLP(depth=30, width=24, activation="linear", init="orthogonal")
    s = spectrum(spec, trials=20)
    np.testing.assert_allclose(s.singular_values, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.condition, 1.0, atol=1e-12)


def test_linear_gaussian_moments_are_the_exact_finite_width_ones():
    # Width 32, depth 8: E[lambda^2] = 10.39 exactly at this width (Fuss-Catalan's L + 1 = 9 at infinite width).
    s = spectrum(fg.MLP(depth=8, width=32, activation="linear", init="scaled_normal"), trials=1500)
    m = s.moments(level=0.999)
    want = theory.linear_gaussian_moments(8, 32)
    assert m["m1_low"] < want["m1"] < m["m1_high"]
    assert m["m2_low"] < want["m2"] < m["m2_high"]
    assert not m["m2_low"] < 9.0 < m["m2_high"]  # the finite width is resolved
    np.testing.assert_allclose(theory.linear_gaussian_moments(1, 32)["m2"], 2 + 1 / 32)


def test_orthogonal_weights_tighten_the_spectrum_at_the_edge_of_chaos():
    # Width 256, depth 8, at the edge (relu: sigma_w^2 = 2; tanh: chi_1 = 1 at sigma_b^2 = 0.05). m1 is the mean-field
    # value within its interval; m2 is within 10% of the infinite-width theory (measured 3-7% above it at this
    # width: 200 trials gave relu 18.1 vs 17.0 Gaussian, 9.50 vs 9.00 orthogonal; tanh 2.90 vs 2.69, 1.042 vs 1.001).
    b2 = 0.05
    w2 = theory.critical_sigma_w2("tanh", b2)
    got = {}
    for act, s_w2, s_b2 in (("relu", 2.0, 0.0), ("tanh", w2, b2)):
        for weights in ("gaussian", "orthogonal"):
            kw = {"init": "scaled_normal", "sigma_w2": s_w2} if weights == "gaussian" else {
                "init": "orthogonal", "gain": float(np.sqrt(s_w2))}
            s = spectrum(fg.MLP(depth=8, width=256, activation=act, sigma_b2=s_b2, **kw), trials=60)
            m = s.moments(level=0.999)
            want = theory.spectrum_moments(act, s_w2, s_b2, 8, weights)
            assert m["m1_low"] < want["m1"] < m["m1_high"], (act, weights, m, want)
            assert abs(m["m2"] / want["m2"] - 1) < 0.10, (act, weights, m, want)
            got[act, weights] = m["var"] / m["m1"] ** 2
    for act in ("relu", "tanh"):
        assert got[act, "orthogonal"] < 0.6 * got[act, "gaussian"]


def test_spectrum_is_reproducible_and_refuses_bad_input():
    spec = fg.MLP(depth=6, width=10, init="orthogonal", activation="tanh")
    a = spectrum(spec, trials=7, threads=1)
    b = spectrum(spec, trials=7, threads=2, chunk=3)
    np.testing.assert_array_equal(a.singular_values, b.singular_values)
    c = spectrum(spec, trials=3, dtype="float32")
    assert c.singular_values.dtype == np.float32
    np.testing.assert_allclose(c.singular_values, a.singular_values[:3], rtol=1e-4)
    frame = a.to_frame()
    assert list(frame.columns) == ["trial", "max_singular_value", "condition", "mean_squared", "var_squared"]
    with pytest.raises(ValueError, match="step: applies to recurrent models"):
        spectrum(spec, trials=2, step=2)
    for other in (fg.Chain(depth=3),):
        with pytest.raises(ValueError, match="spec: spectra are computed for"):
            spectrum(other, trials=2)
    with pytest.raises(ValueError, match="trials"):
        spectrum(spec, trials=0)


def test_isometry_figures_are_readable():
    from fastgrad import plot
    from fastgrad.studies.isometry import isometry_study
    from tests.test_plot import check_readable

    spectra, table = isometry_study(width=8, depths=(2, 4), trials=4)
    assert len(table) == 12 and set(table["weights"]) == {"gaussian", "orthogonal"}
    lin = table[(table.net == "linear") & (table.weights == "orthogonal")]
    np.testing.assert_allclose(lin["var_over_m1sq"], 0.0, atol=1e-12)  # every lambda is exactly 1
    for fig in (plot.spectral_density(spectra), plot.spectral_variance(table)):
        check_readable(fig)


@pytest.mark.parametrize("spec", [
    fg.RNN(steps=9, hidden=6, inputs=3, init="orthogonal", gain=1.1, sigma_b=0.2, jacobian=True),
    fg.LSTM(steps=9, hidden=6, inputs=3, init="orthogonal", forget_bias=1.0, jacobian=True),
    fg.GRU(steps=9, hidden=6, inputs=3, init="orthogonal", sigma_b=0.3, jacobian=True),
])
def test_recurrent_spectra_have_the_jacobian_norms_of_run(spec):
    # ||J||_F^2 = sum of s^2: the singular values at every step t agree with run()'s jacobian_norm (itself
    # tested against torch's jacobians), trial by trial.
    norms = fg.run(spec, trials=4, batch=3, seed=5).jacobian_norm
    for step in (1, 4, 9):
        sv = spectrum(spec, trials=4, batch=3, seed=5, step=step).singular_values
        np.testing.assert_allclose(np.sqrt((sv**2).sum(axis=1)), norms[:, step - 1], rtol=1e-12)


def test_vanilla_rnn_spectrum_matches_numpy():
    spec = fg.RNN(steps=7, hidden=5, inputs=2, activation="tanh", init="normal", gain=1.3, sigma_b=0.1)
    whh, wxh, b, x, _ = fg.rnn_trial_arrays(spec, seed=1, trials=3, batch=4)
    sv = spectrum(spec, trials=3, batch=4, seed=1, step=2).singular_values
    for t in range(3):
        h = np.zeros(5)
        derivs = []
        for s in range(7):
            z = h @ whh[t] + x[t, s, 0] @ wxh[t] + b[t]
            h = np.tanh(z)
            derivs.append(1 - h**2)
        jac = np.eye(5)  # dh_7/dh_2 = prod over steps 3..7 of W_hh diag(phi'(z_s)), row-vector convention
        for s in range(2, 7):
            jac = jac @ whh[t] @ np.diag(derivs[s])
        np.testing.assert_allclose(sv[t], np.linalg.svd(jac, compute_uv=False), rtol=1e-12)


def test_recurrent_isometries_and_zero_weight_cells():
    lin = spectrum(fg.RNN(steps=20, hidden=8, inputs=2, activation="linear", init="orthogonal"), trials=5, step=1)
    np.testing.assert_allclose(lin.singular_values, 1.0, atol=1e-12)
    gru = fg.GRU(steps=20, hidden=5, inputs=2, init="identity", gain=0.0, input_scale=0.0, update_bias=2.0)
    sv = spectrum(gru, trials=3, step=6).singular_values  # dh_20/dh_6 = diag(z)^14, z = sigmoid(2)
    np.testing.assert_allclose(sv, (1 / (1 + np.exp(-2.0))) ** 14, rtol=1e-12)
    with pytest.raises(ValueError, match="step: must be 1..20"):
        spectrum(gru, trials=2, step=21)


def test_overflowing_jacobians_are_recorded_as_nan():
    # sigma_w = 1e120 with linear layers: J's entries reach ~1e360 at depth 3, inf in float64.
    spec = fg.MLP(depth=3, width=4, activation="linear", init="normal", sigma_w=1e120)
    s = spectrum(spec, trials=3)
    assert np.isnan(s.singular_values).all() and s.trials == 3
    ok = spectrum(fg.MLP(depth=3, width=4, activation="linear", init="normal", sigma_w=1e50), trials=3)
    assert np.isfinite(ok.singular_values).all()


@pytest.mark.parametrize("norm", [None, "layer"])
def test_residual_spectrum_matches_torch(norm):
    torch = pytest.importorskip("torch")
    spec = fg.ResMLP(depth=5, width=6, input_width=4, output_width=3, activation="tanh", init="scaled_normal",
                     sigma_w2=1.2, sigma_b2=0.1, residual=0.7, norm=norm)
    W, b, x, _ = fg.mlp_trial_arrays(spec, seed=2, trials=3, batch=5)
    sv = spectrum(spec, trials=3, batch=5, seed=2).singular_values
    for t in range(3):
        Wt = [torch.tensor(w[t]) for w in W]
        bt = [torch.tensor(v[t]) for v in b]

        def f(h, Wt=Wt, bt=bt):
            for l, (w, v) in enumerate(zip(Wt, bt, strict=True)):
                if 0 < l < len(Wt) - 1:
                    u = torch.nn.functional.layer_norm(h, h.shape, eps=1e-5) if norm else h
                    h = h + 0.7 * torch.tanh(u @ w + v)
                else:
                    h = torch.tanh(h @ w + v)
            return h

        want = torch.linalg.svdvals(torch.func.jacrev(f)(torch.tensor(x[t, 0]))).numpy()
        np.testing.assert_allclose(sv[t], want, rtol=1e-10, atol=1e-13)


def test_sweeps_store_the_spectrum_summaries_of_their_own_trials(tmp_path):
    from fastgrad.cli import main

    store = tmp_path / "iso"
    assert main(["sweep", "--model", "mlp", "--store", str(store), "--trials", "5", "--batch", "3", "--spectrum",
                 "--quiet", "--depth", "4", "--width", "6", "--init", "orthogonal,scaled_normal",
                 "--activation", "tanh"]) == 0
    frame = fg.load(store)
    for init in ("orthogonal", "scaled_normal"):
        cell = frame[(frame.init == init) & (frame.layer == 1)].sort_values("trial")
        s = spectrum(fg.MLP(depth=4, width=6, init=init, activation="tanh"), trials=5, batch=3)
        np.testing.assert_array_equal(cell["sv_max"].to_numpy(), s.max_singular_value)
        np.testing.assert_array_equal(cell["lambda_var"].to_numpy(), s.var_squared)
    from fastgrad.report import plot_store

    paths = plot_store(store)
    assert store / "figures" / "spectrum_summary.png" in paths
    with pytest.raises(ValueError, match="spectrum: Jacobian spectra"):
        fg.sweep("chain", {"depth": 3}, trials=2, store=tmp_path / "c", spectrum=True, progress=False)


def test_fuss_catalan_density_has_the_fuss_catalan_moments():
    # Integrated over log10(lambda): mass 1, E[lambda] = 1, E[lambda^2] = L + 1 (the moments the data tests above use).
    for depth in (1, 4, 32):
        lx, dens = theory.fuss_catalan_density(depth, points=20000)
        lam = 10.0**lx
        assert abs(np.trapezoid(dens, lx) - 1) < 1e-3  # (the mass below lambda = 1e-300 is left out)
        assert abs(np.trapezoid(dens * lam, lx) - 1) < 5e-4
        assert abs(np.trapezoid(dens * lam**2, lx) - (depth + 1)) < 5e-4 * (depth + 1)
    lx, _ = theory.fuss_catalan_density(1)
    np.testing.assert_allclose(10.0 ** lx.max(), 4.0, rtol=1e-9)  # Marchenko-Pastur's edge for one square layer


def test_linear_orthogonal_nets_have_no_length_mode():
    # J = sigma_w^L Q exactly: every singular value equal, as theory.length_mode's exact 1 says.
    spec = fg.MLP(depth=9, width=24, activation="linear", init="orthogonal", sigma_w2=1.7)
    sv = spectrum(spec, trials=6, batch=1).singular_values
    np.testing.assert_allclose(sv, 1.7**4.5, rtol=1e-12)
    np.testing.assert_allclose(theory.length_mode("linear", 1.7, 0.0, 9), 1.0, rtol=1e-12)


def test_length_mode_vectors_from_numpy():
    # J built in NumPy from each trial's arrays (column convention dh_L/dh_0). The smallest singular value's
    # output-side vector lies along h_L (|cos| 0.79-0.95 at width 128, depths 32-64, sigma_b^2 1e-4 and
    # 1e-3; two random directions: 0.07), and its input-side vector is J^{-1} h_L normalised, the input
    # change that only rescales h_L (|cos| > 0.9999 there).
    b2, depth, width, trials = 1e-3, 24, 48, 6
    w2 = theory.critical_sigma_w2("tanh", b2)
    spec = fg.MLP(depth=depth, width=width, activation="tanh", init="orthogonal", sigma_w2=w2, sigma_b2=b2)
    W, b, x, _ = fg.mlp_trial_arrays(spec, seed=0, trials=trials, batch=1)
    sv = spectrum(spec, trials=trials, batch=1).singular_values
    for t in range(trials):
        h, jac = x[t, 0], np.eye(width)
        for l in range(depth):
            z = h @ W[l][t] + b[l][t]
            jac, h = ((1 - np.tanh(z) ** 2)[:, None] * W[l][t].T) @ jac, np.tanh(z)
        u, s, vt = np.linalg.svd(jac)
        np.testing.assert_allclose(s, sv[t], rtol=1e-7, atol=1e-12 * s[0])
        assert s[-1] < 0.1 * s[-2]  # one value below the rest (here 0.005-0.034 of the next)
        e_out = h / np.linalg.norm(h)
        assert abs(u[:, -1] @ e_out) > 0.7  # here 0.83-0.93
        rescale = np.linalg.solve(jac, e_out)
        assert abs(vt[-1] @ rescale) / np.linalg.norm(rescale) > 0.999  # here > 0.99999

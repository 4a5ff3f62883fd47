"""The RNN engine: NumPy reference, finite differences, exact cases, reproducibility."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad.activations import NAMES
from tests import naive

STATS = ("grad_h", "grad_whh_step", "q", "grad_whh", "grad_wxh", "grad_b")


def random_rnn(rng, trials, steps, batch, d, n, loss, dtype=np.float64, gain=1.0):
    whh = rng.normal(0, gain / np.sqrt(n), (trials, n, n))
    wxh = rng.normal(0, 1 / np.sqrt(d), (trials, d, n))
    b = rng.normal(0, 0.2, (trials, n))
    x = rng.normal(size=(trials, steps, batch, d))
    y = rng.normal(size=(trials, steps, batch, n) if loss == "all" else (trials, batch, n))
    return [a.astype(dtype) for a in (whh, wxh, b, x, y)]


@given(
    steps=st.integers(1, 8),
    batch=st.integers(1, 4),
    d=st.integers(1, 4),
    n=st.integers(1, 6),
    activation=st.sampled_from(NAMES),
    loss=st.sampled_from(["last", "all", "probe"]),
    seed=st.integers(0, 2**31),
)
def test_float64_matches_numpy_reference(steps, batch, d, n, activation, loss, seed):
    arrays = random_rnn(np.random.default_rng(seed), 2, steps, batch, d, n, loss)
    got = fg.rnn_backprop(*arrays, activation=activation, loss=loss)
    ref = naive.rnn(*arrays, activation, loss)
    for k in STATS:
        assert getattr(got, k).dtype == np.float64
        # grad_whh_step at step 1 is exactly 0 (h_0 = 0); atol covers only that.
        np.testing.assert_allclose(getattr(got, k), ref[k], rtol=1e-10, atol=1e-300, err_msg=k)


@pytest.mark.parametrize("loss", ["last", "all", "probe"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus"])
def test_finite_differences(loss, activation):
    rng = np.random.default_rng(3)
    whh, wxh, b, x, y = random_rnn(rng, 1, 4, 3, 2, 3, loss)
    got = fg.rnn_backprop(whh, wxh, b, x, y, activation=activation, loss=loss)
    params = {"grad_whh": whh[0].copy(), "grad_wxh": wxh[0].copy(), "grad_b": b[0].copy()}
    eps = 1e-6

    def loss_fn():
        return naive.rnn_loss(params["grad_whh"], params["grad_wxh"], params["grad_b"], x[0], y[0], activation, loss)

    for name, p in params.items():
        fd = naive.central_difference(loss_fn, p, eps)
        np.testing.assert_allclose(getattr(got, name)[0], np.linalg.norm(fd), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.1])
def test_exact_geometric_decay_with_scaled_orthogonal_weights(rho):
    # Zero inputs and biases, h_0 = 0, tanh: every z_t = 0, phi'(0) = 1, so the
    # backward map is multiplication by rho * Q^T and norms scale by rho exactly.
    rng = np.random.default_rng(0)
    n, steps, batch = 6, 30, 3
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    whh = (rho * q)[None]
    x = np.zeros((1, steps, batch, 2))
    y = rng.normal(size=(1, batch, n))
    res = fg.rnn_backprop(whh, np.zeros((1, 2, n)), np.zeros((1, n)), x, y, loss="last")
    expected = res.grad_h[0, -1] * rho ** (steps - 1 - np.arange(steps))
    np.testing.assert_allclose(res.grad_h[0], expected, rtol=1e-12)


def test_float32_keeps_the_vanishing_tail():
    # Gain 0.5 and saturating inputs: grad_h falls to ~1e-31 over 40 steps, still
    # a normal float32. float32 must resolve that tail as float64 does: the
    # derivatives come from z (1 - tanh^2 is 0 in float32 for |z| > 9) and the
    # norms square in float64 (the float32 square of 1e-20 is 0).
    spec = fg.RNN(steps=40, hidden=16, inputs=4, init="orthogonal", gain=0.5, input_scale=4.0)
    r64 = fg.run(spec, trials=4, batch=4, dtype="float64")
    r32 = fg.run(spec, trials=4, batch=4, dtype="float32")
    assert r32.grad_h.dtype == np.float32
    assert np.all(r64.grad_h[:, 0] < 1e-25) and np.all(r64.grad_h[:, 0] > 1e-36)
    np.testing.assert_allclose(r32.grad_h, r64.grad_h, rtol=1e-4)


def test_generated_trials_equal_explicit_arrays():
    for init in ("normal", "orthogonal", "identity", "spectral"):
        spec = fg.RNN(steps=6, hidden=5, inputs=3, init=init, gain=1.2, sigma_b=0.1, loss="all")
        res = fg.run(spec, trials=3, batch=2, seed=4)
        arrays = fg.rnn_trial_arrays(spec, seed=4, trials=3, batch=2)
        ref = naive.rnn(*arrays, "tanh", "all")
        for k in STATS:
            np.testing.assert_allclose(getattr(res, k), ref[k], rtol=1e-12, atol=1e-300, err_msg=f"{init} {k}")


def test_recurrent_inits():
    for init, check in (
        ("orthogonal", lambda w: np.allclose(w @ w.T, 1.44 * np.eye(8))),
        ("identity", lambda w: np.allclose(w, 1.2 * np.eye(8))),
        ("spectral", lambda w: np.isclose(np.max(np.abs(np.linalg.eigvals(w))), 1.2)),
    ):
        whh = fg.rnn_trial_arrays(fg.RNN(steps=2, hidden=8, inputs=2, init=init, gain=1.2), 0, 2, 1)[0]
        assert check(whh[0]) and check(whh[1]), init
    whh = fg.rnn_trial_arrays(fg.RNN(steps=2, hidden=200, inputs=2, gain=1.5), 0, 1, 1)[0]
    assert abs(whh.std() - 1.5 / np.sqrt(200)) < 0.02 * 1.5 / np.sqrt(200)


def test_reproducible_across_threads_and_chunks():
    spec = fg.RNN(steps=10, hidden=6, inputs=2, gain=1.3)
    a = fg.run(spec, trials=200, batch=3, seed=2, threads=2)
    b = fg.run(spec, trials=200, batch=3, seed=2, threads=1, chunk=17)
    c = fg.run(spec, trials=7, batch=3, seed=2)
    for k in STATS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        np.testing.assert_array_equal(getattr(a, k)[:7], getattr(c, k))


def test_overflow_is_recorded():
    spec = fg.RNN(steps=200, hidden=8, inputs=2, activation="relu", init="identity", gain=3.0, loss="probe")
    res = fg.run(spec, trials=3, batch=2, dtype="float32")
    assert not np.all(np.isfinite(res.grad_h))
    assert res.nonfinite()["grad_whh"] == 3


def test_bad_input():
    rng = np.random.default_rng(0)
    whh, wxh, b, x, y = random_rnn(rng, 2, 3, 2, 2, 4, "last")
    with pytest.raises(ValueError, match="W_hh"):
        fg.rnn_backprop(whh[:, :, :3], wxh, b, x, y)
    with pytest.raises(ValueError, match="W_xh"):
        fg.rnn_backprop(whh, wxh[:, :1], b, x, y)
    with pytest.raises(ValueError, match="y"):
        fg.rnn_backprop(whh, wxh, b, x, y, loss="all")
    with pytest.raises(ValueError, match="loss"):
        fg.rnn_backprop(whh, wxh, b, x, y, loss="first")
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x"):
        fg.rnn_backprop(whh, wxh, b, bad, y)
    with pytest.raises(ValueError, match="steps"):
        fg.RNN(steps=0, hidden=3, inputs=1)
    with pytest.raises(ValueError, match="init"):
        fg.RNN(steps=3, hidden=3, inputs=1, init="xavier_normal")
    with pytest.raises(ValueError, match="hidden"):
        fg.RNN(steps=3, hidden=-2, inputs=1)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus"])
def test_jacobian_matches_forward_accumulation(activation):
    whh, wxh, b, x, y = random_rnn(np.random.default_rng(5), 3, 7, 2, 3, 5, "last", gain=1.3)
    got = fg.rnn_backprop(whh, wxh, b, x, y, activation=activation, jacobian=True)
    assert got.jacobian_norm.shape == (3, 7) and got.jacobian_norm.dtype == np.float64
    np.testing.assert_allclose(got.jacobian_norm, naive.rnn_jacobian(whh, wxh, b, x, activation), rtol=1e-10)
    assert "jacobian_norm" not in fg.rnn_backprop(whh, wxh, b, x, y, activation=activation).arrays


def test_jacobian_matches_finite_differences():
    # dh_S/dh_t by perturbing h_t of the first sequence and running on to step S.
    whh, wxh, b, x, y = random_rnn(np.random.default_rng(6), 1, 6, 2, 2, 4, "last", gain=1.5)
    got = fg.rnn_backprop(whh, wxh, b, x, y, jacobian=True).jacobian_norm[0]
    w, u, c, xs = whh[0], wxh[0], b[0], x[0, :, 0]
    h = np.zeros(4)
    for t in range(6):  # h is h_{t+1} after this step; the Jacobian of h_S with respect to it
        h = np.tanh(h @ w + xs[t] @ u + c)
        jac = np.zeros((4, 4))
        for i in range(4):
            e = np.zeros(4)
            e[i] = 1e-6
            up = naive.rnn_final_state(w, u, c, xs, h + e, t + 1)
            down = naive.rnn_final_state(w, u, c, xs, h - e, t + 1)
            jac[i] = (up - down) / 2e-6
        np.testing.assert_allclose(got[t], np.linalg.norm(jac), rtol=1e-7, err_msg=f"h_{t + 1}")


def test_jacobian_obeys_the_contraction_bound():
    # |tanh'| <= 1, so ||dh_S/dh_t||_F <= ||I||_F * sigma_max(W_hh)^(S - t): vanishing
    # is guaranteed when sigma_max < 1. Exact (= bound) with zero inputs and W = rho Q.
    rng = np.random.default_rng(7)
    n, steps = 6, 25
    whh, wxh, b, x, y = random_rnn(rng, 4, steps, 2, 3, n, "last")
    sigma = np.linalg.norm(whh, ord=2, axis=(1, 2))
    whh *= (0.9 / sigma)[:, None, None]
    got = fg.rnn_backprop(whh, wxh, b, x, y, jacobian=True).jacobian_norm
    bound = np.sqrt(n) * 0.9 ** (steps - 1 - np.arange(steps))
    assert np.all(got <= bound * (1 + 1e-12))
    assert np.all(got[:, :-1] < bound[:-1])  # saturation makes it strict with random inputs
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    zero_x = np.zeros((1, steps, 2, 3))
    exact = fg.rnn_backprop((0.9 * q)[None], wxh[:1], np.zeros((1, n)), zero_x, y[:1], jacobian=True).jacobian_norm
    np.testing.assert_allclose(exact[0], bound, rtol=1e-12)


def test_jacobian_of_generated_trials():
    spec = fg.RNN(steps=12, hidden=6, inputs=3, gain=1.1, sigma_b=0.1, jacobian=True)
    a = fg.run(spec, trials=40, batch=3, seed=9, threads=2)
    b = fg.run(spec, trials=40, batch=3, seed=9, threads=1, chunk=7)
    np.testing.assert_array_equal(a.jacobian_norm, b.jacobian_norm)
    whh, wxh, bias, x, _ = fg.rnn_trial_arrays(spec, seed=9, trials=40, batch=3)
    np.testing.assert_allclose(a.jacobian_norm, naive.rnn_jacobian(whh, wxh, bias, x), rtol=1e-10)
    r32 = fg.run(spec, trials=40, batch=3, seed=9, dtype="float32")
    assert r32.jacobian_norm.dtype == np.float32
    np.testing.assert_allclose(r32.jacobian_norm, a.jacobian_norm, rtol=1e-4)
    assert "jacobian_norm" not in fg.run(fg.RNN(steps=12, hidden=6, inputs=3), trials=2, batch=3).arrays
    with pytest.raises(ValueError, match="jacobian"):
        fg.RNN(steps=2, hidden=2, inputs=1, jacobian="yes")
    with pytest.raises(ValueError, match="jacobian"):
        fg.rnn_backprop(whh, wxh, bias, x, x[:, 0, :, :1].repeat(6, axis=2), jacobian=1)


def test_recurrent_inits_match_numpy_on_the_stream():
    # W_hh is tensor 2 of each trial: orthogonal = gain * Q of NumPy's QR (diag(R) > 0),
    # spectral = gain * G / max|eig(G)| of the same Gaussian G.
    for init in ("orthogonal", "spectral"):
        whh = fg.rnn_trial_arrays(fg.RNN(steps=2, hidden=9, inputs=2, init=init, gain=0.8), 3, 4, 1)[0]
        for trial in range(4):
            g = fg.rng.normals(3, trial, 2, 81).reshape(9, 9)
            if init == "orthogonal":
                q, r = np.linalg.qr(g)
                expected = 0.8 * q * np.sign(np.diag(r))
            else:
                expected = 0.8 * g / np.max(np.abs(np.linalg.eigvals(g)))
            np.testing.assert_allclose(whh[trial], expected, rtol=0, atol=1e-13, err_msg=init)

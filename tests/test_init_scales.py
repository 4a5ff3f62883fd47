"""Every scale argument means what it says for every init, or is refused naming the one that counts.

Trial k draws the same standard normals under every init and scale (common random numbers),
so an accepted scale is checked exactly against NumPy: the weights of ``init="normal",
sigma_w=1`` are the standard normals z, and every other Gaussian init must draw its own
closed-form standard deviation times the same z.
"""

import math

import numpy as np
import pytest

import fastgrad as fg

DIMS = (7, 5, 5, 3)  # n_0 .. n_L: a rectangular first and last layer, a square middle one
COMMON = {"depth": 3, "width": 5, "input_width": 7, "output_width": 3}


def weights(spec_type=fg.MLP, **kw):
    W, b, _, _ = fg.mlp_trial_arrays(spec_type(**COMMON, **kw), seed=4, trials=2, batch=1)
    return W, b


def standard_normals():
    return weights(init="normal", sigma_w=1.0)[0]


# init, its arguments, the standard deviation of layer l's weights as NumPy computes it
GAUSSIAN = [
    ("normal", {"sigma_w": 2.5}, lambda fi, fo: 2.5),
    ("normal", {"sigma_w2": 0.25}, lambda fi, fo: 0.5),
    ("scaled_normal", {}, lambda fi, fo: 1 / np.sqrt(fi)),
    ("scaled_normal", {"sigma_w2": 1.5}, lambda fi, fo: np.sqrt(1.5 / fi)),
    ("scaled_normal", {"sigma_w": 2.0}, lambda fi, fo: 2.0 / np.sqrt(fi)),
    ("xavier_normal", {}, lambda fi, fo: np.sqrt(2 / (fi + fo))),
    ("xavier_normal", {"gain": 3.0}, lambda fi, fo: 3 * np.sqrt(2 / (fi + fo))),
    ("he_normal", {"gain": 0.5}, lambda fi, fo: 0.5 * np.sqrt(2 / fi)),
    ("lecun_normal", {"gain": 2.0}, lambda fi, fo: 2 * np.sqrt(1 / fi)),
]


@pytest.mark.parametrize("init, kw, std", GAUSSIAN)
def test_gaussian_inits_scale_the_same_normals_by_their_formula(init, kw, std):
    z = standard_normals()
    W, _ = weights(init=init, **kw)
    for l in range(3):
        np.testing.assert_allclose(W[l], std(DIMS[l], DIMS[l + 1]) * z[l], rtol=1e-15, atol=0)


@pytest.mark.parametrize("init, bound", [("xavier_uniform", lambda fi, fo: np.sqrt(6 / (fi + fo))),
                                         ("he_uniform", lambda fi, fo: np.sqrt(6 / fi))])
def test_uniform_inits_scale_by_gain(init, bound):
    one, _ = weights(init=init)
    two, _ = weights(init=init, gain=2.0)
    for l in range(3):
        np.testing.assert_allclose(two[l], 2.0 * one[l], rtol=1e-15, atol=0)
        assert np.abs(two[l]).max() <= 2.0 * bound(DIMS[l], DIMS[l + 1])
        assert np.abs(two[l]).max() > 1.0 * bound(DIMS[l], DIMS[l + 1])  # the gain widened the draws


def test_orthogonal_weights_at_variance_sigma_w2():
    W, _ = weights(init="orthogonal", sigma_w2=1.5)
    square = W[1]  # (trials, 5, 5)
    for t in range(2):
        np.testing.assert_allclose(square[t].T @ square[t], 1.5 * np.eye(5), atol=1e-13)
        np.testing.assert_allclose(W[0][t].T @ W[0][t], 1.5 * np.eye(5), atol=1e-13)  # (7, 5): orthonormal columns
        np.testing.assert_allclose(W[2][t].T @ W[2][t], 1.5 * np.eye(3), atol=1e-13)  # (5, 3): orthonormal columns
    wide = fg.mlp_trial_arrays(fg.MLP(depth=1, width=5, input_width=3, init="orthogonal", sigma_w2=1.5), seed=4,
                               trials=1, batch=1)[0][0][0]  # (3, 5): orthonormal rows
    np.testing.assert_allclose(wide @ wide.T, 1.5 * np.eye(3), atol=1e-13)
    # Q's entries have variance 1/n: sqrt(sigma_w^2) Q has scaled_normal's second moment, sigma_w^2 / n.
    np.testing.assert_allclose(np.mean(square**2), 1.5 / 5, rtol=1e-12)


def test_orthogonal_sigma_w_and_its_synonym_gain_are_bitwise_equal():
    by_gain, _ = weights(init="orthogonal", gain=1.3)
    by_sigma, _ = weights(init="orthogonal", sigma_w=1.3)
    unit, _ = weights(init="orthogonal")
    for l in range(3):
        np.testing.assert_array_equal(by_gain[l], by_sigma[l])
        np.testing.assert_allclose(by_sigma[l], 1.3 * unit[l], rtol=1e-15, atol=0)
    spec = {"depth": 4, "width": 6, "init": "orthogonal", "sigma_b": 0.1}
    a = fg.run(fg.MLP(gain=1.3, **spec), trials=3, batch=2)
    b = fg.run(fg.MLP(sigma_w=1.3, **spec), trials=3, batch=2)
    for name in ("grad_w", "grad_b", "delta", "q"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("kw", [{"sigma_w": 1.5}, {"sigma_w2": 2.25}, {"gain": 1.5}])
def test_identity_is_sigma_w_times_i(kw):
    W, _ = weights(init="identity", **kw)
    for l in range(3):
        want = 1.5 * np.eye(DIMS[l], DIMS[l + 1])
        for t in range(2):
            np.testing.assert_array_equal(W[l][t], want)


def test_constant_weights_and_biases():
    W, b = weights(init="constant", value=0.3, bias_init="constant", bias_value=-0.2)
    assert all((w == 0.3).all() for w in W) and all((v == -0.2).all() for v in b)
    W, b = weights(init="constant", bias_init="constant")  # defaults 0, 0
    assert all((w == 0).all() for w in W) and all((v == 0).all() for v in b)


def test_bias_scales():
    _, b0 = weights(init="normal", sigma_b=1.0)
    _, b = weights(init="normal", sigma_b2=0.09)
    for l in range(3):
        np.testing.assert_allclose(b[l], 0.3 * b0[l], rtol=1e-15, atol=0)
    _, b = weights(init="normal", sigma_b2=0.0)  # no bias_init: zeros
    assert all((v == 0).all() for v in b)


REFUSED = [
    # init, the arguments, the argument named first, what the message must point to
    ("normal", {"gain": 2.0}, "gain", "sigma_w"),
    ("scaled_normal", {"gain": 2.0}, "gain", "sigma_w"),
    ("normal", {"value": 0.1}, "value", "sigma_w"),
    ("orthogonal", {"value": 0.1}, "value", "sigma_w"),
    ("orthogonal", {"sigma_w": 1.0, "gain": 1.0}, "sigma_w, gain", "not both"),
    ("orthogonal", {"sigma_w2": 1.5, "gain": 1.2}, "sigma_w2, gain", "not both"),
    ("identity", {"sigma_w": 1.0, "gain": 2.0}, "sigma_w, gain", "not both"),
    ("constant", {"sigma_w": 1.0}, "sigma_w", "value"),
    ("constant", {"sigma_w2": 1.0}, "sigma_w2", "value"),
    ("constant", {"gain": 1.0}, "gain", "value"),
    *[(init, {arg: 2.0}, arg, "gain.*scaled_normal.*sigma_w2")
      for init in ("xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "lecun_normal")
      for arg in ("sigma_w", "sigma_w2")],
    *[(init, {"value": 0.5}, "value", "gain")
      for init in ("xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "lecun_normal")],
]


@pytest.mark.parametrize("spec_type", [fg.MLP, fg.ResMLP])
@pytest.mark.parametrize("init, kw, name, counts", REFUSED)
def test_a_scale_the_init_does_not_use_is_refused(spec_type, init, kw, name, counts):
    with pytest.raises(ValueError, match=f"^{name}: .*{counts}"):
        spec_type(**COMMON, init=init, **kw)


@pytest.mark.parametrize("spec_type", [fg.MLP, fg.ResMLP])
@pytest.mark.parametrize("kw, name", [
    ({"bias_init": "zeros", "sigma_b": 0.1}, "sigma_b"),
    ({"bias_init": "zeros", "sigma_b2": 0.0}, "sigma_b2"),
    ({"bias_init": "constant", "bias_value": 0.2, "sigma_b": 0.1}, "sigma_b"),
    ({"bias_value": 0.2}, "bias_value"),
    ({"bias_init": "normal", "sigma_b": 0.1, "bias_value": 0.2}, "bias_value"),
    ({"bias_init": "zeros", "bias_value": 0.0}, "bias_value"),
])
def test_a_bias_argument_the_bias_init_does_not_use_is_refused(spec_type, kw, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        spec_type(**COMMON, init="scaled_normal", **kw)


@pytest.mark.parametrize("kw, name", [
    ({"init": "constant", "sigma_w": 1.0}, "sigma_w"),
    ({"init": "constant", "sigma_w2": 1.0}, "sigma_w2"),
    ({"init": "normal", "value": 3.0}, "value"),
    ({"value": 3.0}, "value"),
    ({"bias_init": "centered", "init": "constant", "sigma_b": 1.0}, "sigma_b"),
    ({"bias_init": "constant", "sigma_b2": 1.0}, "sigma_b2"),
    ({"bias_value": 0.3}, "bias_value"),
    ({"bias_init": "centered", "init": "constant", "bias_value": 0.3}, "bias_value"),
])
def test_chain_refusals(kw, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        fg.Chain(depth=3, **kw)


def test_chain_scales():
    w1, b1, _, _ = fg.chain_trial_arrays(fg.Chain(depth=4, sigma_w=1.0, sigma_b=1.0), seed=2, trials=3)
    w, b, _, _ = fg.chain_trial_arrays(fg.Chain(depth=4, sigma_w2=4.0, sigma_b2=0.25), seed=2, trials=3)
    np.testing.assert_array_equal(w, 2.0 * w1)
    np.testing.assert_array_equal(b, 0.5 * b1)
    spec = fg.Chain(depth=4, init="constant", bias_init="constant")
    assert spec.value == 100.0 and spec.bias_value == 0.0  # the defaults, held by the spec
    w, b, _, _ = fg.chain_trial_arrays(spec, seed=2, trials=3)
    assert (w == 100.0).all() and (b == 0.0).all()
    w, b, _, _ = fg.chain_trial_arrays(fg.Chain(depth=4, init="constant", value=-2.0, bias_init="constant",
                                                bias_value=0.5), seed=2, trials=3)
    assert (w == -2.0).all() and (b == 0.5).all()
    # The run draws the same numbers as the arrays: its |dC/db| is the explicit routine's on them.
    res = fg.run(spec, trials=3)
    ref = fg.chain_backprop(*fg.chain_trial_arrays(spec, seed=0, trials=3), activation=spec.activation)
    np.testing.assert_allclose(res.grad_b, np.abs(ref), rtol=1e-12)


RECURRENT = [
    (fg.RNN, {"steps": 2, "hidden": 6, "inputs": 2}),
    (fg.LSTM, {"steps": 2, "hidden": 6, "inputs": 2}),
    (fg.GRU, {"steps": 2, "hidden": 6, "inputs": 2}),
]


def recurrent_weights(spec_type, size, **kw):
    spec = spec_type(**size, **kw)
    if spec_type is fg.RNN:
        whh, _, b, _, _ = fg.rnn_trial_arrays(spec, seed=1, trials=2, batch=1)
        return whh[:, None], b  # (T, 1 block, n, n)
    arrays = fg.gated_trial_arrays(spec, seed=1, trials=2, batch=1)
    n = size["hidden"]
    wh = arrays[0]
    return np.stack([wh[:, :, k * n:(k + 1) * n] for k in range(spec.GATES)], axis=1), arrays[2]


@pytest.mark.parametrize("spec_type, size", RECURRENT)
def test_gain_plays_sigma_w_for_every_recurrent_init(spec_type, size):
    n = size["hidden"]
    one, _ = recurrent_weights(spec_type, size, init="normal", gain=1.0)
    two, _ = recurrent_weights(spec_type, size, init="normal", gain=2.0)
    np.testing.assert_allclose(two, 2.0 * one, rtol=1e-15, atol=0)  # N(0, gain^2 / n): scaled_normal at sigma_w
    np.testing.assert_allclose(np.std(one), 1 / np.sqrt(n), rtol=0.25)
    w, _ = recurrent_weights(spec_type, size, init="orthogonal", gain=1.2)
    for block in w.reshape(-1, n, n):
        np.testing.assert_allclose(block.T @ block, 1.44 * np.eye(n), atol=1e-13)
    w, _ = recurrent_weights(spec_type, size, init="identity", gain=0.7)
    for block in w.reshape(-1, n, n):
        np.testing.assert_array_equal(block, 0.7 * np.eye(n))
    w, _ = recurrent_weights(spec_type, size, init="spectral", gain=0.9)
    for block in w.reshape(-1, n, n):
        assert math.isclose(np.abs(np.linalg.eigvals(block)).max(), 0.9, rel_tol=1e-12)


@pytest.mark.parametrize("spec_type, size", RECURRENT)
@pytest.mark.parametrize("kw, name", [
    ({"bias_init": "zeros", "sigma_b": 0.1}, "sigma_b"),
    ({"bias_init": "constant", "sigma_b2": 0.1}, "sigma_b2"),
    ({"bias_value": 0.3}, "bias_value"),
    ({"bias_init": "normal", "sigma_b": 0.1, "bias_value": 0.3}, "bias_value"),
])
def test_recurrent_bias_refusals(spec_type, size, kw, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        spec_type(**size, **kw)


@pytest.mark.parametrize("spec_type, size", RECURRENT)
def test_recurrent_bias_scales(spec_type, size):
    _, b1 = recurrent_weights(spec_type, size, sigma_b=1.0)
    _, b = recurrent_weights(spec_type, size, sigma_b2=0.04)
    np.testing.assert_allclose(b, 0.2 * b1, rtol=1e-15, atol=0)
    _, b = recurrent_weights(spec_type, size, bias_init="constant", bias_value=0.25)
    if spec_type is fg.LSTM:  # the forget gate's block is then set to forget_bias (0)
        n = size["hidden"]
        b = np.delete(b, np.s_[n:2 * n], axis=1)
    elif spec_type is fg.GRU:  # the update gate's b_ih block is set to update_bias (0)
        n = size["hidden"]
        b = np.delete(b, np.s_[n:2 * n], axis=1)
    assert (b == 0.25).all()

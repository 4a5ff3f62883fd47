"""The MLP engine against the NumPy reference, finite differences and itself."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad.activations import NAMES
from tests import naive

METRICS = ("grad_w", "grad_b", "delta", "q")


def random_net(rng, dims, trials, batch, dtype=np.float64, scale=1.0):
    W = [rng.normal(0, scale / np.sqrt(dims[l]), (trials, dims[l], dims[l + 1])).astype(dtype)
         for l in range(len(dims) - 1)]
    b = [rng.normal(0, 0.3, (trials, dims[l + 1])).astype(dtype) for l in range(len(dims) - 1)]
    x = rng.normal(size=(trials, batch, dims[0])).astype(dtype)
    y = rng.normal(size=(trials, batch, dims[-1])).astype(dtype)
    return W, b, x, y


@given(
    dims=st.lists(st.integers(1, 9), min_size=2, max_size=6),
    trials=st.integers(1, 4),
    batch=st.integers(1, 5),
    activation=st.sampled_from(NAMES),
    loss=st.sampled_from(["mse", "probe"]),
    last=st.sampled_from([None, "linear", "sigmoid"]),
    seed=st.integers(0, 2**31),
)
def test_float64_matches_numpy_reference(dims, trials, batch, activation, loss, last, seed):
    W, b, x, y = random_net(np.random.default_rng(seed), dims, trials, batch)
    got = fg.mlp_backprop(W, b, x, y, activation=activation, loss=loss, last_activation=last)
    ref, _ = naive.mlp(W, b, x, y, activation, loss, last)
    for m in METRICS:
        assert getattr(got, m).dtype == np.float64
        np.testing.assert_allclose(getattr(got, m), ref[m], rtol=1e-10, atol=1e-300, err_msg=m)


@given(
    dims=st.lists(st.integers(1, 9), min_size=2, max_size=6),
    activation=st.sampled_from(NAMES),
    loss=st.sampled_from(["mse", "probe"]),
    seed=st.integers(0, 2**31),
)
def test_float32_close_to_float64_reference(dims, activation, loss, seed):
    # The float32 inputs, upcast, go through the float64 reference. Each layer adds
    # a few float32 roundings (eps 6e-8) per dot product of <= 9 terms, and the
    # backward pass compounds them over <= 5 layers; 1e-4 of the norm, per trial
    # and metric, bounds that with room for ill-conditioned draws (relu cut-offs).
    W, b, x, y = random_net(np.random.default_rng(seed), dims, 3, 4, np.float32)
    got = fg.mlp_backprop(W, b, x, y, activation=activation, loss=loss)
    up = [[a.astype(np.float64) for a in arr] for arr in (W, b)]
    ref, _ = naive.mlp(up[0], up[1], x.astype(np.float64), y.astype(np.float64), activation, loss)
    for m in METRICS:
        g = getattr(got, m)
        assert g.dtype == np.float32
        scale = np.max(np.abs(ref[m]), axis=1, keepdims=True) + 1e-30
        assert np.all(np.abs(g - ref[m]) <= 1e-4 * scale + 1e-30), m


@pytest.mark.parametrize("activation", NAMES)
@pytest.mark.parametrize("loss", ["mse", "probe"])
def test_finite_differences(activation, loss):
    rng = np.random.default_rng(7)
    dims = [3, 4, 5, 2]
    W, b, x, y = random_net(rng, dims, 1, 3)
    got = fg.mlp_backprop(W, b, x, y, activation=activation, loss=loss)
    w1 = [w[0].copy() for w in W]
    b1 = [v[0].copy() for v in b]
    eps = 1e-6

    def loss_fn():
        return naive.mlp_loss(w1, b1, x[0], y[0], activation, loss)

    for l in range(len(w1)):
        for params, stat in ((w1, "grad_w"), (b1, "grad_b")):
            fd = naive.central_difference(loss_fn, params[l], eps)
            np.testing.assert_allclose(getattr(got, stat)[0, l], np.linalg.norm(fd), rtol=1e-6, err_msg=f"{stat}[{l}]")


def test_generated_trials_equal_explicit_arrays():
    spec = fg.MLP(depth=4, width=6, activation="tanh", init="xavier_uniform", sigma_b=0.2, input_width=3,
                  output_width=2)
    res = fg.run(spec, trials=5, batch=4, seed=11)
    W, b, x, y = fg.mlp_trial_arrays(spec, seed=11, trials=5, batch=4)
    ref, _ = naive.mlp(W, b, x, y, "tanh", "mse")
    for m in METRICS:
        np.testing.assert_allclose(getattr(res, m), ref[m], rtol=1e-12, err_msg=m)


@pytest.mark.parametrize("init", ["normal", "scaled_normal", "xavier_normal", "he_normal", "he_uniform",
                                  "lecun_normal", "orthogonal", "identity", "constant"])
def test_every_init_runs_and_matches_reference(init):
    spec = fg.MLP(depth=3, width=5, activation="relu", init=init, value=0.3 if init == "constant" else None,
                  bias_init="constant",
                  bias_value=0.1, input_width=7, loss="probe")
    res = fg.run(spec, trials=3, batch=2, seed=3)
    W, b, x, y = fg.mlp_trial_arrays(spec, seed=3, trials=3, batch=2)
    ref, _ = naive.mlp(W, b, x, y, "relu", "probe")
    np.testing.assert_allclose(res.grad_w, ref["grad_w"], rtol=1e-12)


def test_initialiser_statistics():
    spec = fg.MLP(depth=2, width=64, init="orthogonal", gain=2.0, input_width=32)
    W, _, _, _ = fg.mlp_trial_arrays(spec, seed=0, trials=2, batch=1)
    w0 = W[0][0]  # (32, 64): orthonormal rows times the gain
    np.testing.assert_allclose(w0 @ w0.T, 4.0 * np.eye(32), atol=1e-12)
    w1 = W[1][0]
    np.testing.assert_allclose(w1.T @ w1, 4.0 * np.eye(64), atol=1e-12)
    spec = fg.MLP(depth=1, width=400, init="he_normal", input_width=300)
    W, _, _, _ = fg.mlp_trial_arrays(spec, seed=1, trials=1, batch=1)
    assert abs(W[0].std() - np.sqrt(2 / 300)) < 0.01 * np.sqrt(2 / 300)
    spec = fg.MLP(depth=1, width=400, init="xavier_uniform", input_width=300)
    W, _, _, _ = fg.mlp_trial_arrays(spec, seed=1, trials=1, batch=1)
    a = np.sqrt(6 / 700)
    assert W[0].max() < a and W[0].min() >= -a and abs(W[0].std() - a / np.sqrt(3)) < 0.01 * a


def test_common_random_numbers_across_init_scales():
    a = fg.mlp_trial_arrays(fg.MLP(depth=2, width=4, init="normal", sigma_w=1.0), 0, 2, 3)[0]
    b = fg.mlp_trial_arrays(fg.MLP(depth=2, width=4, init="scaled_normal", sigma_w=3.0), 0, 2, 3)[0]
    for wa, wb in zip(a, b, strict=False):
        np.testing.assert_allclose(wb, wa * 3.0 / 2.0, rtol=1e-15)


def test_float32_run_draws_in_float32_close_to_the_float64_trial():
    # float32 runs draw with float32 arithmetic (rng.normal_pair32): close to the float64
    # trial's draws, not bitwise their rounding.
    spec = fg.MLP(depth=2, width=5, init="he_normal")
    w64 = fg.mlp_trial_arrays(spec, 4, 3, 2, "float64")[0]
    w32 = fg.mlp_trial_arrays(spec, 4, 3, 2, "float32")[0]
    for a, b in zip(w64, w32, strict=False):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
        assert not np.array_equal(a.astype(np.float32), b)


def test_float64_trial_rounded_to_float32_runs_explicitly():
    # The documented route to "the float64 trial, rounded": its arrays, cast, run explicitly.
    spec = fg.MLP(depth=4, width=6, activation="tanh", init="scaled_normal", sigma_w=1.2, sigma_b=0.1, loss="probe")
    W, b, x, y = fg.mlp_trial_arrays(spec, 0, 3, 4, "float64")
    r32 = fg.mlp_backprop([w.astype(np.float32) for w in W], [v.astype(np.float32) for v in b],
                          x.astype(np.float32), y.astype(np.float32), activation="tanh", loss="probe")
    r64 = fg.run(spec, trials=3, batch=4)
    assert r32.grad_w.dtype == np.float32
    np.testing.assert_allclose(r32.grad_w, r64.grad_w, rtol=1e-4)


def test_reproducible_across_threads_chunks_and_trial_counts():
    spec = fg.MLP(depth=6, width=8, activation="tanh", init="scaled_normal", sigma_w=1.5, sigma_b=0.1)
    base = fg.run(spec, trials=1000, batch=4, seed=5, threads=2, chunk=1000)
    one = fg.run(spec, trials=1000, batch=4, seed=5, threads=1, chunk=37)
    small = fg.run(spec, trials=10, batch=4, seed=5, chunk=3)
    for m in METRICS:
        np.testing.assert_array_equal(getattr(base, m), getattr(one, m))
        np.testing.assert_array_equal(getattr(base, m)[:10], getattr(small, m))
    other_seed = fg.run(spec, trials=10, batch=4, seed=6)
    assert not np.array_equal(other_seed.grad_w, small.grad_w)


def test_overflow_is_recorded_not_raised():
    spec = fg.MLP(depth=100, width=8, activation="relu", init="constant", value=100.0)
    res = fg.run(spec, trials=4, batch=2, dtype="float32")
    assert res.grad_w.dtype == np.float32 and res.grad_w.shape == (4, 100)
    assert not np.all(np.isfinite(res.grad_w))
    assert res.nonfinite()["grad_w"] == 4
    assert np.isinf(res.q).any()


def test_result_metadata_and_frame():
    spec = fg.MLP(depth=3, width=4)
    res = fg.run(spec, trials=6, batch=2, seed=9, dtype="float32")
    assert (res.trials, res.batch, res.seed, res.dtype, res.depth) == (6, 2, 9, "float32", 3)
    assert res.version == fg.__version__ and res.spec == spec and res.run_seconds > 0
    frame = res.to_frame()
    assert len(frame) == 18 and list(frame.columns) == ["trial", "layer", *METRICS]
    assert res.per_layer == list(METRICS)
    np.testing.assert_array_equal(frame["grad_w"].to_numpy().reshape(6, 3), res.grad_w)


def test_orthogonal_init_is_the_q_of_numpy_qr_of_the_stream():
    # Layer l (0-based) draws W from tensor 2l + 2: the Q of NumPy's QR of that stream's
    # Gaussian (big x small) matrix, columns signed by diag(R), transposed for wide layers.
    spec = fg.MLP(depth=3, width=7, init="orthogonal", gain=1.5, input_width=4, output_width=9)
    W, _, _, _ = fg.mlp_trial_arrays(spec, seed=5, trials=3, batch=1)
    for trial in range(3):
        for l, (n_in, n_out) in enumerate(((4, 7), (7, 7), (7, 9))):
            big, small = max(n_in, n_out), min(n_in, n_out)
            q, r = np.linalg.qr(fg.rng.normals(5, trial, 2 * l + 2, big * small).reshape(big, small))
            q = 1.5 * q * np.sign(np.diag(r))
            np.testing.assert_allclose(W[l][trial], q if n_in >= n_out else q.T, rtol=0, atol=1e-13)


def test_cells_that_differ_only_in_scales_run_over_one_draw_and_equal_their_own_runs():
    from fastgrad import models
    from fastgrad.engine import run_cells

    shares_draws = models.named("mlp").shares_draws

    specs = [fg.MLP(depth=5, width=7, activation="tanh", init="scaled_normal", sigma_w2=w2, sigma_b2=b2,
                    loss="probe") for w2 in (0.5, 1.7) for b2 in (0.0, 0.05)]
    specs.append(fg.MLP(depth=5, width=7, activation="tanh", init="scaled_normal", sigma_w=1.1, loss="probe"))
    for dtype in ("float64", "float32"):
        got = run_cells(specs, trials=23, batch=3, seed=4, dtype=dtype, chunk=7)
        for spec, res in zip(specs, got, strict=True):
            ref = fg.run(spec, trials=23, batch=3, seed=4, dtype=dtype)
            for k in ref.arrays:
                assert np.array_equal(ref.arrays[k], res.arrays[k]), (dtype, k)  # bit for bit
    assert not shares_draws([specs[0], fg.MLP(depth=5, width=7, activation="relu", init="scaled_normal")])
    assert not shares_draws([fg.MLP(depth=3, width=4, init="orthogonal"), fg.MLP(depth=3, width=4, init="orthogonal",
                                                                                  sigma_w=2.0)])
    with pytest.raises(ValueError, match="specs: these mlp cells cannot run over shared draws"):
        run_cells([specs[0], fg.MLP(depth=6, width=7)], trials=2)


def _product_norm(a, b):
    from fastgrad.kernels.norms import product_norm

    batch, m = a.shape
    n = b.shape[1]
    ss_b = float(np.sum(b.astype(np.float64) ** 2))
    return product_norm(a, b, ss_b, np.empty(batch * m, a.dtype), np.empty(batch * n + 2 * batch * batch, a.dtype))


@pytest.mark.parametrize("batch, m, n", [(1, 7, 5), (4, 16, 16), (8, 64, 40)])
def test_gram_form_is_the_norm_of_the_product(batch, m, n):
    rng = np.random.default_rng(batch)
    a, b = rng.normal(size=(batch, m)), rng.normal(size=(batch, n))
    np.testing.assert_allclose(_product_norm(a, b), np.linalg.norm(a.T @ b), rtol=1e-13)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    exact = np.linalg.norm(a32.astype(np.float64).T @ b32.astype(np.float64))
    np.testing.assert_allclose(_product_norm(a32, b32), exact, rtol=1e-6)


def test_gram_form_keeps_float32_tails_and_giants():
    # delta delta^T of float32 entries of 1e-25 would underflow to 0, h h^T of 1e20 overflow:
    # each factor is scaled by its largest entry first.
    rng = np.random.default_rng(0)
    for sa, sb in ((1.0, 1e-25), (1e20, 1.0), (1e-30, 1e-30)):
        a = (sa * rng.normal(size=(3, 16))).astype(np.float32)
        b = (sb * rng.normal(size=(3, 16))).astype(np.float32)
        exact = np.linalg.norm(a.astype(np.float64).T @ b.astype(np.float64))
        np.testing.assert_allclose(_product_norm(a, b), exact, rtol=1e-6)


def test_gram_form_hands_non_finite_factors_back_and_zero_is_zero():
    a, b = np.ones((2, 8)), np.ones((2, 8))
    assert _product_norm(np.zeros((2, 8)), b) == 0.0
    for bad in (np.inf, np.nan):
        a[1, 3] = bad
        assert _product_norm(a, b) == -1.0  # the kernel then forms h^T delta itself


def test_small_batch_runs_match_the_reference_through_the_gram_form():
    from fastgrad.kernels.norms import gram_pays

    spec = fg.MLP(depth=5, width=24, activation="relu", init="he_normal", sigma_b=0.1)
    assert gram_pays(3, 24, 24) and not gram_pays(7, 24, 24)
    W, b, x, y = fg.mlp_trial_arrays(spec, 0, 6, 3)
    ref, _ = naive.mlp(W, b, x, y, "relu", "mse")
    np.testing.assert_allclose(fg.run(spec, trials=6, batch=3).grad_w, ref["grad_w"], rtol=1e-12)
    # Exploding: inf and nan reach the norms as through the direct product (NumPy's, on the same arrays).
    boom = fg.MLP(depth=60, width=16, activation="relu", init="constant", value=100.0)
    assert gram_pays(2, 16, 16)
    W, b, x, y = fg.mlp_trial_arrays(boom, 0, 4, 2)
    with np.errstate(all="ignore"):
        ref, _ = naive.mlp(W, b, x, y, "relu", "mse")
    got = fg.run(boom, trials=4, batch=2).grad_w
    assert not np.isfinite(got).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref["grad_w"]))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref["grad_w"]))

"""The residual MLP (with and without pre-LayerNorm) against NumPy, finite differences, theory and the MLP."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad import theory
from fastgrad.activations import NAMES
from tests import naive

METRICS = ("grad_w", "grad_b", "delta", "q", "grad_h")


def random_net(rng, n0, width, nl, depth, trials, batch, scale=1.0):
    dims = [n0] + [width] * (depth - 1) + [nl]
    W = [rng.normal(0, scale / np.sqrt(dims[l]), (trials, dims[l], dims[l + 1])) for l in range(depth)]
    b = [rng.normal(0, 0.3, (trials, dims[l + 1])) for l in range(depth)]
    x = rng.normal(size=(trials, batch, n0))
    y = rng.normal(size=(trials, batch, nl))
    return W, b, x, y


def assert_matches(got, ref, rtol=1e-12):
    for m in METRICS:
        assert getattr(got, m).dtype == np.float64
        np.testing.assert_allclose(getattr(got, m), ref[m], rtol=rtol, atol=1e-300, err_msg=m)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("norm", [None, "layer"])
@pytest.mark.parametrize("loss", ["mse", "probe"])
def test_float64_matches_numpy_reference(activation, norm, loss):
    W, b, x, y = random_net(np.random.default_rng(1), 3, 6, 2, 5, 3, 4)
    got = fg.resmlp_backprop(W, b, x, y, activation=activation, loss=loss, residual=0.7, norm=norm)
    assert_matches(got, naive.resmlp(W, b, x, y, activation, loss, residual=0.7, norm=norm))


@pytest.mark.parametrize("norm", [None, "layer"])
def test_small_batches_take_the_gram_form_and_match_the_reference(norm):
    from fastgrad.kernels.norms import gram_pays

    W, b, x, y = random_net(np.random.default_rng(2), 16, 16, 16, 5, 3, 2)
    assert gram_pays(2, 16, 16)  # ||dLoss/dW_l|| as sqrt(<x x^T, delta delta^T>)
    got = fg.resmlp_backprop(W, b, x, y, activation="tanh", loss="mse", residual=0.7, norm=norm)
    assert_matches(got, naive.resmlp(W, b, x, y, "tanh", "mse", residual=0.7, norm=norm))


@given(
    n0=st.integers(1, 7), width=st.integers(2, 9), nl=st.integers(1, 7), depth=st.integers(3, 7),
    trials=st.integers(1, 3), batch=st.integers(1, 4), activation=st.sampled_from(NAMES),
    loss=st.sampled_from(["mse", "probe"]), last=st.sampled_from([None, "linear"]),
    residual=st.sampled_from([1.0, 0.3, "1/sqrt(L)"]), norm=st.sampled_from([None, "layer"]),
    seed=st.integers(0, 2**31),
)
def test_random_shapes_match_numpy_reference(n0, width, nl, depth, trials, batch, activation, loss, last, residual,
                                             norm, seed):
    W, b, x, y = random_net(np.random.default_rng(seed), n0, width, nl, depth, trials, batch)
    got = fg.resmlp_backprop(W, b, x, y, activation=activation, loss=loss, last_activation=last, residual=residual,
                             norm=norm)
    a = 1 / math.sqrt(depth) if residual == "1/sqrt(L)" else residual
    # Held over 1000 examples of every activation (FASTGRAD_HYPOTHESIS_EXAMPLES=1000).
    assert_matches(got, naive.resmlp(W, b, x, y, activation, loss, last, residual=a, norm=norm), rtol=1e-12)


@pytest.mark.parametrize("norm", [None, "layer"])
def test_finite_differences(norm):
    rng = np.random.default_rng(3)
    W, b, x, y = random_net(rng, 3, 5, 2, 5, 1, 3)
    got = fg.resmlp_backprop(W, b, x, y, activation="tanh", residual=0.8, norm=norm)
    w1 = [w[0].copy() for w in W]
    b1 = [v[0].copy() for v in b]
    x1 = x[0].copy()

    def loss_fn():
        return naive.resmlp_loss(w1, b1, x1, y[0], "tanh", residual=0.8, norm=norm)

    fd_x = naive.central_difference(loss_fn, x1)
    np.testing.assert_allclose(got.grad_h[0, 0], np.linalg.norm(fd_x), rtol=1e-6, err_msg="grad_h[0]")
    for l in range(len(w1)):
        for params, stat in ((w1, "grad_w"), (b1, "grad_b")):
            fd = naive.central_difference(loss_fn, params[l])
            np.testing.assert_allclose(getattr(got, stat)[0, l], np.linalg.norm(fd), rtol=1e-6,
                                       err_msg=f"{stat}[{l}]")


@pytest.mark.parametrize("norm", [None, "layer"])
def test_against_torch_autograd(norm):
    torch = pytest.importorskip("torch")
    W, b, x, y = random_net(np.random.default_rng(5), 4, 6, 3, 5, 2, 3)
    got = fg.resmlp_backprop(W, b, x, y, activation="tanh", residual=0.5, norm=norm)
    for t in range(2):
        ws = [torch.tensor(w[t], requires_grad=True) for w in W]
        bs = [torch.tensor(v[t], requires_grad=True) for v in b]
        h0 = torch.tensor(x[t], requires_grad=True)
        hs, zs = [h0], []
        h = h0
        for l in range(5):
            block = 0 < l < 4
            u = torch.nn.functional.layer_norm(h, (6,), eps=1e-5) if block and norm else h
            z = u @ ws[l] + bs[l]
            h = h + 0.5 * torch.tanh(z) if block else torch.tanh(z)
            for v in (z, h):
                v.retain_grad()
            zs.append(z)
            hs.append(h)
        loss = 0.5 * ((h - torch.tensor(y[t])) ** 2).sum() / 3
        loss.backward()
        for l in range(5):
            np.testing.assert_allclose(got.delta[t, l], zs[l].grad.norm().item(), rtol=1e-10)
            np.testing.assert_allclose(got.grad_w[t, l], ws[l].grad.norm().item(), rtol=1e-10)
            np.testing.assert_allclose(got.grad_b[t, l], bs[l].grad.norm().item(), rtol=1e-10)
            np.testing.assert_allclose(got.grad_h[t, l], hs[l].grad.norm().item(), rtol=1e-10)


@pytest.mark.parametrize("a", [1.0, 0.5])
def test_linear_blocks_multiply_the_mean_square_by_one_plus_a_squared(a):
    # Linear branches, W ~ N(0, 1/n), no biases, probe loss: dLoss/dh_{l-1} = g (I + a W_l^T), with W_l
    # independent of g = dLoss/dh_l, so E[||dLoss/dh_{l-1}||^2 | g] = (1 + a^2) ||g||^2 exactly, at any
    # width. Column j of grad_h is ||dLoss/dh_j|| (0-based); blocks are layers 2 .. L - 1 (1-based), so
    # columns 1 (the first block's input) and L - 1 (the read-out's input) span all L - 2 blocks.
    depth, width, trials = 12, 32, 4000
    spec = fg.ResMLP(depth=depth, width=width, activation="linear", init="scaled_normal", sigma_w=1.0,
                     loss="probe", residual=a)
    res = fg.run(spec, trials=trials, batch=2, seed=0)
    ratio = res.grad_h[:, 1] ** 2 / res.grad_h[:, depth - 1] ** 2
    expected = (1 + a * a) ** (depth - 2)
    half_width = 3.29 * ratio.std(ddof=1) / math.sqrt(trials)  # 99.9% normal interval of the mean
    assert abs(ratio.mean() - expected) < half_width, (ratio.mean(), expected, half_width)
    assert half_width < 0.05 * expected  # the test has power: it would see a wrong exponent


@pytest.mark.parametrize(("activation", "w2", "b2", "norm", "rtol"), [
    ("tanh", 1.5, 0.05, None, 0.06), ("tanh", 1.5, 0.05, "layer", 0.06), ("relu", 1.0, 0.1, "layer", 0.06),
    ("relu", 1.0, 0.1, None, None),
])
def test_theory_matches_mean_squares(activation, w2, b2, norm, rtol):
    # Measured at width 256 (200 trials, depth 10): the curve within 3.5% (tanh) and 4% (relu with LN);
    # q within 2%, relu's only with the stream's mean term. relu without LN: the curve is off by a
    # finite-width O(1/n) per block (+83% at the input at width 64, +19% at 256, +4% at 1024): q only.
    depth = 10
    spec = fg.ResMLP(depth=depth, width=256, activation=activation, init="scaled_normal", sigma_w2=w2, sigma_b2=b2,
                     loss="probe", residual=1.0, norm=norm)
    res = fg.run(spec, trials=200, batch=4, seed=2)
    np.testing.assert_allclose(res.q.mean(axis=0),
                               theory.residual_q_sequence(activation, w2, b2, depth, 1.0, norm=norm), rtol=0.03)
    if rtol is not None:
        squares = np.mean(res.grad_h**2, axis=0)
        predicted = theory.residual_delta_curve(activation, w2, b2, depth, 1.0, norm=norm)
        np.testing.assert_allclose(squares / squares[-1], predicted, rtol=rtol)


def test_theory_of_linear_blocks_is_the_closed_form():
    curve = theory.residual_delta_curve("linear", 1.0, 0.0, 12, 0.5)
    np.testing.assert_allclose(curve[1:], 1.25 ** np.arange(10, -1, -1), rtol=1e-12)
    np.testing.assert_allclose(curve[0], curve[1], rtol=1e-12)  # chi = sigma_w^2 = 1 through the input layer
    assert theory.residual_delta_curve("tanh", 1.0, 0.0, 9, "1/sqrt(L)")[0] == pytest.approx(
        theory.residual_delta_curve("tanh", 1.0, 0.0, 9, 1 / 3)[0], rel=1e-12)


def test_reproducible_across_threads_and_chunks():
    spec = fg.ResMLP(depth=6, width=8, activation="tanh", init="scaled_normal", sigma_w=1.5, sigma_b=0.1,
                     norm="layer", residual=0.5)
    base = fg.run(spec, trials=300, batch=4, seed=5, threads=2, chunk=300)
    one = fg.run(spec, trials=300, batch=4, seed=5, threads=1, chunk=37)
    small = fg.run(spec, trials=10, batch=4, seed=5, chunk=3)
    for m in METRICS:
        np.testing.assert_array_equal(getattr(base, m), getattr(one, m))
        np.testing.assert_array_equal(getattr(base, m)[:10], getattr(small, m))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_draws_are_the_plain_mlps(dtype):
    spec = fg.ResMLP(depth=4, width=6, activation="relu", init="he_normal", sigma_b=0.2, input_width=3,
                     output_width=2, residual="1/sqrt(L)", norm="layer")
    plain = spec.plain()
    assert isinstance(plain, fg.MLP) and not isinstance(spec, fg.MLP)
    mine = fg.mlp_trial_arrays(spec, seed=11, trials=5, batch=4, dtype=dtype)
    theirs = fg.mlp_trial_arrays(plain, seed=11, trials=5, batch=4, dtype=dtype)
    for a, b in zip(mine[0] + mine[1] + [mine[2], mine[3]], theirs[0] + theirs[1] + [theirs[2], theirs[3]],
                    strict=True):
        np.testing.assert_array_equal(a, b)
    # and run() computes trial k from exactly those arrays
    res = fg.run(spec, trials=5, batch=4, seed=11, dtype=dtype)
    W, b, x, y = theirs
    if dtype == "float64":
        ref = naive.resmlp(W, b, x, y, "relu", "mse", residual=0.5, norm="layer")
        for m in METRICS:
            np.testing.assert_allclose(getattr(res, m), ref[m], rtol=1e-12, err_msg=m)
    else:
        got = fg.resmlp_backprop(W, b, x, y, activation="relu", residual="1/sqrt(L)", norm="layer")
        for m in METRICS:
            assert getattr(res, m).dtype == np.float32
            np.testing.assert_array_equal(getattr(res, m), getattr(got, m))


def test_fields_are_the_mlps_and_validated_by_it():
    mlp = [(f.name, f.default) for f in dataclasses.fields(fg.MLP) if f.init]
    res = [(f.name, f.default) for f in dataclasses.fields(fg.ResMLP) if f.init]
    assert res[: len(mlp)] == mlp and [n for n, _ in res[len(mlp):]] == ["residual", "norm"]
    spec = fg.ResMLP(3, 4, "relu", "scaled_normal", 1.2, sigma_b2=0.1)
    assert spec.plain() == fg.MLP(3, 4, "relu", "scaled_normal", 1.2, sigma_b2=0.1)
    np.testing.assert_array_equal(spec.dims, [4, 4, 4, 4])
    assert spec.model == "resmlp" and spec.residual_scale == 1.0
    assert fg.ResMLP(16, 4, residual="1/sqrt(L)").residual_scale == 0.25


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"residual": 0}, "residual"), ({"residual": -1.0}, "residual"), ({"residual": "abc"}, "residual"),
    ({"residual": True}, "residual"), ({"residual": float("inf")}, "residual"), ({"norm": "batch"}, "norm"),
    ({"depth": 2}, "depth"), ({"depth": 0}, "depth"), ({"sigma_w": 1.0, "sigma_w2": 1.0}, "sigma_w"),
    ({"activation": "swish"}, "activation"),
])
def test_bad_input_is_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        fg.ResMLP(**{"depth": 4, "width": 3, **kwargs})


def test_explicit_arrays_are_checked():
    W, b, x, y = random_net(np.random.default_rng(0), 3, 4, 2, 2, 1, 2)
    with pytest.raises(ValueError, match="^W: a residual MLP needs >= 3 layers"):
        fg.resmlp_backprop(W, b, x, y)
    W, b, x, y = random_net(np.random.default_rng(0), 3, 4, 2, 4, 1, 2)
    W[2] = np.zeros((1, 4, 5))
    W[3] = np.zeros((1, 5, 2))
    b[2] = np.zeros((1, 5))
    with pytest.raises(ValueError, match=r"^W\[2\]: a residual block"):
        fg.resmlp_backprop(W, b, x, y)
    W, b, x, y = random_net(np.random.default_rng(0), 3, 4, 2, 4, 1, 2)
    for kwargs, name in (({"residual": 0.0}, "residual"), ({"norm": "batch"}, "norm")):
        with pytest.raises(ValueError, match=f"^{name}"):
            fg.resmlp_backprop(W, b, x, y, **kwargs)


def test_cuda_is_refused_by_name():
    with pytest.raises(ValueError, match="^backend: ResMLP runs on the CPU only"):
        fg.run(fg.ResMLP(depth=3, width=2), trials=1, backend="cuda")


def test_overflow_is_recorded_not_raised():
    spec = fg.ResMLP(depth=60, width=8, activation="relu", init="constant", value=100.0)
    res = fg.run(spec, trials=4, batch=2, dtype="float32")
    assert res.grad_h.dtype == np.float32 and res.grad_h.shape == (4, 60)
    assert res.nonfinite()["grad_w"] == 4 and res.nonfinite()["grad_h"] == 4
    assert np.isinf(res.q).any()
    # LayerNorm keeps the blocks' inputs at unit scale: the stream grows additively, and stays finite.
    normed = fg.run(dataclasses.replace(spec, norm="layer"), trials=4, batch=2, dtype="float32")
    assert normed.nonfinite()["q"] == 0


def test_sweep_store_analysis_and_command_line(tmp_path):
    from fastgrad.analysis import decay_table
    from fastgrad.cli import main
    from fastgrad.warmup import standard_jobs

    report = fg.sweep("resmlp", {"depth": 4, "width": 4, "residual": [0.5, 1.0], "norm": [None, "layer"]},
                      trials=3, batch=2, store=tmp_path / "s", progress=False)
    assert report.done == 4 and not report.failed
    frame = fg.load(tmp_path / "s")
    assert len(frame) == 4 * 3 * 4 and "grad_h" in frame.columns
    table = decay_table(tmp_path / "s", n_boot=10)  # of grad_h, the residual MLP's main statistic
    assert len(table) == 4 and table.equals(decay_table(tmp_path / "s", metric="grad_h", n_boot=10))
    assert main(["sweep", "--model", "resmlp", "--store", str(tmp_path / "c"), "--trials", "2", "--quiet",
                 "--depth", "3", "--width", "2", "--residual", "1/sqrt(L)"]) == 0
    assert fg.load(tmp_path / "c")["residual"].eq("1/sqrt(L)").all()
    jobs = standard_jobs(["resmlp"], ["float64"], ["tanh"])
    assert [type(spec) for _, spec, _ in jobs] == [fg.ResMLP]

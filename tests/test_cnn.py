"""The CNN (Xiao et al. 2018): exact against torch autograd, central differences, the MLP identity, isometry."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.cli import main

torch = pytest.importorskip("torch")
F = torch.nn.functional
ACTS = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda z: z}


def _conv(h, w, b, padding):
    """PyTorch's conv1d/conv2d, stride 1, same padding, circular or zeros."""
    nd = h.dim() - 2
    conv = F.conv1d if nd == 1 else F.conv2d
    r = w.shape[-1] // 2
    if padding == "circular":
        return conv(F.pad(h, (r, r) * nd, mode="circular"), w, b)
    return conv(h, w, b, padding=r)


def _torch_reference(W, B, x, y, padding, activation="tanh", loss="mse"):
    """Per trial, by autograd: ||dL/dW_l||, ||dL/db_l||, ||dL/dz_l||, mean z_l^2, and the neighbour correlation
    (numpy: products of z at positions i and i + 1 along each axis, over the mean square)."""
    act = ACTS[activation]
    out = {k: [] for k in ("grad_w", "grad_b", "delta", "q", "corr")}
    for t in range(x.shape[0]):
        ws = [torch.tensor(w[t], requires_grad=True) for w in W]
        bs = [torch.tensor(v[t], requires_grad=True) for v in B]
        h = torch.tensor(x[t])
        zs = []
        for w, b in zip(ws, bs, strict=True):
            z = _conv(h, w, b, padding)
            z.retain_grad()
            zs.append(z)
            h = act(z)
        yt = torch.tensor(y[t])
        value = 0.5 * ((h - yt) ** 2).sum() if loss == "mse" else (h * yt).sum()
        (value / x.shape[1]).backward()
        out["grad_w"].append([w.grad.norm().item() for w in ws])
        out["grad_b"].append([b.grad.norm().item() for b in bs])
        out["delta"].append([z.grad.norm().item() for z in zs])
        out["q"].append([(z**2).mean().item() for z in zs])
        corr = []
        for z in zs:
            zz = z.detach().numpy()
            num = sum((np.take(zz, range(n - 1), axis=a) * np.take(zz, range(1, n), axis=a)).sum()
                      for a, n in enumerate(zz.shape[2:], start=2))
            count = sum(zz.size // n * (n - 1) for n in zz.shape[2:])
            corr.append(num / count / (zz**2).mean())
        out["corr"].append(corr)
    return {k: np.array(v) for k, v in out.items()}


CASES = [
    dict(ndim=2, size=4, padding="circular", init="scaled_normal", sigma_w2=1.5, sigma_b2=0.1),
    dict(ndim=2, size=4, padding="zeros", init="delta_orthogonal", sigma_w2=1.2, sigma_b2=0.05, loss="probe"),
    dict(ndim=1, size=6, padding="zeros", init="he_normal", activation="linear"),
    dict(ndim=1, size=5, padding="circular", init="xavier_uniform", kernel_size=5, loss="probe"),
]


@pytest.mark.parametrize("kwargs", CASES)
def test_every_statistic_equals_torch_autograd(kwargs):
    spec = fg.CNN(depth=3, channels=3, in_channels=2, **kwargs)
    res = fg.run(spec, trials=2, batch=2, seed=3)
    W, B, x, y = fg.cnn_trial_arrays(spec, seed=3, trials=2, batch=2)
    assert W[0].shape == (2, 3, 2) + (spec.kernel_size,) * spec.ndim and x.shape == (2, 2, 2) + spec.shape
    ref = _torch_reference(W, B, x, y, spec.padding, spec.activation, spec.loss)
    for name, value in ref.items():
        np.testing.assert_allclose(res.arrays[name], value, rtol=1e-10, err_msg=name)
    given = fg.cnn_backprop(W, B, x, y, activation=spec.activation, loss=spec.loss, padding=spec.padding)
    for name in ref:  # trial arrays are the generated run's, bit for bit
        np.testing.assert_array_equal(given.arrays[name], res.arrays[name])


def test_inits_have_pytorch_fans_and_the_delta_orthogonal_structure():
    spec = fg.CNN(depth=2, channels=24, in_channels=8, size=3, ndim=2, init="he_normal")
    W = fg.cnn_trial_arrays(spec, seed=0, trials=4, batch=1)[0]
    fan_in = 24 * 9  # PyTorch's _calculate_fan_in_and_fan_out: c_in * k^D
    assert np.std(W[1]) == pytest.approx(np.sqrt(2 / fan_in), rel=0.03)
    delta = fg.CNN(depth=2, channels=4, in_channels=4, size=3, ndim=2, init="delta_orthogonal", sigma_w2=2.0)
    W = fg.cnn_trial_arrays(delta, seed=0, trials=2, batch=1)[0]
    centre = W[1][:, :, :, 1, 1].copy()
    W[1][:, :, :, 1, 1] = 0
    assert (W[1] == 0).all()
    for q in centre:
        np.testing.assert_allclose(q @ q.T, 2.0 * np.eye(4), atol=1e-12)


def test_central_differences_of_the_loss():
    spec = fg.CNN(depth=2, channels=2, in_channels=2, size=5, ndim=1, padding="zeros", sigma_w2=1.5, sigma_b2=0.2)
    W, B, x, y = fg.cnn_trial_arrays(spec, seed=2, trials=1, batch=2)

    def loss(ws, bs):
        h = x[0]
        for w, b in zip(ws, bs, strict=True):  # numpy's own correlation with zero padding
            hp = np.pad(h, ((0, 0), (0, 0), (1, 1)))
            z = np.einsum("oct,bcpt->bop", w, np.stack([hp[:, :, t:t + 5] for t in range(3)], -1)) + b[:, None]
            h = np.tanh(z)
        return 0.5 * ((h - y[0]) ** 2).sum() / 2

    ws, bs = [w[0].copy() for w in W], [b[0].copy() for b in B]
    eps = 1e-6
    res = fg.cnn_backprop(W, B, x, y, padding="zeros")
    for l in range(2):
        gw = np.zeros_like(ws[l])
        for i in np.ndindex(gw.shape):
            up, down = [w.copy() for w in ws], [w.copy() for w in ws]
            up[l][i] += eps
            down[l][i] -= eps
            gw[i] = (loss(up, bs) - loss(down, bs)) / (2 * eps)
        np.testing.assert_allclose(res.grad_w[0, l], np.linalg.norm(gw), rtol=1e-7)


@pytest.mark.parametrize("kernel_size", [3, 1])
def test_delta_orthogonal_circular_cnn_is_an_orthogonal_mlp_position_by_position(kernel_size):
    """The centre taps as MLP weights, B N^D rows as its batch: the same z at every layer. The CNN's loss
    averages over B, the MLP's over B N^D rows, so its delta and grad_b are N^D times the MLP's; with k = 1
    its whole weight gradient is the MLP's too (with k = 3 the off-centre taps also get gradients)."""
    spec = fg.CNN(depth=4, channels=3, size=3, ndim=2, kernel_size=kernel_size, init="delta_orthogonal",
                  sigma_w2=1.4, sigma_b2=0.1)
    res = fg.run(spec, trials=3, batch=2, seed=7)
    W, B, x, y = fg.cnn_trial_arrays(spec, seed=7, trials=3, batch=2)
    c = kernel_size // 2
    mlp_w = [np.ascontiguousarray(w[:, :, :, c, c].transpose(0, 2, 1)) for w in W]
    rows = lambda a: np.ascontiguousarray(a.transpose(0, 1, 3, 4, 2).reshape(3, 2 * 9, 3))  # noqa: E731
    mlp = fg.mlp_backprop(mlp_w, B, rows(x), rows(y))
    np.testing.assert_allclose(res.q, mlp.q, rtol=1e-13)
    np.testing.assert_allclose(res.delta, 9 * mlp.delta, rtol=1e-12)
    np.testing.assert_allclose(res.grad_b, 9 * mlp.grad_b, rtol=1e-12)
    if kernel_size == 1:
        np.testing.assert_allclose(res.grad_w, 9 * mlp.grad_w, rtol=1e-12)


def test_linear_delta_orthogonal_cnn_is_an_isometry_times_gain_to_the_depth():
    for padding in ("circular", "zeros"):
        spec = fg.CNN(depth=6, channels=3, size=4, ndim=1, activation="linear", init="delta_orthogonal",
                      gain=1.3, padding=padding)
        s = fg.spectrum(spec, trials=2, batch=1, seed=1)
        assert s.singular_values.shape == (2, 12)
        np.testing.assert_allclose(s.singular_values, 1.3**6, rtol=1e-12)


def test_spectrum_equals_the_svd_of_torch_jacobian():
    spec = fg.CNN(depth=3, channels=2, in_channels=2, size=3, ndim=2, sigma_w2=1.3, sigma_b2=0.1, padding="zeros")
    s = fg.spectrum(spec, trials=2, batch=2, seed=0)
    W, B, x, _ = fg.cnn_trial_arrays(spec, seed=0, trials=2, batch=2)
    for t in range(2):
        def f(inp, t=t):
            h = inp[None]
            for w, b in zip(W, B, strict=True):
                h = torch.tanh(_conv(h, torch.tensor(w[t]), torch.tensor(b[t]), "zeros"))
            return h[0].reshape(-1)

        ref = torch.autograd.functional.jacobian(f, torch.tensor(x[t, 0])).reshape(18, 18).numpy()
        np.testing.assert_allclose(s.singular_values[t], np.linalg.svd(ref, compute_uv=False), rtol=1e-10)


def test_reproducible_across_chunks_and_threads():
    spec = fg.CNN(depth=3, channels=2, size=4, ndim=1, sigma_w2=1.2)
    whole = fg.run(spec, trials=5, batch=2, seed=4, threads=1)
    split = fg.run(spec, trials=5, batch=2, seed=4, threads=2, chunk=2)
    part = fg.run(spec, trials=2, batch=2, seed=4, first_trial=3)
    for name in ("grad_w", "grad_b", "delta", "q", "corr"):
        np.testing.assert_array_equal(whole.arrays[name], split.arrays[name])
        np.testing.assert_array_equal(whole.arrays[name][3:], part.arrays[name])


@pytest.mark.parametrize("kwargs, name", [
    (dict(kernel_size=2), "kernel_size"), (dict(ndim=3), "ndim"), (dict(padding="reflect"), "padding"),
    (dict(init="orthogonal"), "init"), (dict(init="he_normal", sigma_w=1.0), "sigma_w"),
    (dict(init="delta_orthogonal", sigma_w=1.0, gain=1.0), "gain"), (dict(size=(4, 5)), "size"),
    (dict(size=0), "size"), (dict(in_channels=0), "in_channels"), (dict(activation="nope"), "activation"),
    (dict(loss="last"), "loss"), (dict(bias_init="zeros", sigma_b=0.1), "sigma_b"), (dict(alpha=0.1), "alpha"),
])
def test_bad_arguments_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fg.CNN(**{"depth": 2, "channels": 2, "size": 4, **kwargs})


def test_bad_arrays_are_refused_by_name():
    spec = fg.CNN(depth=2, channels=2, size=4, ndim=1)
    W, B, x, y = fg.cnn_trial_arrays(spec, seed=0, trials=1, batch=2)
    with pytest.raises(ValueError, match="y"):
        fg.cnn_backprop(W, B, x, y[:, :, :1])
    with pytest.raises(ValueError, match=r"W\[1\]"):
        fg.cnn_backprop([W[0], W[1][:, :, :1]], B, x, y)
    with pytest.raises(ValueError, match="padding"):
        fg.cnn_backprop(W, B, x, y, padding="same")
    with pytest.raises(ValueError, match="backend"):
        fg.run(spec, trials=2, backend="cuda")


def test_sweep_cli_analyze_and_plot(tmp_path):
    grid = {"depth": 4, "channels": 2, "size": 3, "ndim": 1, "sigma_w2": [0.5, 2.0]}
    fg.sweep("cnn", grid, trials=3, batch=2, store=tmp_path / "s", progress=False)
    frame = fg.load(tmp_path / "s")
    ref = fg.run(fg.CNN(depth=4, channels=2, size=3, ndim=1, sigma_w2=2.0), trials=3, batch=2)
    got = frame[frame.sigma_w2 == 2.0]
    np.testing.assert_array_equal(got["corr"].to_numpy().reshape(3, 4), ref.corr)
    assert main(["sweep", "--model", "cnn", "--store", str(tmp_path / "c"), "--trials", "3", "--batch", "2",
                 "--quiet", "--depth", "4", "--channels", "2", "--size", "3", "--ndim", "1",
                 "--sigma-w2", "0.5,2.0"]) == 0
    assert main(["analyze", str(tmp_path / "c")]) == 0
    assert main(["plot", str(tmp_path / "c")]) == 0


@pytest.mark.slow  # compiles the training kernel: ~35 s of CPU on an empty cache under load
def test_training_step_equals_torch_sgd():
    """One epoch of SGD at full batch: the CNN, global average pooling and a linear read-out, cross-entropy,
    against the same step by torch autograd from the same initial parameters."""
    rng = np.random.default_rng(0)
    n = 12
    x = rng.normal(size=(n, 2 * 16))
    labels = rng.integers(0, 3, n)
    y = np.eye(3)[labels]
    data = fg.data.Dataset(x, y, x[:5], y[:5], "classification", "toy")
    spec = fg.CNN(depth=3, channels=4, size=4, ndim=2, sigma_w2=1.5, sigma_b2=0.1)
    res = fg.train(spec, data, optimizer="sgd", lr=0.1, epochs=1, batch=n, trials=2, seed=0)
    assert res.spec.in_channels == 2 and res.grad_w.shape == (2, 1, 4)
    for t in range(2):
        p, off, ws, bs = res.initial[t], 0, [], []
        for l in range(3):
            c_in = 2 if l == 0 else 4
            w = p[off:off + 9 * c_in * 4].reshape(9, c_in, 4).transpose(2, 1, 0).reshape(4, c_in, 3, 3)
            ws.append(torch.tensor(w.copy(), requires_grad=True))
            off += 9 * c_in * 4
        wo = torch.tensor(p[off:off + 12].reshape(4, 3).copy(), requires_grad=True)
        off += 12
        for _ in range(3):
            bs.append(torch.tensor(p[off:off + 4].copy(), requires_grad=True))
            off += 4
        bo = torch.tensor(p[off:off + 3].copy(), requires_grad=True)
        h = torch.tensor(x.reshape(n, 2, 4, 4))
        for w, b in zip(ws, bs, strict=True):
            h = torch.tanh(_conv(h, w, b, "circular"))
        loss = F.cross_entropy(h.mean(dim=(2, 3)) @ wo + bo, torch.tensor(labels))
        loss.backward()
        assert res.loss[t, 0] == pytest.approx(loss.item(), rel=1e-12)
        step = [(v - 0.1 * v.grad).detach().numpy() for v in ws]
        flat = [s.reshape(s.shape[0], s.shape[1], 9).transpose(2, 1, 0).ravel() for s in step]
        flat += [(wo - 0.1 * wo.grad).detach().numpy().ravel()]
        flat += [(v - 0.1 * v.grad).detach().numpy() for v in [*bs, bo]]
        np.testing.assert_allclose(res.final[t], np.concatenate(flat), atol=1e-13)


@pytest.mark.slow  # the training kernel compiled by the test above
@pytest.mark.parametrize(("optimizer", "init"), [("adam", "delta_orthogonal"), ("momentum", "scaled_normal")])
def test_deep_training_equals_torch(optimizer, init):
    """Depth 10, 8x8 maps, three full-batch epochs of Adam or SGD with momentum: the losses and the final
    parameters against torch.optim on the same network from the same initial parameters."""
    rng = np.random.default_rng(1)
    n, depth, c, lr, epochs = 10, 10, 4, 0.05, 3
    x = rng.normal(size=(n, 64))
    labels = rng.integers(0, 3, n)
    y = np.eye(3)[labels]
    data = fg.data.Dataset(x, y, x[:5], y[:5], "classification", "toy")
    spec = fg.CNN(depth=depth, channels=c, size=8, ndim=2, init=init, sigma_w2=1.5, sigma_b2=0.1)
    extra = {"momentum": 0.9} if optimizer == "momentum" else {}
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, epochs=epochs, batch=n, trials=1, seed=0, **extra)
    p, off, ws, bs = res.initial[0], 0, [], []
    for l in range(depth):
        c_in = 1 if l == 0 else c
        w = p[off:off + 9 * c_in * c].reshape(9, c_in, c).transpose(2, 1, 0).reshape(c, c_in, 3, 3)
        ws.append(torch.tensor(w.copy(), requires_grad=True))
        off += 9 * c_in * c
    wo = torch.tensor(p[off:off + 3 * c].reshape(c, 3).copy(), requires_grad=True)
    off += 3 * c
    for _ in range(depth):
        bs.append(torch.tensor(p[off:off + c].copy(), requires_grad=True))
        off += c
    bo = torch.tensor(p[off:off + 3].copy(), requires_grad=True)
    params = [*ws, wo, *bs, bo]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9))
    for e in range(epochs):
        opt.zero_grad()
        h = torch.tensor(x.reshape(n, 1, 8, 8))
        for w, b in zip(ws, bs, strict=True):
            h = torch.tanh(_conv(h, w, b, "circular"))
        loss = F.cross_entropy(h.mean(dim=(2, 3)) @ wo + bo, torch.tensor(labels))
        loss.backward()
        opt.step()
        assert res.loss[0, e] == pytest.approx(loss.item(), rel=1e-12)
    flat = [v.detach().numpy().reshape(c, v.shape[1], 9).transpose(2, 1, 0).ravel() for v in ws]
    flat += [wo.detach().numpy().ravel()] + [v.detach().numpy() for v in [*bs, bo]]
    np.testing.assert_allclose(res.final[0], np.concatenate(flat), atol=1e-12)
    assert np.abs(res.final[0] - p).max() > 1e-3  # the parameters moved

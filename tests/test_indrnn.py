"""The IndRNN (Li et al. 2018): exact against torch autograd and a closed form, and through every surface."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.cli import main

torch = pytest.importorskip("torch")


def _torch_reference(u, wx, b, x, y, activation, loss):
    """Per trial: ||dLoss/dh_t||, ||h_{t-1} delta_t summed over the batch||, mean z_t^2 and the totals, by autograd."""
    act = {"relu": torch.relu, "tanh": torch.tanh}[activation]
    out = {k: [] for k in ("grad_h", "grad_u_step", "q", "grad_u", "grad_wx", "grad_b")}
    for t in range(u.shape[0]):
        ut = torch.tensor(u[t], requires_grad=True)
        wxt = torch.tensor(wx[t], requires_grad=True)
        bt = torch.tensor(b[t], requires_grad=True)
        xt = torch.tensor(x[t])
        steps, batch, _ = xt.shape
        h = torch.zeros(batch, u.shape[1], dtype=torch.float64)
        hs, zs, prev = [], [], []
        for s in range(steps):
            prev.append(h)
            z = xt[s] @ wxt + ut * h + bt
            z.retain_grad()
            h = act(z)
            h.retain_grad()
            hs.append(h)
            zs.append(z)
        yt = torch.tensor(y[t])
        if loss == "probe":
            value = (yt * hs[-1]).sum() / batch
        elif loss == "last":
            value = 0.5 * ((hs[-1] - yt) ** 2).sum() / batch
        else:
            value = sum(0.5 * ((hs[s] - yt[s]) ** 2).sum() for s in range(steps)) / batch
        value.backward()
        out["grad_h"].append([hs[s].grad.norm().item() for s in range(steps)])
        out["grad_u_step"].append([(prev[s] * zs[s].grad).sum(0).norm().item() for s in range(steps)])
        out["q"].append([(zs[s] ** 2).mean().item() for s in range(steps)])
        out["grad_u"].append(ut.grad.norm().item())
        out["grad_wx"].append(wxt.grad.norm().item())
        out["grad_b"].append(bt.grad.norm().item())
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("activation, loss", [("relu", "last"), ("tanh", "probe"), ("tanh", "all")])
def test_every_statistic_equals_torch_autograd(activation, loss):
    spec = fg.IndRNN(steps=7, hidden=5, inputs=3, activation=activation, loss=loss, u_init="uniform", u_low=-1.2,
                     u_high=1.2, sigma_b=0.3)
    res = fg.run(spec, trials=4, batch=3, seed=2)
    arrays = fg.indrnn_trial_arrays(spec, seed=2, trials=4, batch=3)
    ref = _torch_reference(*arrays, activation, loss)
    for k, v in ref.items():
        np.testing.assert_allclose(res.arrays[k], v, rtol=1e-10, atol=1e-14, err_msg=k)
    again = fg.indrnn_backprop(*arrays, activation=activation, loss=loss)
    for k in res.arrays:
        assert np.array_equal(res.arrays[k], again.arrays[k]), k  # given arrays: the same bits


def test_relu_with_positive_preactivations_has_gradient_u_to_the_power_of_the_distance():
    # x W_x + b > 0 at every step (positive inputs, weights and biases), u > 0: every z_t > 0, so
    # dh_S/dh_t = diag(u^(S - t)); with a one-hot probe g = e_j, ||dLoss/dh_t|| = u_j^(S - t) / B.
    steps, n, d, batch = 12, 4, 2, 1
    rng = np.random.default_rng(0)
    u = rng.uniform(0.5, 1.5, (n, n))  # trial j probes unit j; the same u in every trial
    u[:] = u[0]
    wx = rng.uniform(0.1, 1.0, (n, d, n))
    b = rng.uniform(0.1, 1.0, (n, n))
    x = rng.uniform(0.1, 1.0, (n, steps, batch, d))
    g = np.zeros((n, batch, n))
    for j in range(n):
        g[j, 0, j] = 1.0
    res = fg.indrnn_backprop(u, wx, b, x, g, activation="relu", loss="probe", jacobian=True)
    distance = steps - np.arange(1, steps + 1)  # S - t for t = 1 .. S
    for j in range(n):
        np.testing.assert_allclose(res.grad_h[j], u[0, j] ** distance, rtol=1e-12)
    # The Jacobian's Frobenius norm: sqrt(sum_j u_j^(2 (S - t))).
    np.testing.assert_allclose(res.jacobian_norm[0], np.sqrt((u[0][:, None] ** (2 * distance)).sum(0)), rtol=1e-12)


def test_central_differences_of_the_loss():
    spec = fg.IndRNN(steps=5, hidden=3, inputs=2, activation="tanh", u_init="constant", u_value=0.9, loss="last")
    u, wx, b, x, y = fg.indrnn_trial_arrays(spec, seed=5, trials=1, batch=2)

    def loss(uu):
        h = np.zeros((2, 3))
        for s in range(5):
            h = np.tanh(x[0, s] @ wx[0] + uu * h + b[0])
        return 0.5 * ((h - y[0]) ** 2).sum() / 2

    eps = 1e-6
    grad = np.array([(loss(u[0] + eps * e) - loss(u[0] - eps * e)) / (2 * eps) for e in np.eye(3)])
    res = fg.indrnn_backprop(u, wx, b, x, y, activation="tanh")
    np.testing.assert_allclose(res.grad_u[0], np.linalg.norm(grad), rtol=1e-7)


def test_u_inits_and_refusals():
    bounded = fg.IndRNN(steps=50, hidden=200, inputs=2, u_init="bounded", u_bounds=(0.5, 2.0))
    u = fg.indrnn_trial_arrays(bounded, seed=0, trials=3, batch=1)[0]
    assert (u**50 >= 0.5 - 1e-12).all() and (u**50 <= 2.0 + 1e-12).all()
    assert np.isclose(u.min(), 0.5 ** (1 / 50), atol=1e-3) and np.isclose(u.max(), 2.0 ** (1 / 50), atol=1e-3)
    const = fg.indrnn_trial_arrays(fg.IndRNN(steps=3, hidden=4, inputs=2, u_init="constant", u_value=0.7), 0, 2, 1)[0]
    assert (const == 0.7).all()
    for kwargs, name in (({"u_init": "constant", "u_low": 0.1}, "u_low"), ({"u_bounds": (0.1, 1.0)}, "u_bounds"),
                         ({"u_low": 2.0, "u_high": 1.0}, "u_low"), ({"u_init": "bounded", "u_bounds": (2, 1)},
                                                                     "u_bounds"),
                         ({"bias_init": "zeros", "sigma_b": 0.1}, "sigma_b"), ({"u_init": "orthogonal"}, "u_init")):
        with pytest.raises(ValueError, match=name):
            fg.IndRNN(steps=3, hidden=4, inputs=2, **kwargs)
    with pytest.raises(ValueError, match="backend"):
        fg.run(fg.IndRNN(steps=3, hidden=4, inputs=2), trials=2, backend="cuda")


def test_spectrum_is_the_diagonal_product():
    spec = fg.IndRNN(steps=8, hidden=6, inputs=2, activation="tanh", u_low=-1.5, u_high=1.5)
    s = fg.spectrum(spec, trials=3, batch=2, seed=4, step=2)
    u, wx, b, x, _ = fg.indrnn_trial_arrays(spec, seed=4, trials=3, batch=2)
    for t in range(3):
        h = np.zeros(6)
        m = np.ones(6)
        for step in range(8):
            z = x[t, step, 0] @ wx[t] + u[t] * h + b[t]
            h = np.tanh(z)
            if step >= 2:  # dh_S/dh_2 multiplies the steps after step 2 (positions 2 .. S-1)
                m *= u[t] * (1 - np.tanh(z) ** 2)
        np.testing.assert_allclose(s.singular_values[t], np.sort(np.abs(m))[::-1], rtol=1e-12)


def test_train_sweep_cli_and_trial_identity(tmp_path):
    data = fg.data.adding(samples=80, steps=10, seed=0)
    res = fg.train(fg.IndRNN(steps=10, hidden=8, inputs=2), data, optimizer="adam", lr=1e-2, epochs=3, batch=16,
                   trials=3, seed=1)
    assert res.loss.shape == (3, 3) and np.isfinite(res.loss).all()
    assert res.spec.steps == 10 and res.initial.shape[1] == 8 + 2 * 8 + 8 + 8 * 1 + 1
    grid = {"steps": 6, "hidden": 4, "inputs": 2, "u_high": [0.5, 1.5]}
    fg.sweep("indrnn", grid, trials=5, batch=2, store=tmp_path / "s", progress=False)
    frame = fg.load(tmp_path / "s")
    ref = fg.run(fg.IndRNN(steps=6, hidden=4, inputs=2, u_high=1.5), trials=5, batch=2)
    got = frame[frame.u_high == 1.5]
    np.testing.assert_array_equal(got["grad_h"].to_numpy().reshape(5, 6), ref.grad_h)
    assert main(["sweep", "--model", "indrnn", "--store", str(tmp_path / "c"), "--trials", "4", "--batch", "2",
                 "--quiet", "--steps", "5", "--hidden", "3", "--inputs", "2", "--u-high", "0.5,1.0"]) == 0
    assert main(["analyze", str(tmp_path / "c")]) == 0
    assert main(["plot", str(tmp_path / "c")]) == 0
    part = fg.run(fg.IndRNN(steps=6, hidden=4, inputs=2), trials=3, batch=2, first_trial=2)
    whole = fg.run(fg.IndRNN(steps=6, hidden=4, inputs=2), trials=5, batch=2)
    assert np.array_equal(part.grad_h, whole.grad_h[2:])

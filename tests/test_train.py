"""Training: steps against a NumPy reference for every optimiser, reproducibility, data."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.codes import ORDER as ORDER_TENSOR
from fastgrad.data import Dataset, teacher
from fastgrad.rng import uniforms
from tests import naive


def unpack(flat, dims):
    W, b, off = [], [], 0
    for l in range(len(dims) - 1):
        W.append(flat[off : off + dims[l] * dims[l + 1]].reshape(dims[l], dims[l + 1]).copy())
        off += dims[l] * dims[l + 1]
    for l in range(len(dims) - 1):
        b.append(flat[off : off + dims[l + 1]].copy())
        off += dims[l + 1]
    return W, b


def reference_grads(W, b, x, y, activation, task):
    """dL/dW, dL/db of a minibatch, by plain NumPy."""
    hs, zs = [x], []
    for l in range(len(W)):
        z = hs[-1] @ W[l] + b[l]
        zs.append(z)
        last = l == len(W) - 1
        hs.append(z if (last and task == "classification") else naive.phi(activation, z))
    B = x.shape[0]
    if task == "classification":
        p = np.exp(hs[-1] - hs[-1].max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        dh = (p - y) / B
    else:
        dh = (hs[-1] - y) / B
    gW, gb = [None] * len(W), [None] * len(W)
    for l in range(len(W) - 1, -1, -1):
        last = l == len(W) - 1
        d = dh * (1.0 if (last and task == "classification") else naive.dphi(activation, zs[l]))
        gW[l], gb[l] = hs[l].T @ d, d.sum(axis=0)
        dh = d @ W[l].T
    return gW, gb


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("weight_decay, clip", [(0.0, None), (0.05, None), (0.0, 0.3), (0.02, 0.1)])
def test_two_steps_equal_numpy_reference(optimizer, task, weight_decay, clip):
    data = teacher(task, samples=10, features=3, outputs=2, test_fraction=0.2, seed=1)  # 8 training rows
    spec = fg.MLP(depth=3, width=4, activation="tanh", init="xavier_normal", sigma_b=0.1)
    lr, mom, batch = 0.3, 0.8, 4
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, momentum=mom, weight_decay=weight_decay,
                   clip_norm=clip, epochs=1, batch=batch, trials=2, seed=5)
    dims = res.spec.dims
    for k in range(2):
        W, b = unpack(res.initial[k], dims)
        vW = [np.zeros_like(w) for w in W]
        vb = [np.zeros_like(v) for v in b]
        order = np.argsort(uniforms(5, k, ORDER_TENSOR, 8), kind="stable")
        for s in range(2):
            rows = order[s * batch : (s + 1) * batch]
            gW, gb = reference_grads(W, b, data.x_train[rows], data.y_train[rows], "tanh", task)
            scale = 1.0
            if clip is not None:
                norm = np.sqrt(sum((g**2).sum() for g in gW) + sum((g**2).sum() for g in gb))
                scale = min(1.0, clip / norm)
            for params, grads, vel, decay in ((W, gW, vW, weight_decay), (b, gb, vb, 0.0)):
                for l in range(len(params)):
                    g = grads[l] * scale + decay * params[l]
                    if optimizer == "sgd":
                        params[l] -= lr * g
                    else:
                        vel[l] = mom * vel[l] + g
                        params[l] -= lr * (g + mom * vel[l] if optimizer == "nesterov" else vel[l])
        Wf, bf = unpack(res.final[k], dims)
        for got, ref in zip(Wf + bf, W + b, strict=True):
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_reproducible_across_threads_and_independent_trials():
    data = teacher("classification", samples=300, features=8, outputs=3, seed=2)
    spec = fg.MLP(depth=3, width=16, activation="relu", init="he_normal")
    a = fg.train(spec, data, optimizer="momentum", lr=0.05, epochs=3, trials=6, seed=1, threads=2)
    b = fg.train(spec, data, optimizer="momentum", lr=0.05, epochs=3, trials=6, seed=1, threads=1)
    c = fg.train(spec, data, optimizer="momentum", lr=0.05, epochs=3, trials=2, seed=1)
    np.testing.assert_array_equal(a.final, b.final)
    np.testing.assert_array_equal(a.final[:2], c.final)  # trial k does not depend on the others
    assert not np.array_equal(a.final[0], a.final[1])
    # The initial weights are the engine's trial k.
    W, _, _, _ = fg.mlp_trial_arrays(a.spec, seed=1, trials=2, batch=1)
    np.testing.assert_array_equal(a.initial[1, : W[0][1].size], W[0][1].ravel())


def test_learning_happens_and_divergence_is_counted():
    data = teacher("classification", samples=600, features=8, outputs=3, seed=3)
    res = fg.train(fg.MLP(depth=2, width=32, activation="tanh"), data, optimizer="momentum", lr=0.1, epochs=15,
                   trials=4)
    assert np.all(res.loss[:, -1] < 0.6 * res.loss[:, 0]) and np.all(res.test_accuracy[:, -1] > 0.7)
    assert res.fraction_diverged() == 0.0 and np.all(np.isfinite(res.epochs_to(1.0)))
    regression = teacher("regression", samples=200, features=8, outputs=3, seed=3)
    boom = fg.train(fg.MLP(depth=4, width=16, activation="linear", init="normal", sigma_w=1.0), regression,
                    lr=2.0, epochs=5, trials=4)  # far too large a step: the loss overflows to inf
    assert boom.fraction_diverged() > 0
    k = int(np.argmax(boom.diverged >= 0))
    assert np.isnan(boom.loss[k, boom.diverged[k] + 1 :]).all()  # recorded as nan after, not dropped
    frame = boom.to_frame()
    assert len(frame) == 4 * 5 * 4


def test_digits_ship_with_scikit_learn():
    pytest.importorskip("sklearn")
    d = fg.data.digits()
    assert d.x_train.shape[1] == 64 and d.outputs == 10 and len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1 and np.allclose(d.y_train.sum(axis=1), 1)


def test_bad_arguments():
    data = teacher(samples=50, seed=0)
    spec = fg.MLP(depth=2, width=4)
    for kwargs, match in (({"optimizer": "adam"}, "optimizer"), ({"lr": 0.0}, "lr"), ({"epochs": 0}, "epochs"),
                          ({"batch": 1000}, "batch"), ({"clip_norm": -1.0}, "clip_norm")):
        with pytest.raises(ValueError, match=match):
            fg.train(spec, data, **kwargs)
    with pytest.raises(ValueError, match="data"):
        fg.train(spec, Dataset)


def rnn_reference_step(p, x, y, n, d, k, activation):
    """Gradients of the RNN regressor on a minibatch, by plain NumPy BPTT (parameters packed)."""
    whh = p[: n * n].reshape(n, n)
    wxh = p[n * n : n * n + d * n].reshape(d, n)
    b = p[n * n + d * n : n * n + d * n + n]
    wo = p[n * n + d * n + n : n * n + d * n + n + n * k].reshape(n, k)
    bo = p[-k:]
    B, S, _ = x.shape
    hs, zs = [np.zeros((B, n))], []
    for t in range(S):
        zs.append(hs[-1] @ whh + x[:, t] @ wxh + b)
        hs.append(naive.phi(activation, zs[-1]))
    err = (hs[-1] @ wo + bo - y) / B
    g_wo, g_bo = hs[-1].T @ err, err.sum(axis=0)
    g = err @ wo.T
    g_whh, g_wxh, g_b = np.zeros_like(whh), np.zeros_like(wxh), np.zeros_like(b)
    for t in range(S - 1, -1, -1):
        g = g * naive.dphi(activation, zs[t])
        g_whh += hs[t].T @ g
        g_wxh += x[:, t].T @ g
        g_b += g.sum(axis=0)
        g = g @ whh.T
    return np.concatenate([g_whh.ravel(), g_wxh.ravel(), g_b, g_wo.ravel(), g_bo])


@pytest.mark.parametrize("optimizer, clip, decay",
                         [("sgd", None, 0.0), ("nesterov", 0.5, 0.01), ("momentum", 0.2, 0.0)])
def test_rnn_steps_equal_numpy_bptt(optimizer, clip, decay):
    data = fg.data.adding(samples=10, steps=5, seed=2)  # 8 training sequences
    spec = fg.RNN(steps=5, hidden=4, inputs=2, gain=1.3, sigma_b=0.1)
    lr, mom, batch = 0.2, 0.7, 4
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, momentum=mom, weight_decay=decay, clip_norm=clip,
                   epochs=1, batch=batch, trials=2, seed=3)
    n, d, k = 4, 2, 1
    n_decayed = n * n + d * n
    for t in range(2):
        p = res.initial[t].copy()
        vel = np.zeros_like(p)
        mask = np.zeros_like(p)
        mask[:n_decayed] = 1.0
        mask[n_decayed + n : n_decayed + n + n * k] = 1.0  # W_o decays too, the biases do not
        order = np.argsort(uniforms(3, t, ORDER_TENSOR, 8), kind="stable")
        for s in range(2):
            rows = order[s * batch : (s + 1) * batch]
            grad = rnn_reference_step(p, data.x_train[rows], data.y_train[rows], n, d, k, "tanh")
            scale = 1.0 if clip is None else min(1.0, clip / np.linalg.norm(grad))
            g = grad * scale + decay * mask * p
            if optimizer == "sgd":
                p -= lr * g
            else:
                vel = mom * vel + g
                p -= lr * (g + mom * vel if optimizer == "nesterov" else vel)
        np.testing.assert_allclose(res.final[t], p, rtol=1e-10, atol=1e-12)
    assert res.grad_h.shape == (2, 1, 5) and res.grad_w.shape == (2, 1, 3)
    # trial k's recurrent weights are trial k of fastgrad.run(spec)
    whh = fg.rnn_trial_arrays(res.spec, seed=3, trials=2, batch=1)[0]
    np.testing.assert_array_equal(res.initial[1, :16], whh[1].ravel())


def test_clipping_stops_an_exploding_rnn_from_diverging():
    data = fg.data.adding(samples=400, steps=20, seed=1)
    spec = fg.RNN(steps=20, hidden=16, inputs=2, activation="relu", gain=2.0)  # gradients grow ~2^20
    free = fg.train(spec, data, lr=0.1, epochs=3, trials=4)
    clipped = fg.train(spec, data, lr=0.1, epochs=3, trials=4, clip_norm=1.0)
    assert free.fraction_diverged() == 1.0 and clipped.fraction_diverged() == 0.0
    assert np.all(np.isfinite(clipped.loss))

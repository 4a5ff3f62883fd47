"""Training: steps against a NumPy reference for every optimiser (and PyTorch's for Adam and RMSprop),
reproducibility, data."""

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


def adaptive_update(optimizer, params, grads, m, v, t, decay, scale, lr, betas, eps, alpha):
    """One Adam or RMSprop update of a list of arrays in place, by the textbook formulas (not PyTorch's order)."""
    for l in range(len(params)):
        g = grads[l] * scale + decay * params[l]
        if optimizer == "adam":
            b1, b2 = betas
            m[l] = b1 * m[l] + (1 - b1) * g
            v[l] = b2 * v[l] + (1 - b2) * g**2
            m_hat = m[l] / (1 - b1**t)
            v_hat = v[l] / (1 - b2**t)
            params[l] -= lr * m_hat / (np.sqrt(v_hat) + eps)
        else:
            v[l] = alpha * v[l] + (1 - alpha) * g**2
            params[l] -= lr * g / (np.sqrt(v[l]) + eps)


ADAPTIVE = {"betas": (0.8, 0.95), "eps": 1e-6, "alpha": 0.9}  # not the defaults, so that each reaches the kernel


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("weight_decay, clip", [(0.0, None), (0.05, None), (0.0, 0.3), (0.02, 0.1)])
def test_adaptive_steps_equal_numpy_reference(optimizer, task, weight_decay, clip):
    """Adam and RMSprop over eight steps (two epochs of four minibatches), clipping then L2 then the update."""
    data = teacher(task, samples=10, features=3, outputs=2, test_fraction=0.2, seed=1)  # 8 training rows
    spec = fg.MLP(depth=3, width=4, activation="tanh", init="xavier_normal", sigma_b=0.1)
    lr, batch, epochs = 0.05, 2, 2
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, weight_decay=weight_decay, clip_norm=clip,
                   epochs=epochs, batch=batch, trials=2, seed=5, **ADAPTIVE)
    dims = res.spec.dims
    for k in range(2):
        W, b = unpack(res.initial[k], dims)
        mW, vW = [np.zeros_like(a) for a in W], [np.zeros_like(a) for a in W]
        mb, vb = [np.zeros_like(a) for a in b], [np.zeros_like(a) for a in b]
        t = 0
        for epoch in range(epochs):
            order = np.argsort(uniforms(5, k, ORDER_TENSOR + epoch, 8), kind="stable")
            for s in range(8 // batch):
                rows = order[s * batch : (s + 1) * batch]
                gW, gb = reference_grads(W, b, data.x_train[rows], data.y_train[rows], "tanh", task)
                scale = 1.0
                if clip is not None:
                    norm = np.sqrt(sum((g**2).sum() for g in gW) + sum((g**2).sum() for g in gb))
                    scale = min(1.0, clip / norm)
                t += 1  # the trial's step count, across epochs: Adam's bias correction
                adaptive_update(optimizer, W, gW, mW, vW, t, weight_decay, scale, lr, **ADAPTIVE)
                adaptive_update(optimizer, b, gb, mb, vb, t, 0.0, scale, lr, **ADAPTIVE)
        Wf, bf = unpack(res.final[k], dims)
        for got, ref in zip(Wf + bf, W + b, strict=True):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


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
    for kwargs, match in (({"optimizer": "adagrad"}, "optimizer"), ({"lr": 0.0}, "lr"), ({"epochs": 0}, "epochs"),
                          ({"batch": 1000}, "batch"), ({"clip_norm": -1.0}, "clip_norm")):
        with pytest.raises(ValueError, match=match):
            fg.train(spec, data, **kwargs)
    with pytest.raises(ValueError, match="data"):
        fg.train(spec, Dataset)


@pytest.mark.parametrize("kwargs, match", [
    ({"betas": 0.9}, "betas"), ({"betas": (0.9,)}, "betas"), ({"betas": (0.9, 0.99, 0.999)}, "betas"),
    ({"betas": "ab"}, "betas"), ({"betas": (0.9, "x")}, "betas"), ({"betas": (1.0, 0.999)}, "betas: beta1"),
    ({"betas": (0.9, -0.1)}, "betas: beta2"), ({"betas": (0.9, float("nan"))}, "betas"),
    ({"eps": 0.0}, "eps"), ({"eps": -1e-8}, "eps"), ({"eps": float("inf")}, "eps"), ({"eps": None}, "eps"),
    ({"alpha": 1.0}, "alpha"), ({"alpha": -0.5}, "alpha"), ({"alpha": "0.9"}, "alpha"),
])
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_bad_adaptive_arguments_are_refused_by_name(kwargs, match, optimizer):
    data = teacher(samples=50, seed=0)
    with pytest.raises(ValueError, match=match):
        fg.train(fg.MLP(depth=2, width=4), data, optimizer=optimizer, **kwargs)


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


@pytest.mark.parametrize("optimizer, clip, decay",
                         [("adam", None, 0.0), ("adam", 0.5, 0.01), ("rmsprop", None, 0.0), ("rmsprop", 0.2, 0.02)])
def test_rnn_adaptive_steps_equal_numpy_bptt(optimizer, clip, decay):
    """Adam and RMSprop through BPTT over four steps (two epochs), L2 on W_hh, W_xh and W_o only."""
    data = fg.data.adding(samples=10, steps=5, seed=2)  # 8 training sequences
    spec = fg.RNN(steps=5, hidden=4, inputs=2, gain=1.3, sigma_b=0.1)
    lr, batch, epochs = 0.05, 4, 2
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, weight_decay=decay, clip_norm=clip, epochs=epochs,
                   batch=batch, trials=2, seed=3, **ADAPTIVE)
    n, d, k = 4, 2, 1
    n_decayed = n * n + d * n
    for trial in range(2):
        p = [res.initial[trial].copy()]
        m, v = [np.zeros_like(p[0])], [np.zeros_like(p[0])]
        mask = np.zeros_like(p[0])
        mask[:n_decayed] = 1.0
        mask[n_decayed + n : n_decayed + n + n * k] = 1.0
        t = 0
        for epoch in range(epochs):
            order = np.argsort(uniforms(3, trial, ORDER_TENSOR + epoch, 8), kind="stable")
            for s in range(2):
                rows = order[s * batch : (s + 1) * batch]
                grad = rnn_reference_step(p[0], data.x_train[rows], data.y_train[rows], n, d, k, "tanh")
                scale = 1.0 if clip is None else min(1.0, clip / np.linalg.norm(grad))
                t += 1
                adaptive_update(optimizer, p, [grad], m, v, t, decay * mask, scale, lr, **ADAPTIVE)
        np.testing.assert_allclose(res.final[trial], p[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_adaptive_optimisers_train_in_float32_as_in_float64(optimizer):
    """Both models, both dtypes: float32 follows float64 closely, and the loss falls."""
    data = teacher("classification", samples=300, features=8, outputs=3, seed=3)
    spec = fg.MLP(depth=3, width=16, activation="tanh")
    seq = fg.data.adding(samples=200, steps=8, seed=1)
    rnn = fg.RNN(steps=8, hidden=8, inputs=2)
    for model, task, lr in ((spec, data, 0.01), (rnn, seq, 0.005)):
        runs = [fg.train(model, task, optimizer=optimizer, lr=lr, weight_decay=1e-4, clip_norm=5.0, epochs=4,
                         trials=3, seed=2, dtype=dtype) for dtype in ("float64", "float32")]
        assert runs[1].final.dtype == np.float32 and runs[0].fraction_diverged() == 0.0
        assert np.all(runs[0].loss[:, -1] < runs[0].loss[:, 0])
        np.testing.assert_allclose(runs[1].loss, runs[0].loss, rtol=1e-5)
        np.testing.assert_allclose(runs[1].final, runs[0].final, atol=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_adaptive_steps_equal_pytorch(optimizer):
    """The same initial weights and minibatches through torch.optim.Adam / RMSprop (L2 on the weights only)."""
    torch = pytest.importorskip("torch")
    data = teacher("classification", samples=40, features=5, outputs=3, test_fraction=0.2, seed=4)  # 32 rows
    spec = fg.MLP(depth=3, width=6, activation="tanh", init="xavier_normal", sigma_b=0.1)
    lr, batch, epochs, decay = 0.01, 8, 3, 0.01
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, weight_decay=decay, epochs=epochs, batch=batch,
                   trials=1, seed=7)  # PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, alpha 0.99
    W, b = unpack(res.initial[0], res.spec.dims)
    Wt = [torch.tensor(w, requires_grad=True) for w in W]
    bt = [torch.tensor(v, requires_grad=True) for v in b]
    groups = [{"params": Wt, "weight_decay": decay}, {"params": bt, "weight_decay": 0.0}]
    opt = torch.optim.Adam(groups, lr=lr) if optimizer == "adam" else torch.optim.RMSprop(groups, lr=lr)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for epoch in range(epochs):
        order = np.argsort(uniforms(7, 0, ORDER_TENSOR + epoch, 32), kind="stable")
        for s in range(32 // batch):
            rows = torch.tensor(order[s * batch : (s + 1) * batch])
            h = x[rows]
            for l in range(len(Wt)):
                h = h @ Wt[l] + bt[l]
                h = h if l == len(Wt) - 1 else torch.tanh(h)
            loss = torch.nn.functional.cross_entropy(h, y[rows].argmax(dim=1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    Wf, bf = unpack(res.final[0], res.spec.dims)
    for got, ref in zip(Wf + bf, Wt + bt, strict=True):
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_clipping_stops_an_exploding_rnn_from_diverging():
    data = fg.data.adding(samples=400, steps=20, seed=1)
    spec = fg.RNN(steps=20, hidden=16, inputs=2, activation="relu", gain=2.0)  # gradients grow ~2^20
    free = fg.train(spec, data, lr=0.1, epochs=3, trials=4)
    clipped = fg.train(spec, data, lr=0.1, epochs=3, trials=4, clip_norm=1.0)
    assert free.fraction_diverged() == 1.0 and clipped.fraction_diverged() == 0.0
    assert np.all(np.isfinite(clipped.loss))

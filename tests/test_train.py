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


# Recurrent cells (vanilla RNN, LSTM, GRU) against PyTorch: nn.RNN / nn.LSTM / nn.GRU with a Linear read-out.

CELLS = {"rnn": (1, 1), "lstm": (4, 1), "gru": (3, 2)}  # gates G, cell biases


def cell_spec(cell, steps, inputs):
    common = {"steps": steps, "hidden": 4, "inputs": inputs, "sigma_b": 0.1}
    if cell == "rnn":
        return fg.RNN(gain=1.2, **common)
    if cell == "lstm":
        return fg.LSTM(init="orthogonal", forget_bias=1.0, **common)
    return fg.GRU(init="orthogonal", update_bias=0.5, **common)


def unpack_cell(flat, cell, n, d, k):
    """The packed [W_h, W_x, (cell biases), W_o, b_o] of one trial, as arrays."""
    gates, biases = CELLS[cell]
    g = gates * n
    sizes = [n * g, d * g] + [g] * biases + [n * k, k]
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [parts[0].reshape(n, g), parts[1].reshape(d, g), *parts[2 : 2 + biases], parts[-2].reshape(n, k),
            parts[-1]]


def torch_cell_training(torch, cell, initial, data, k_steps, optimizer, lr, decay, clip, epochs, batch, seed,
                        trial):
    """The same weights, minibatches and optimiser in PyTorch; returns the final packed parameters."""
    nn = torch.nn
    d, k = data.features, data.outputs
    n = 4
    parts = unpack_cell(initial, cell, n, d, k)
    module = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](d, n, batch_first=True).double()
    head = nn.Linear(n, k).double()
    t = lambda a: torch.tensor(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        module.weight_hh_l0.copy_(t(parts[0].T))
        module.weight_ih_l0.copy_(t(parts[1].T))
        module.bias_ih_l0.copy_(t(parts[2]))
        module.bias_hh_l0.copy_(t(parts[3]) if cell == "gru" else torch.zeros(module.bias_hh_l0.shape))
        head.weight.copy_(t(parts[-2].T))
        head.bias.copy_(t(parts[-1]))
    weights = [module.weight_hh_l0, module.weight_ih_l0, head.weight]
    biases = [module.bias_ih_l0] + ([module.bias_hh_l0] if cell == "gru" else []) + [head.bias]
    groups = [{"params": weights, "weight_decay": decay}, {"params": biases, "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=lr) if optimizer == "sgd" else torch.optim.Adam(groups, lr=lr)
    x, y = t(data.x_train), t(data.y_train).reshape(len(data.x_train), k_steps, k)
    n_rows = len(x)
    for epoch in range(epochs):
        order = np.argsort(uniforms(seed, trial, ORDER_TENSOR + epoch, n_rows), kind="stable")
        for s in range(n_rows // batch):
            rows = torch.tensor(order[s * batch : (s + 1) * batch])
            hs, _ = module(x[rows])
            out = head(hs[:, -k_steps:])  # (B, K, k)
            if data.task == "classification":
                loss = nn.functional.cross_entropy(out.reshape(-1, k), y[rows].argmax(dim=2).reshape(-1))
            else:
                loss = ((out - y[rows]) ** 2).sum() / (2 * batch * k_steps)
            opt.zero_grad()
            loss.backward()
            if clip is not None:  # fastgrad's clip / norm (clip_grad_norm_ divides by norm + 1e-6: 1e-6 relative)
                norm = torch.sqrt(sum((p.grad**2).sum() for p in weights + biases))
                for p in weights + biases:
                    p.grad *= min(1.0, clip / float(norm))
            opt.step()
    final = [weights[0].T, weights[1].T, *biases[:-1], weights[2].T, biases[-1]]
    return np.concatenate([p.detach().numpy().ravel() for p in final])


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("task, optimizer, clip, decay", [
    ("adding", "sgd", None, 0.0), ("copy", "sgd", 0.5, 0.01), ("copy", "adam", None, 0.0),
    ("adding", "adam", 0.3, 0.02),
])
def test_recurrent_training_equals_pytorch(cell, task, optimizer, clip, decay):
    """Four SGD or Adam steps (two epochs) of each cell against torch.nn.RNN/LSTM/GRU + Linear, to 1e-10.

    The adding problem reads out h_S (mse); the copy task the last K = 2 steps (cross-entropy
    per step, the gradient entering BPTT at every read-out step). L2 on W_h, W_x, W_o only.
    """
    torch = pytest.importorskip("torch")
    if task == "adding":
        data, k_steps = fg.data.adding(samples=10, steps=5, seed=2), 1  # 8 training sequences
    else:
        data, k_steps = fg.data.copy_task(samples=10, steps=2, symbols=3, delay=2, seed=2), 2
    spec = cell_spec(cell, data.x_train.shape[1], data.features)
    lr, batch, epochs = (0.3 if optimizer == "sgd" else 0.02), 4, 2
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, weight_decay=decay, clip_norm=clip, epochs=epochs,
                   batch=batch, trials=2, seed=3)
    for trial in range(2):
        ref = torch_cell_training(torch, cell, res.initial[trial], data, k_steps, optimizer, lr, decay, clip, epochs,
                                  batch, 3, trial)
        assert np.max(np.abs(ref - res.initial[trial])) > 1e-3  # the steps moved the weights
        np.testing.assert_allclose(res.final[trial], ref, rtol=1e-10, atol=1e-12)
    gates, biases = CELLS[cell]
    assert res.grad_w.shape == (2, epochs, 3) and res.grad_b.shape == (2, epochs, biases + 1)
    assert res.grad_h.shape == (2, epochs, data.x_train.shape[1])
    if cell != "rnn":  # trial k's cell weights are trial k of fastgrad.run(spec)
        wh = fg.gated_trial_arrays(res.spec, seed=3, trials=2, batch=1)[0]
        np.testing.assert_array_equal(res.initial[1, : wh[1].size], wh[1].ravel())
    if task == "copy":
        assert np.all((res.accuracy >= 0) & (res.accuracy <= 1)) and np.all(np.isfinite(res.test_accuracy))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_learn_the_adding_problem_in_both_dtypes(cell):
    """The loss falls for every trial; float32 follows float64."""
    data = fg.data.adding(samples=320, steps=10, seed=1)
    spec = {"lstm": fg.LSTM(steps=10, hidden=8, inputs=2, forget_bias=1.0),
            "gru": fg.GRU(steps=10, hidden=8, inputs=2)}[cell]
    runs = [fg.train(spec, data, optimizer="adam", lr=0.01, weight_decay=1e-4, clip_norm=5.0, epochs=6, trials=3,
                     seed=2, dtype=dtype) for dtype in ("float64", "float32")]
    assert runs[1].final.dtype == np.float32 and runs[0].fraction_diverged() == 0.0
    assert np.all(runs[0].loss[:, -1] < 0.5 * runs[0].loss[:, 0])
    np.testing.assert_allclose(runs[1].loss, runs[0].loss, rtol=1e-4)
    np.testing.assert_allclose(runs[1].final, runs[0].final, atol=1e-3)
    frame = runs[0].to_frame()
    assert len(frame) == 3 * 6 * max(runs[0].grad_w.shape[2], runs[0].grad_b.shape[2])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_training_is_bitwise_equal_across_threads(cell):
    data = fg.data.copy_task(samples=100, steps=3, symbols=4, delay=4, seed=1)
    spec = cell_spec(cell, data.x_train.shape[1], data.features)
    a = fg.train(spec, data, optimizer="adam", lr=0.01, epochs=2, batch=16, trials=5, seed=4, threads=2)
    b = fg.train(spec, data, optimizer="adam", lr=0.01, epochs=2, batch=16, trials=5, seed=4, threads=1)
    c = fg.train(spec, data, optimizer="adam", lr=0.01, epochs=2, batch=16, trials=2, seed=4, threads=1)
    for field in ("final", "loss", "accuracy", "test_accuracy", "grad_w", "grad_b", "grad_h"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), field
        assert getattr(a, field)[:2].tobytes() == getattr(c, field).tobytes(), field
    assert not np.array_equal(a.final[0], a.final[1])


def test_recurrent_training_refuses_bad_input_by_name():
    seq = fg.data.adding(samples=40, steps=5, seed=0)
    lstm = fg.LSTM(steps=5, hidden=4, inputs=2)
    flat = Dataset(seq.x_train[:, 0], seq.y_train, seq.x_test[:, 0], seq.y_test, "regression", "flat")
    with pytest.raises(ValueError, match="data: an RNN, LSTM or GRU trains on sequences"):
        fg.train(lstm, flat)
    too_long = Dataset(seq.x_train, np.zeros((len(seq.x_train), 6, 1)), seq.x_test, seq.y_test, "regression", "k")
    with pytest.raises(ValueError, match="data: training targets"):
        fg.train(fg.GRU(steps=5, hidden=4, inputs=2), too_long)
    other = Dataset(seq.x_train, seq.y_train, seq.x_test[:, :3], seq.y_test, "regression", "k")
    with pytest.raises(ValueError, match="data: held-out shapes"):
        fg.train(lstm, other)
    for kwargs, match in (({"lr": 0.0}, "lr"), ({"optimizer": "adagrad"}, "optimizer"), ({"batch": 100}, "batch"),
                          ({"clip_norm": 0.0}, "clip_norm"), ({"dtype": "float16"}, "dtype")):
        with pytest.raises(ValueError, match=match):
            fg.train(lstm, seq, **kwargs)
    with pytest.raises(ValueError, match="spec"):
        fg.train(fg.Chain(depth=3), seq)


def test_copy_task_shapes_and_its_mean_predictor_baseline():
    data = fg.data.copy_task(samples=3000, steps=5, symbols=8, delay=12, seed=3)
    length = 2 * 5 + 12
    assert data.x_train.shape == (2400, length, 10) and data.y_train.shape == (2400, 5, 8)
    assert data.x_test.shape == (600, length, 10) and data.task == "classification" and data.outputs == 8
    assert np.all(data.x_train.sum(axis=2) == 1) and np.all(data.y_train.sum(axis=2) == 1)
    codes = data.x_train.argmax(axis=2)
    assert np.all(codes[:, 5 + 12 - 1] == 9)  # the marker, once, just before the recall phase
    assert np.all((codes == 9).sum(axis=1) == 1) and np.all(codes[:, 5 : 5 + 11] == 0) and np.all(codes[:, 17:] == 0)
    np.testing.assert_array_equal(codes[:, :5] - 1, data.y_train.argmax(axis=2))  # the targets are the symbols
    # The mean predictor (the symbols' frequencies, whatever the input): loss log(8), accuracy 1/8.
    p = data.y_train.mean(axis=(0, 1))
    loss = -np.mean(np.sum(data.y_test * np.log(p), axis=2))
    accuracy = np.mean(data.y_test.argmax(axis=2) == p.argmax())
    assert abs(loss - np.log(8)) < 0.01 and abs(accuracy - 1 / 8) < 0.02
    for kwargs, match in (({"steps": 0}, "steps"), ({"symbols": 1}, "symbols"), ({"delay": 0}, "delay"),
                          ({"samples": 1}, "samples"), ({"test_fraction": 1.0}, "test_fraction")):
        with pytest.raises(ValueError, match=match):
            fg.data.copy_task(**kwargs)


# Residual MLPs (with and without pre-LayerNorm): the MLP's training loop through cpu_resmlp's passes.


def torch_resmlp_training(torch, initial, dims, data, residual, norm, optimizer, lr, decay, clip, epochs, batch,
                          seed, trial):
    """The same weights, minibatches and optimiser in PyTorch (tanh blocks, F.layer_norm without affine).

    Returns the final packed parameters and, per epoch, the mean over its steps of ||dL/dW_l||,
    ||dL/db_l|| and ||dL/dh_{l-1}|| (before clipping), as fastgrad records them.
    """
    F = torch.nn.functional
    W, b = unpack(initial, dims)
    Wt = [torch.tensor(w, requires_grad=True) for w in W]
    bt = [torch.tensor(v, requires_grad=True) for v in b]
    groups = [{"params": Wt, "weight_decay": decay}, {"params": bt, "weight_decay": 0.0}]
    opt = {"sgd": lambda: torch.optim.SGD(groups, lr=lr),
           "momentum": lambda: torch.optim.SGD(groups, lr=lr, momentum=0.9),
           "adam": lambda: torch.optim.Adam(groups, lr=lr)}[optimizer]()
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    depth, n_rows, classification = len(Wt), len(x), data.task == "classification"
    steps = n_rows // batch
    norms = np.zeros((3, epochs, depth))
    for epoch in range(epochs):
        order = np.argsort(uniforms(seed, trial, ORDER_TENSOR + epoch, n_rows), kind="stable")
        for s in range(steps):
            rows = torch.tensor(order[s * batch : (s + 1) * batch])
            h = x[rows].clone().requires_grad_(True)
            inputs = []
            for l in range(depth):
                inputs.append(h)
                h.retain_grad()
                if 0 < l < depth - 1:
                    u = F.layer_norm(h, (h.shape[1],), eps=1e-5) if norm == "layer" else h
                    h = h + residual * torch.tanh(u @ Wt[l] + bt[l])
                else:
                    z = h @ Wt[l] + bt[l]
                    h = z if (l == depth - 1 and classification) else torch.tanh(z)
            if classification:
                loss = F.cross_entropy(h, y[rows].argmax(dim=1))
            else:
                loss = ((h - y[rows]) ** 2).sum() / (2 * batch)
            opt.zero_grad()
            loss.backward()
            for l in range(depth):
                for i, t in enumerate((Wt[l].grad, bt[l].grad, inputs[l].grad)):
                    norms[i, epoch, l] += float(torch.linalg.norm(t)) / steps
            if clip is not None:  # fastgrad's clip / norm (clip_grad_norm_ divides by norm + 1e-6)
                total = torch.sqrt(sum((p.grad**2).sum() for p in Wt + bt))
                for p in Wt + bt:
                    p.grad *= min(1.0, clip / float(total))
            opt.step()
    final = np.concatenate([p.detach().numpy().ravel() for p in Wt + bt])
    return final, norms


@pytest.mark.parametrize("norm", [None, "layer"])
@pytest.mark.parametrize("task, optimizer, clip, decay, residual", [
    ("classification", "sgd", None, 0.0, 0.7), ("regression", "sgd", 0.3, 0.02, "1/sqrt(L)"),
    ("classification", "adam", 0.5, 0.01, "1/sqrt(L)"), ("regression", "adam", None, 0.0, 1.0),
    ("classification", "momentum", None, 0.01, 1.0),
])
def test_resmlp_training_equals_pytorch(norm, task, optimizer, clip, decay, residual):
    """Four steps (two epochs) of a depth-5 residual MLP against autograd and torch.optim, to 1e-10:
    the final weights and the recorded per-layer norms of dL/dW_l, dL/db_l and dL/dh_{l-1}."""
    torch = pytest.importorskip("torch")
    data = teacher(task, samples=10, features=3, outputs=2, test_fraction=0.2, seed=1)  # 8 training rows
    spec = fg.ResMLP(depth=5, width=6, activation="tanh", init="xavier_normal", sigma_b=0.1, residual=residual,
                     norm=norm)
    lr, batch, epochs = (0.3 if optimizer != "adam" else 0.02), 4, 2
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, weight_decay=decay, clip_norm=clip, epochs=epochs,
                   batch=batch, trials=2, seed=3)
    assert res.grad_w.shape == res.grad_b.shape == res.grad_h.shape == (2, epochs, 5)
    for trial in range(2):
        final, norms = torch_resmlp_training(torch, res.initial[trial], res.spec.dims, data,
                                             res.spec.residual_scale, norm, optimizer, lr, decay, clip, epochs,
                                             batch, 3, trial)
        assert np.max(np.abs(final - res.initial[trial])) > 1e-3  # the steps moved the weights
        np.testing.assert_allclose(res.final[trial], final, rtol=1e-10, atol=1e-12)
        for i, name in enumerate(("grad_w", "grad_b", "grad_h")):
            np.testing.assert_allclose(getattr(res, name)[trial], norms[i], rtol=1e-10, err_msg=name)


def test_resmlp_training_starts_from_the_plain_mlps_draws_and_is_bitwise_across_threads():
    data = teacher("classification", samples=200, features=8, outputs=3, seed=2)
    spec = fg.ResMLP(depth=6, width=12, residual="1/sqrt(L)", norm="layer")
    a = fg.train(spec, data, optimizer="adam", lr=0.01, weight_decay=1e-3, clip_norm=2.0, epochs=3, trials=5,
                 seed=4, threads=2)
    b = fg.train(spec, data, optimizer="adam", lr=0.01, weight_decay=1e-3, clip_norm=2.0, epochs=3, trials=5,
                 seed=4, threads=1)
    c = fg.train(spec, data, optimizer="adam", lr=0.01, weight_decay=1e-3, clip_norm=2.0, epochs=3, trials=2,
                 seed=4, threads=1)
    for field in ("initial", "final", "loss", "accuracy", "test_accuracy", "grad_w", "grad_b", "grad_h", "diverged"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), field
        assert getattr(a, field)[:2].tobytes() == getattr(c, field).tobytes(), field
    assert not np.array_equal(a.final[0], a.final[1]) and a.fraction_diverged() == 0.0
    assert np.all(a.loss[:, -1] < a.loss[:, 0])
    plain = fg.train(spec.plain(), data, optimizer="adam", lr=0.01, epochs=1, trials=5, seed=4)
    assert plain.grad_h is None
    np.testing.assert_array_equal(a.initial, plain.initial)  # trial k of the ResMLP is trial k of its MLP
    W, _, _, _ = fg.mlp_trial_arrays(a.spec.plain(), seed=4, trials=2, batch=1)
    np.testing.assert_array_equal(a.initial[1, : W[0][1].size], W[0][1].ravel())
    single = fg.train(spec, data, optimizer="adam", lr=0.01, weight_decay=1e-3, clip_norm=2.0, epochs=3, trials=2,
                      seed=4, dtype="float32")
    assert single.final.dtype == np.float32
    np.testing.assert_allclose(single.loss, c.loss, rtol=1e-4)


def test_resmlp_training_refuses_bad_input_by_name():
    data = teacher(samples=50, seed=0)
    spec = fg.ResMLP(depth=4, width=6, norm="layer")
    seq = fg.data.adding(samples=40, steps=5, seed=0)
    with pytest.raises(ValueError, match="data: an MLP or ResMLP needs inputs of shape"):
        fg.train(spec, seq)
    for kwargs, match in (({"optimizer": "adagrad"}, "optimizer"), ({"lr": 0.0}, "lr"), ({"epochs": 0}, "epochs"),
                          ({"batch": 1000}, "batch"), ({"clip_norm": -1.0}, "clip_norm"),
                          ({"betas": (1.0, 0.9)}, "betas"), ({"dtype": "float16"}, "dtype"),
                          ({"trials": 0}, "trials")):
        with pytest.raises(ValueError, match=match):
            fg.train(spec, data, **kwargs)
    with pytest.raises(ValueError, match="data"):
        fg.train(spec, Dataset)


def test_depth_experiment_runs_at_tiny_size():
    from fastgrad.studies.remedies import DEEP_NETS, run_depth_training

    data = teacher("classification", samples=80, features=5, outputs=3, seed=1)
    table, results = run_depth_training(data, depth=4, width=6, epochs=2, trials=2, batch=16, threshold=10.0)
    assert list(table.columns) == ["configuration", "reached", "epochs_to_threshold", "final_loss",
                                   "final_test_accuracy", "grad_w_first_over_last", "diverged", "seconds"]
    assert list(table.configuration) == list(DEEP_NETS) == list(results)
    assert np.all(table.reached == 1.0) and np.all(table.epochs_to_threshold == 1.0)  # every loss < 10
    assert isinstance(results["residual + LayerNorm, a = 1/sqrt(L)"].spec, fg.ResMLP)
    assert results["plain tanh, xavier"].loss.shape == (2, 2)


# The training link of dynamical isometry: training's trial k starts from fg.spectrum's trial k.


@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
def test_training_starts_from_the_draws_whose_spectrum_is_measured(weights):
    """fg.spectrum of the trained spec (the data's widths, linear read-out) is the spectrum of training's
    initial weights, trial by trial; so is the body's (the first L - 1 layers); the spec's own widths are not."""
    import dataclasses

    from fastgrad import mlp_jacobian
    from fastgrad.studies.remedies import isometry_specs

    data = teacher("classification", samples=60, features=5, outputs=3, seed=1)
    spec = isometry_specs(depth=5, width=7, sigma_b2=0.05, weights=weights)
    res = fg.train(spec, data, lr=0.05, epochs=1, trials=3, seed=4)
    assert (res.spec.input_width, res.spec.output_width, res.spec.last_activation) == (5, 3, "linear")
    W, b, x, _ = fg.mlp_trial_arrays(res.spec, seed=4, trials=3, batch=2)
    packed = np.concatenate([w.reshape(3, -1) for w in W] + b, axis=1)
    np.testing.assert_array_equal(res.initial, packed)  # run's trial k is training's trial k
    initial = [unpack(res.initial[k], res.spec.dims) for k in range(3)]
    W0 = [np.stack([initial[k][0][l] for k in range(3)]) for l in range(5)]
    b0 = [np.stack([initial[k][1][l] for k in range(3)]) for l in range(5)]
    for s, depth, last in ((fg.spectrum(res.spec, trials=3, batch=2, seed=4), 5, "linear"),
                           (fg.spectrum(dataclasses.replace(res.spec, depth=4, output_width=7, last_activation=None),
                                        trials=3, batch=2, seed=4), 4, None)):
        jac = mlp_jacobian(W0[:depth], b0[:depth], x, activation="tanh", last_activation=last)
        want = np.linalg.svd(jac, compute_uv=False)
        np.testing.assert_allclose(s.singular_values, want, rtol=1e-10, atol=1e-13 * want.max())
    # The spec's own widths (7 in, 7 out) draw other input and read-out layers (the hidden ones are shared).
    own = fg.mlp_trial_arrays(spec, seed=4, trials=3, batch=2)[0]
    assert own[0].shape != W[0].shape and own[-1].shape != W[-1].shape and np.array_equal(own[1], W[1])


def test_isometry_experiment_runs_at_tiny_size():
    from fastgrad.studies.remedies import run_isometry_training

    data = teacher("classification", samples=80, features=5, outputs=3, seed=1)
    per_trial, summary, correlations, results = run_isometry_training(
        data, depth=4, width=6, sigma_b2=0.05, trials=4, epochs=2, lr=0.05, batch=16, at_epoch=1, threshold=10.0)
    assert list(per_trial.columns) == ["weights", "trial", "spread", "spread_body", "mean_squared_body",
                                       "condition_body", "loss_at_epoch", "epochs_to_threshold", "final_loss",
                                       "final_test_accuracy", "diverged"]
    assert list(summary.columns) == ["weights", "sigma_w2", "sigma_b2", "spread", "spread_body",
                                     "mean_squared_body", "loss_at_epoch", "reached", "epochs_to_threshold",
                                     "final_loss", "final_test_accuracy", "seconds"]
    assert list(correlations.columns) == ["spread", "speed", "rho_all", "p_all", "rho_gaussian", "p_gaussian",
                                         "rho_orthogonal", "p_orthogonal"]
    assert len(per_trial) == 8 and list(summary.weights) == ["gaussian", "orthogonal"] == list(results)
    assert len(correlations) == 4 and list(correlations.speed) == ["loss_at_epoch", "epochs_to_threshold"] * 2
    by_loss = correlations[correlations.speed == "loss_at_epoch"]
    assert np.all(np.abs(by_loss.rho_all) <= 1) and np.all((by_loss.p_all >= 0) & (by_loss.p_all <= 1))
    assert correlations[correlations.speed == "epochs_to_threshold"].rho_all.isna().all()  # every trial: epoch 1
    assert np.all(per_trial.spread >= 0) and np.all(summary.reached == 1.0)
    np.testing.assert_array_equal(per_trial.loss_at_epoch[:4], results["gaussian"].loss[:, 0])
    with pytest.raises(ValueError, match="at_epoch"):
        run_isometry_training(data, depth=4, width=6, epochs=2, at_epoch=3)
    import matplotlib.pyplot as plt

    from fastgrad import plot

    fig = plot.isometry_scatter(per_trial, correlations, title="tiny")
    assert len(fig.axes) == 2 and all(ax.get_xlabel().startswith("initial var(lambda)") for ax in fig.axes)
    assert fig.axes[0].get_ylabel() and "Spearman rho: all trials" in fig.axes[0].get_title()
    plt.close(fig)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 33, 1000])
def test_epoch_order_sort_equals_numpys_stable_argsort(n):
    """The training kernels' merge sort against NumPy's, with ties (stable) and without."""
    from fastgrad.kernels.cpu_train import argsort_stable

    rng = np.random.default_rng(n)
    for keys in (rng.random(n), rng.integers(0, 3, n).astype(float), np.zeros(n)):
        assert np.array_equal(argsort_stable(keys), np.argsort(keys, kind="stable"))


def test_warm_up_scales_the_first_update_of_the_mlp():
    """SGD's first update with warm-up w is the update without it divided by w; warmup_steps=1 changes nothing.

    Every training loop passes its update count to the shared ``optimizer_step`` (Adam's bias correction,
    tested against torch.optim for every family, uses the same count), so the warm-up is tested here and
    for the transformer (tests/test_transformer_train.py).
    """
    data = fg.data.teacher(samples=80, features=4, outputs=3, test_fraction=0.2, seed=0)
    spec = fg.MLP(depth=2, width=5)
    kw = {"optimizer": "sgd", "lr": 0.1, "epochs": 1, "batch": 64, "trials": 2, "seed": 0}
    plain = fg.train(spec, data, **kw)
    assert np.array_equal(fg.train(spec, data, warmup_steps=1, **kw).final, plain.final)
    warm = fg.train(spec, data, warmup_steps=4, **kw)
    np.testing.assert_allclose(warm.final - warm.initial, (plain.final - plain.initial) / 4, rtol=1e-12, atol=1e-15)
    assert warm.config["warmup_steps"] == 4

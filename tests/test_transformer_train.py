"""Training transformers (``fg.train``): steps against PyTorch autograd and torch.optim, warm-up, draws, refusals."""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.codes import ORDER as ORDER_TENSOR
from fastgrad.data import Dataset
from fastgrad.rng import uniforms

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tests.test_transformer import torch_forward  # noqa: E402  (needs torch)

L, T, D, H, RATIO, K = 2, 3, 4, 2, 2, 3


def tiny_data(task: str, n: int = 8, n_test: int = 3, seed: int = 0) -> Dataset:
    """n training and n_test held-out sequences of T tokens of width D, a target per token (K outputs)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + n_test, T, D))
    if task == "classification":
        y = np.eye(K)[rng.integers(0, K, (n + n_test, T))]
    else:
        y = rng.standard_normal((n + n_test, T, K))
    return Dataset(x[:n], y[:n], x[n:], y[n:], task, "tiny")


def unpack(flat: np.ndarray, depth: int, d: int, m: int, k: int) -> list[np.ndarray]:
    """W_q, W_k, W_v, W_o (L, d, d), W_1 (L, d, m), W_2 (L, m, d), W_r (d, k), b_r (k) of a packed vector."""
    shapes = [(depth, d, d)] * 4 + [(depth, d, m), (depth, m, d), (d, k), (k,)]
    out, off = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[off:off + size].reshape(shape).copy())
        off += size
    assert off == flat.size
    return out


def torch_training(initial, data, cfg, optimizer, lr, warmup, clip, decay, epochs, batch, seed, trial):
    """The same network, minibatches and optimiser in PyTorch: final parameters and per-epoch records."""
    ps = [torch.tensor(a, requires_grad=True) for a in unpack(initial, L, D, RATIO * D, K)]
    groups = [{"params": ps[:7], "weight_decay": decay}, {"params": ps[7:], "weight_decay": 0.0}]
    opt = (torch.optim.Adam(groups, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(groups, lr=lr, momentum=0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    n = x.shape[0]
    steps = n // batch
    rec = {"loss": np.zeros(epochs), "grad_w": np.zeros((epochs, L + 1)), "grad_b": np.zeros((epochs, 1)),
           "grad_h": np.zeros((epochs, L))}
    classification = data.task == "classification"
    for epoch in range(epochs):
        order = np.argsort(uniforms(seed, trial, ORDER_TENSOR + epoch, n), kind="stable")
        for s in range(steps):
            rows = torch.tensor(order[s * batch:(s + 1) * batch])
            keep: list = []
            out = torch_forward(ps[:6], x[rows], None, H, keep=keep, output=True, **cfg)
            logits = out @ ps[6] + ps[7]
            if classification:
                loss = F.cross_entropy(logits.reshape(-1, K), y[rows].reshape(-1, K).argmax(1))
            else:
                loss = 0.5 * ((logits - y[rows]) ** 2).sum() / (batch * T)
            opt.zero_grad()
            loss.backward()
            rec["loss"][epoch] += float(loss.detach()) / steps
            for l in range(L):
                block = sum(float((p.grad[l] ** 2).sum()) for p in ps[:6])
                rec["grad_w"][epoch, l] += np.sqrt(block) / steps
                rec["grad_h"][epoch, l] += float(torch.linalg.norm(keep[l][0].grad)) / steps
            rec["grad_w"][epoch, L] += float(torch.linalg.norm(ps[6].grad)) / steps
            rec["grad_b"][epoch, 0] += float(torch.linalg.norm(ps[7].grad)) / steps
            if clip:
                total = torch.sqrt(sum((p.grad ** 2).sum() for p in ps))
                if total > clip:
                    for p in ps:
                        p.grad *= clip / total
            opt.step()
            sched.step()
    return np.concatenate([p.detach().numpy().ravel() for p in ps]), rec


CASES = [
    ({"norm": "pre"}, "classification", "adam", 3, None, 0.0),
    ({"norm": "post"}, "classification", "adam", 2, 0.5, 0.01),
    ({"norm": "none", "causal": True, "final_norm": True, "norm_kind": "rms"}, "regression", "momentum", 3, None, 0.0),
    ({"norm": "post", "residual": "1/sqrt(L)", "activation": "relu"}, "regression", "adam", 0, 0.3, 0.0),
]


@pytest.mark.parametrize(("cfg", "task", "optimizer", "warmup", "clip", "decay"), CASES)
def test_training_equals_pytorch(cfg, task, optimizer, warmup, clip, decay):
    """Four updates (two epochs) against torch autograd, torch.optim and LambdaLR, float64, to 1e-10."""
    data = tiny_data(task)
    lr, epochs, batch, seed = 0.05, 2, 4, 3
    spec = fg.Transformer(depth=L, tokens=T, width=D, heads=H, ratio=RATIO, **cfg)
    res = fg.train(spec, data, optimizer=optimizer, lr=lr, warmup_steps=warmup, clip_norm=clip, weight_decay=decay,
                   epochs=epochs, batch=batch, trials=2, seed=seed)
    for trial in range(2):
        torch_cfg = {k: v for k, v in cfg.items()}
        final, rec = torch_training(res.initial[trial], data, torch_cfg, optimizer, lr, warmup, clip, decay, epochs,
                                    batch, seed, trial)
        np.testing.assert_allclose(res.final[trial], final, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(res.loss[trial], rec["loss"], rtol=1e-10)
        np.testing.assert_allclose(res.grad_w[trial], rec["grad_w"], rtol=1e-10)
        np.testing.assert_allclose(res.grad_b[trial], rec["grad_b"], rtol=1e-10)
        np.testing.assert_allclose(res.grad_h[trial], rec["grad_h"], rtol=1e-10)
        assert not np.array_equal(res.final[trial], res.initial[trial])
    if task == "classification":  # held-out accuracy per token, by the numbers the records end with
        ps = [torch.tensor(a) for a in unpack(res.final[0], L, D, RATIO * D, K)]
        out = torch_forward(ps[:6], torch.tensor(data.x_test), None, H, output=True, **cfg)
        hits = ((out @ ps[6] + ps[7]).argmax(-1).numpy() == data.y_test.argmax(-1)).mean()
        assert res.test_accuracy[0, -1] == pytest.approx(hits, abs=1e-12)
    else:
        assert np.isnan(res.test_accuracy).all() and np.isnan(res.accuracy).all()


def test_starts_from_the_runs_draws_and_is_bitwise_across_threads_and_trial_counts():
    data = tiny_data("classification", n=12, n_test=5)  # 5 held out: a partial last batch
    spec = fg.Transformer(depth=L, tokens=T, width=D, heads=H, ratio=RATIO, norm="post")
    kw = {"optimizer": "adam", "lr": 0.01, "epochs": 2, "batch": 4, "seed": 5}
    a = fg.train(spec, data, trials=3, threads=1, **kw)
    b = fg.train(spec, data, trials=3, threads=2, **kw)
    c = fg.train(spec, data, trials=2, threads=1, **kw)
    for name in ("final", "loss", "grad_w", "grad_h", "test_accuracy"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
        assert np.array_equal(getattr(a, name)[:2], getattr(c, name), equal_nan=True), name
    ws = fg.transformer_trial_arrays(a.spec, seed=5, trials=3, batch=1)[:6]
    blocks = np.concatenate([w.reshape(3, -1) for w in ws], axis=1)
    assert np.array_equal(a.initial[:, :blocks.shape[1]], blocks)
    readout = a.initial[:, blocks.shape[1]:-K]
    assert 0.2 < readout.std() * np.sqrt(D) < 5  # W_r ~ N(0, 1 / d)
    assert (a.initial[:, -K:] == 0).all()


def test_warm_up_scales_the_first_update():
    """SGD's first update with warm-up w is the update without it divided by w; warmup_steps=1 changes nothing."""
    data = tiny_data("classification")
    spec = fg.Transformer(depth=L, tokens=T, width=D, heads=H, ratio=RATIO, norm="post")
    kw = {"optimizer": "sgd", "lr": 0.1, "epochs": 1, "batch": 8, "trials": 2, "seed": 1}
    plain = fg.train(spec, data, **kw)
    assert np.array_equal(fg.train(spec, data, warmup_steps=1, **kw).final, plain.final)
    warm = fg.train(spec, data, warmup_steps=4, **kw)
    np.testing.assert_allclose(warm.final - warm.initial, (plain.final - plain.initial) / 4, rtol=1e-9, atol=1e-15)


def test_learns_to_sort_digits_in_both_dtypes():
    data = fg.data.sort_digits(samples=240, tokens=4, digits=4, width=8, seed=0)
    spec = fg.Transformer(depth=1, tokens=4, width=8, heads=2)
    for dtype in ("float64", "float32"):
        res = fg.train(spec, data, optimizer="adam", lr=3e-3, epochs=6, batch=8, trials=2, dtype=dtype,
                       warmup_steps=10)
        assert (res.loss[:, -1] < 0.6 * res.loss[:, 0]).all(), res.loss
        assert (res.test_accuracy[:, -1] > 0.5).all(), res.test_accuracy
        assert res.final.dtype == np.dtype(dtype)
        assert np.isfinite(res.epochs_to(np.log(4))).all()


@pytest.mark.parametrize(("change", "match"), [
    ({"data": Dataset(np.zeros((8, 12)), np.zeros((8, 3)), np.zeros((0, 12)), np.zeros((0, 3)), "regression", "flat")},
     "data: a Transformer trains on sequences"),
    ({"data": tiny_data("regression"), "spec": fg.Transformer(depth=1, tokens=3, width=6, heads=2)},
     "data: sequences of 3 tokens of width 4, but the spec has tokens=3, width=6"),
    ({"spec": fg.Transformer(depth=1, tokens=5, width=4, heads=2)}, "data: sequences of 3 tokens"),
    ({"spec": fg.Transformer(depth=1, tokens=3, width=4, heads=2, loss="probe")}, "spec: loss='probe'"),
    ({"warmup_steps": -1}, "warmup_steps: must be >= 0"),
    ({"warmup_steps": 2.5}, "warmup_steps: expected an integer"),
    ({"warmup_steps": 2**64}, r"warmup_steps: must be < 2\*\*63"),  # not Numba's typing error
    ({"seed": 10**30}, r"seed: must be < 2\*\*63"),
])
def test_bad_input_is_refused_by_name(change, match):
    args = {"spec": fg.Transformer(depth=1, tokens=3, width=4, heads=2), "data": tiny_data("classification")}
    kw = {"epochs": 1, "batch": 4, "trials": 1}
    kw.update({k: v for k, v in change.items() if k not in args})
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(ValueError, match=match):
        fg.train(args["spec"], args["data"], **kw)

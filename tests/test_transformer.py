"""fg.Transformer against PyTorch autograd (float64, torch.nn.functional), central differences and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgrad as fg
from fastgrad._numba import max_threads
from fastgrad.cli import main
from fastgrad.codes import ORTHOGONAL
from fastgrad.models.transformer import transformer

torch = pytest.importorskip("torch")
F = torch.nn.functional

SIZE = {"depth": 2, "tokens": 4, "width": 4, "heads": 2, "ratio": 2}


def torch_forward(ws, x, y, heads, activation="gelu", norm="pre", norm_kind=None, final_norm=None, residual=1.0,
                  skip=True, causal=False, loss="mse", keep=None, output=False):
    """The loss of one trial from torch.nn.functional ops; ``keep`` collects the streams and attentions.

    ``output=True`` returns the last stream (after the final norm, if any) instead of the loss.
    """
    wq, wk, wv, wo, w1, w2 = ws
    depth = wq.shape[0]
    batch, tokens, d = x.shape
    dh = d // heads
    a = 1 / math.sqrt(depth) if residual == "1/sqrt(L)" else residual
    final = norm == "pre" if final_norm is None else final_norm

    def nrm(h):
        return F.rms_norm(h, (d,)) if norm_kind == "rms" else F.layer_norm(h, (d,), eps=1e-5)

    h = x
    for l in range(depth):
        u = nrm(h) if norm == "pre" else h
        q, k, v = ((u @ m[l]).view(batch, tokens, heads, dh).transpose(1, 2) for m in (wq, wk, wv))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if causal:
            s = s.masked_fill(torch.ones(tokens, tokens, dtype=torch.bool).triu(1), float("-inf"))
        att = torch.softmax(s, -1)
        o = (att @ v).transpose(1, 2).reshape(batch, tokens, d)
        t = (h if skip else 0) + a * (o @ wo[l])
        t = nrm(t) if norm == "post" else t
        if w1 is not None:
            v_in = nrm(t) if norm == "pre" else t
            z = v_in @ w1[l]
            t2 = (t if skip else 0) + a * ((F.gelu(z) if activation == "gelu" else F.relu(z)) @ w2[l])
            t = nrm(t2) if norm == "post" else t2
        if keep is not None:
            t.retain_grad()
            keep.append((t, att))
        h = t
    out = nrm(h) if final else h
    if output:
        return out
    return (0.5 * ((out - y) ** 2).sum() if loss == "mse" else (out * y).sum()) / batch


def torch_stats(arrays, t, **kw):
    """Every statistic of trial t from torch autograd."""
    ws = [torch.tensor(a[t], dtype=torch.float64, requires_grad=True) if a is not None else None for a in arrays[:6]]
    x, y = (torch.tensor(a[t], dtype=torch.float64) for a in arrays[6:])
    keep: list = []
    torch_forward(ws, x, y, keep=keep, **kw).backward()
    names = ("grad_wq", "grad_wk", "grad_wv", "grad_wo", "grad_w1", "grad_w2")
    out = {n: np.array([float(w.grad[l].norm()) for l in range(w.shape[0])])
           for n, w in zip(names, ws, strict=True) if w is not None}
    streams = [s.detach() for s, _ in keep]
    out["grad_x"] = np.array([float(s.grad.norm()) for s, _ in keep])
    out["q"] = np.array([float((s ** 2).mean()) for s in streams])
    ent = []
    for _, att in keep:
        plogp = torch.where(att > 0, att * torch.log(att), torch.zeros_like(att))
        ent.append(float(-plogp.sum(-1).mean().detach()))
    out["entropy"] = np.array(ent)
    out["res"] = np.array([float(((s - s.mean(1, keepdim=True)).flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1))
                                 .mean()) for s in streams])
    return out


CONFIGS = [
    {"norm": "pre"},
    {"norm": "pre", "norm_kind": "rms", "causal": True, "activation": "relu", "loss": "probe"},
    {"norm": "post", "residual": "1/sqrt(L)"},
    {"norm": "post", "norm_kind": "rms", "causal": True},
    {"norm": "none", "causal": True, "residual": 0.5, "loss": "probe"},
    {"norm": "none", "final_norm": True, "norm_kind": "rms"},
    {"norm": "pre", "skip": False, "final_norm": False},
    {"norm": "post", "mlp": False, "causal": True},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_every_statistic_equals_torch_autograd(cfg):
    kw = {k: v for k, v in cfg.items() if k != "mlp"}
    size = {k: v for k, v in SIZE.items() if cfg.get("mlp", True) or k != "ratio"}
    spec = fg.Transformer(**size, **cfg)
    run = fg.run(spec, trials=2, batch=3, seed=5)
    arrays = fg.transformer_trial_arrays(spec, 5, 2, 3)
    given = fg.transformer_backprop(*arrays, heads=2, **kw)
    for t in range(2):
        ref = torch_stats(arrays, t, heads=2, **kw)
        assert set(ref) == set(run.per_layer)
        for name, want in ref.items():
            np.testing.assert_allclose(getattr(run, name)[t], want, rtol=1e-10, atol=1e-13, err_msg=name)
            assert np.array_equal(getattr(given, name)[t], getattr(run, name)[t]), name  # trial arrays = the run


@given(depth=st.integers(1, 3), tokens=st.integers(1, 5), heads=st.integers(1, 2), head_dim=st.integers(1, 3),
       ratio=st.integers(1, 2), norm=st.sampled_from(["pre", "post", "none"]), rms=st.booleans(),
       causal=st.booleans(), skip=st.booleans(), mlp=st.booleans(), relu=st.booleans(), probe=st.booleans(),
       batch=st.integers(1, 3), seed=st.integers(0, 2 ** 31))
def test_random_shapes_and_options_equal_torch_autograd(depth, tokens, heads, head_dim, ratio, norm, rms, causal,
                                                        skip, mlp, relu, probe, batch, seed):
    kw = {"norm": norm, "causal": causal, "skip": skip, "activation": "relu" if relu else "gelu",
          "loss": "probe" if probe else "mse", "norm_kind": ("rms" if rms else "layer") if norm != "none" else None}
    spec = fg.Transformer(depth=depth, tokens=tokens, width=heads * head_dim, heads=heads, mlp=mlp,
                          ratio=ratio if mlp else None, **kw)
    run = fg.run(spec, trials=1, batch=batch, seed=seed)
    ref = torch_stats(fg.transformer_trial_arrays(spec, seed, 1, batch), 0, heads=heads, **kw)
    for name, want in ref.items():  # width 1 under LayerNorm: zero streams, res = 0/0 = nan on both sides
        np.testing.assert_allclose(getattr(run, name)[0], want, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_central_differences_of_the_loss(norm):
    spec = fg.Transformer(depth=1, tokens=3, width=4, heads=2, ratio=1, norm=norm, causal=norm == "post")
    arrays = fg.transformer_trial_arrays(spec, 2, 1, 2)
    got = fg.run(spec, trials=1, batch=2, seed=2)
    x, y = (torch.tensor(a[0], dtype=torch.float64) for a in arrays[6:])
    base = [torch.tensor(a[0], dtype=torch.float64) for a in arrays[:6]]
    h = 1e-5
    for k, name in enumerate(("grad_wq", "grad_wk", "grad_wv", "grad_wo", "grad_w1", "grad_w2")):
        grad = np.empty(base[k].numel())
        for i in range(grad.size):
            ws = [w.clone() for w in base]
            ws[k].view(-1)[i] += h
            up = float(torch_forward(ws, x, y, 2, norm=norm, causal=spec.causal))
            ws[k].view(-1)[i] -= 2 * h
            grad[i] = (up - float(torch_forward(ws, x, y, 2, norm=norm, causal=spec.causal))) / (2 * h)
        np.testing.assert_allclose(getattr(got, name)[0, 0], np.linalg.norm(grad), rtol=1e-7, err_msg=name)


def test_zero_queries_and_keys_give_uniform_attention_and_the_mean_of_the_values():
    spec = fg.Transformer(depth=2, tokens=5, width=4, heads=2, mlp=False, skip=False, norm="none")
    wq, wk, wv, wo, _, _, x, y = fg.transformer_trial_arrays(spec, 0, 2, 3)
    eye = np.broadcast_to(np.eye(4), wv.shape)
    res = fg.transformer_backprop(0 * wq, 0 * wk, eye, eye, None, None, x, y, heads=2, norm="none", skip=False)
    np.testing.assert_allclose(res.entropy, math.log(5), rtol=1e-13)  # uniform over 5 keys
    mean_token = x.mean(axis=2)  # every token of X_1 is its sequence's mean input token
    np.testing.assert_allclose(res.q[:, 0], (mean_token ** 2).mean(axis=(1, 2)), rtol=1e-13)
    causal = fg.transformer_backprop(0 * wq, 0 * wk, eye, eye, None, None, x, y, heads=2, norm="none", skip=False,
                                     causal=True)
    np.testing.assert_allclose(causal.entropy, np.mean(np.log(np.arange(1, 6))), rtol=1e-13)


def test_uniform_attention_without_residuals_collapses_rank_at_once():
    # sigma_qk2 = 0: every score is 0, attention is uniform and every token of X_1 is the same; the MLP acts
    # token by token, so res stays exactly 0 in every later block.
    for mlp in (False, True):
        spec = fg.Transformer(depth=3, tokens=6, width=4, heads=2, skip=False, norm="none", mlp=mlp, sigma_qk2=0.0)
        res = fg.run(spec, trials=3, batch=2).res
        assert np.all(res == 0.0)
        assert np.all(fg.run(fg.Transformer(depth=3, tokens=6, width=4, heads=2, mlp=mlp, norm="none"),
                             trials=3, batch=2).res > 0.1)


def test_zero_branches_pass_the_pre_norm_stream_gradient_unchanged():
    spec = fg.Transformer(**{**SIZE, "depth": 4})
    wq, wk, wv, wo, w1, w2, x, y = fg.transformer_trial_arrays(spec, 1, 2, 3)
    res = fg.transformer_backprop(wq, wk, wv, 0 * wo, w1, 0 * w2, x, y, heads=2)
    assert np.all(res.grad_x == res.grad_x[:, -1:])  # the identity through every block, bit for bit
    for name in ("grad_wq", "grad_wk", "grad_wv", "grad_w1"):
        assert np.all(getattr(res, name) == 0.0)
    assert np.all(res.grad_wo > 0) and np.all(res.grad_w2 > 0)


def test_reproducible_across_threads_chunks_and_first_trial():
    spec = fg.Transformer(**SIZE, causal=True)
    whole = fg.run(spec, trials=7, batch=2, threads=1)
    split = fg.run(spec, trials=7, batch=2, threads=min(2, max_threads()), chunk=3)
    part = fg.run(spec, trials=4, batch=2, first_trial=3)
    for name in whole.per_layer:
        assert np.array_equal(getattr(whole, name), getattr(split, name))
        assert np.array_equal(getattr(whole, name)[3:], getattr(part, name))
    wq = fg.transformer_trial_arrays(spec, 0, np.array([4, 1]), 2)[0]
    assert np.array_equal(wq, fg.transformer_trial_arrays(spec, 0, 5, 2)[0][[4, 1]])


def test_inits_scale_each_matrix_group():
    spec = fg.Transformer(depth=1, tokens=2, width=32, heads=4, sigma_qk2=0.25, sigma_vo2=2.0, sigma_mlp2=4.0)
    wq, _, wv, _, w1, w2, _, _ = fg.transformer_trial_arrays(spec, 0, 4, 1)
    for w, var in ((wq, 0.25 / 32), (wv, 2.0 / 32), (w1, 4.0 / 32), (w2, 4.0 / 128)):
        assert abs(w.var() / var - 1) < 0.1
    xav = fg.transformer_trial_arrays(fg.Transformer(depth=1, tokens=2, width=32, heads=4, init="xavier_normal",
                                                     gain=2.0), 0, 4, 1)
    assert abs(xav[4].var() / (4.0 * 2 / (32 + 128)) - 1) < 0.1
    # orthogonal: gain times a Haar matrix, drawn by draw.factored (QR; its compilation is tested with the MLP's)
    _, init = transformer(fg.Transformer(depth=1, tokens=2, width=4, heads=2, init="orthogonal", gain=1.2))
    assert init.kind == ORTHOGONAL and np.all(init.scales == 1.2) and init.draw.name == "factored"
    # the same standard normals under every scale: trials are paired
    half = fg.transformer_trial_arrays(fg.Transformer(depth=1, tokens=2, width=32, heads=4, sigma_qk2=1.0), 0, 4, 1)
    np.testing.assert_allclose(wq, 0.5 * half[0], rtol=1e-15)


def test_float32_runs_close_to_float64():
    # through the explicit routine: the float32 kernel without compiling the float32 draws (tested with the MLP's)
    # relu: its float32 loop compiles in a fraction of gelu's (erfc)
    spec = fg.Transformer(**SIZE, norm="post", activation="relu")
    arrays = fg.transformer_trial_arrays(spec, 0, 3, 2)
    r64 = fg.transformer_backprop(*arrays, heads=2, norm="post", activation="relu")
    r32 = fg.transformer_backprop(*(a.astype(np.float32) for a in arrays), heads=2, norm="post", activation="relu")
    for name in r64.per_layer:
        assert getattr(r32, name).dtype == np.float32
        np.testing.assert_allclose(getattr(r32, name), getattr(r64, name), rtol=2e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"depth": 0}, "depth"), ({"heads": 3}, "heads"), ({"tokens": 1.5}, "tokens"), ({"ratio": 0}, "ratio"),
    ({"mlp": False, "ratio": 2}, "ratio"), ({"activation": "swish"}, "activation"), ({"norm": "mid"}, "norm"),
    ({"norm_kind": "batch"}, "norm_kind"), ({"norm": "none", "norm_kind": "rms"}, "norm_kind"),
    ({"norm": "post", "final_norm": True}, "final_norm"), ({"residual": "1/L"}, "residual"),
    ({"residual": -1.0}, "residual"), ({"causal": 1}, "causal"), ({"skip": "yes"}, "skip"), ({"init": "he"}, "init"),
    ({"sigma_qk2": -1.0}, "sigma_qk2"), ({"init": "orthogonal", "sigma_vo2": 1.0}, "sigma_vo2"),
    ({"gain": 2.0}, "gain"), ({"mlp": False, "sigma_mlp2": 2.0}, "sigma_mlp2"), ({"loss": "xent"}, "loss"),
    ({"alpha": 0.1}, "alpha"),
])
def test_refusals_name_the_argument(kwargs, name):
    base = {"depth": 2, "tokens": 3, "width": 4, "heads": 2}
    with pytest.raises(ValueError, match=f"^{name}"):
        fg.Transformer(**{**base, **kwargs})


def test_explicit_refusals_and_the_gpu_path():
    spec = fg.Transformer(depth=1, tokens=3, width=4, heads=2)
    wq, wk, wv, wo, w1, w2, x, y = fg.transformer_trial_arrays(spec, 0, 1, 2)
    with pytest.raises(ValueError, match="^W_k"):
        fg.transformer_backprop(wq, wk[:, :, :2], wv, wo, w1, w2, x, y, heads=2)
    with pytest.raises(ValueError, match="^W_1, W_2"):
        fg.transformer_backprop(wq, wk, wv, wo, w1, None, x, y, heads=2)
    with pytest.raises(ValueError, match="^y"):
        fg.transformer_backprop(wq, wk, wv, wo, w1, w2, x, y[:, :1], heads=2)
    with pytest.raises(ValueError, match="^heads"):
        fg.transformer_backprop(wq, wk, wv, wo, w1, w2, x, y, heads=3)
    with pytest.raises(ValueError, match="^backend: Transformer runs on the CPU only"):
        fg.run(spec, trials=1, backend="cuda")


def test_sweep_store_cli_analyze_and_plot(tmp_path):
    grid = {"depth": 3, "tokens": 3, "width": 4, "heads": 2, "norm": ["pre", "post"]}
    fg.sweep("transformer", grid, trials=3, batch=2, store=tmp_path / "s", progress=False)
    frame = fg.load(tmp_path / "s")
    ref = fg.run(fg.Transformer(depth=3, tokens=3, width=4, heads=2, norm="post"), trials=3, batch=2)
    np.testing.assert_array_equal(frame[frame.norm == "post"]["grad_w2"].to_numpy().reshape(3, 3), ref.grad_w2)
    assert main(["sweep", "--model", "transformer", "--store", str(tmp_path / "c"), "--trials", "3", "--batch", "2",
                 "--quiet", "--depth", "2,3", "--tokens", "3", "--width", "4", "--heads", "2"]) == 0
    assert main(["analyze", str(tmp_path / "c")]) == 0
    assert main(["plot", str(tmp_path / "c")]) == 0

"""fastgrad and PyTorch both ways: to_torch, from_torch, torch_run (the TorchNet family), sweeps of it.

References are PyTorch autograd in float64 written here (hooks and retain_grad on the module's own
tensors, unrolled recurrent steps) and fastgrad's compiled kernels; never numbers from the code under test.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastgrad as fg

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = dict(rtol=1e-10, atol=1e-12)


def mlp_factory(g, scale=1.0, width=8):
    """A user's MLP: tanh, one hidden width, weights N(0, scale^2 / fan_in), biases N(0, 0.01)."""
    net = nn.Sequential(nn.Linear(5, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 3))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=scale / m.in_features**0.5, generator=g)
            nn.init.normal_(m.bias, std=0.1, generator=g)
    return net


def cnn_factory(g):
    """An architecture no family covers: conv, BatchNorm (eval, random running statistics), relu, linear."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 2))
    for p in net.parameters():
        nn.init.normal_(p, std=0.3, generator=g)
    bn = net[1]
    bn.running_mean.copy_(torch.randn(3, generator=g))
    bn.running_var.copy_(torch.rand(3, generator=g) + 0.5)
    return net.eval()


class Branchy(nn.Module):
    """A custom forward whose control flow depends on the data: torch.func.vmap refuses it."""

    def __init__(self, g):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)
        for p in self.parameters():
            nn.init.normal_(p, std=0.5, generator=g)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        if h.sum() > 0:
            h = 2 * h
        return self.b(h)


def test_import_fastgrad_does_not_import_torch():
    code = ("import sys, fastgrad as fg\n"
            "fg.TorchNet(factory=lambda g: None, inputs=3).input_shape\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "sys.modules['torch'] = None\n"  # as if not installed
            "try:\n    fg.to_torch(fg.MLP(depth=2, width=3))\nexcept ValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'fastgrad[torch]'" in out.stdout


# 1. to_torch: torch autograd of the returned module reproduces fg.run's trial k.

def compiled_trial(spec, seed, k, batch):
    """Trial k of fg.run(spec, seed): the family's explicit routine on its trial arrays, which is what fg.run
    computes (docs/architecture.md; test_mlp, test_rnn, test_gated, test_resmlp check it bit for bit). Not
    fg.run itself: one statistics kernel per family instead of two keeps this file's compile time down."""
    arrays = fg.trial_arrays(spec, seed, np.array([k]), batch)
    name = fg.models.of(spec).name
    if name in ("mlp", "resmlp"):
        extra = dict(residual=spec.residual, norm=spec.norm) if name == "resmlp" else {}
        return getattr(fg, f"{name}_backprop")(*arrays, activation=spec.activation, loss=spec.loss,
                                               last_activation=spec.last_activation, alpha=spec.alpha, **extra)
    extra = dict(activation=spec.activation, alpha=spec.alpha) if name in ("rnn", "indrnn") else {}
    return getattr(fg, f"{name}_backprop")(*arrays, loss=spec.loss, **extra)


def linear_outputs(module):
    """Outputs of every nn.Linear of a forward pass, kept with their gradients."""
    outs = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.register_forward_hook(lambda mod, i, o: (o.retain_grad(), outs.append(o))[0])
    return outs


@pytest.mark.parametrize("spec", [
    fg.MLP(depth=4, width=6, input_width=3, output_width=2, activation="tanh", sigma_b=0.1),
    fg.MLP(depth=3, width=5, activation="leaky_relu", alpha=0.3, last_activation="linear", loss="probe"),
    fg.ResMLP(depth=4, width=5, activation="relu", init="he_normal", sigma_b=0.1, residual="1/sqrt(L)"),
    fg.ResMLP(depth=5, width=6, activation="tanh", norm="layer", loss="probe"),
], ids=["mlp", "mlp-leaky-probe", "resmlp", "resmlp-ln"])
def test_to_torch_feedforward_reproduces_run(spec):
    k = 3
    res = compiled_trial(spec, 7, k, 4)
    t = fg.to_torch(spec, seed=7, trial=k, batch=4)
    assert t.x.dtype == torch.float64 and t.x.shape == (4, spec.dims[0])
    outs = linear_outputs(t.module)
    inputs = []  # ResMLP: the input of each layer l, h_{l-1}
    layers = [m for m in t.module if not isinstance(m, (nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.Identity))]
    for m in layers:
        m.register_forward_pre_hook(lambda mod, a: (a[0].retain_grad(), inputs.append(a[0]))[0])
    x = t.x.clone().requires_grad_()
    t.loss(t.module(x), t.y).backward()
    linears = [m for m in t.module.modules() if isinstance(m, nn.Linear)]
    np.testing.assert_allclose([m.weight.grad.norm().item() for m in linears], res.grad_w[0], **TOL)
    np.testing.assert_allclose([m.bias.grad.norm().item() for m in linears], res.grad_b[0], **TOL)
    np.testing.assert_allclose([o.grad.norm().item() for o in outs], res.delta[0], **TOL)
    np.testing.assert_allclose([(o.detach() ** 2).mean().item() for o in outs], res.q[0], **TOL)
    if isinstance(spec, fg.ResMLP):
        np.testing.assert_allclose([h.grad.norm().item() for h in inputs], res.grad_h[0], **TOL)


def unrolled(t, spec):
    """Trial t's recurrent cell run step by step, each state kept with its total gradient dLoss/dh_t."""
    cell, x = t.module.cell, t.x
    state, hs, outs = None, [], []
    for s in range(x.shape[1]):
        _, state = cell(x[:, s:s + 1], state)
        for tensor in (state if isinstance(state, tuple) else (state,)):
            tensor.retain_grad()
        hs.append(state[0] if isinstance(state, tuple) else state)
        outs.append(hs[-1][0])
    out = torch.stack(outs, dim=1) if spec.loss == "all" else outs[-1]
    t.loss(out, t.y).backward()
    return hs


@pytest.mark.parametrize("spec", [
    fg.RNN(steps=5, hidden=4, inputs=3, activation="tanh", sigma_b=0.2, gain=1.3),
    fg.RNN(steps=4, hidden=4, inputs=2, activation="relu", loss="all"),
    fg.LSTM(steps=5, hidden=4, inputs=3, loss="probe"),
    fg.GRU(steps=5, hidden=4, inputs=3, sigma_b=0.3, loss="all"),
    fg.IndRNN(steps=5, hidden=4, inputs=3, activation="tanh", u_low=-1.2, u_high=1.2, sigma_b=0.2),
], ids=["rnn", "rnn-relu-all", "lstm-probe", "gru-all", "indrnn"])
def test_to_torch_recurrent_reproduces_run(spec):
    k = 2
    res = compiled_trial(spec, 5, k, 3)
    t = fg.to_torch(spec, seed=5, trial=k, batch=3)
    hs = unrolled(t, spec)  # (the LSTM's c_t feed h_t inside the fused step: grad_c is test_gated's)
    cell = t.module.cell
    np.testing.assert_allclose([h.grad.norm().item() for h in hs], res.grad_h[0], **TOL)
    if isinstance(spec, fg.IndRNN):
        np.testing.assert_allclose(cell.u.grad.norm().item(), res.grad_u[0], **TOL)
        np.testing.assert_allclose(cell.weight_ih.grad.norm().item(), res.grad_wx[0], **TOL)
        np.testing.assert_allclose(cell.bias.grad.norm().item(), res.grad_b[0], **TOL)
        conv = fg.from_torch(t.module, steps=spec.steps)  # and back: the same arrays, the same statistics
        assert conv.spec == spec.__class__(steps=5, hidden=4, inputs=3, activation="tanh")
        for key, value in conv.backprop(t.x, t.y).arrays.items():
            np.testing.assert_allclose(value, res.arrays[key], err_msg=key, **TOL)
        return
    np.testing.assert_allclose(cell.weight_hh_l0.grad.norm().item(), res.grad_whh[0], **TOL)
    np.testing.assert_allclose(cell.weight_ih_l0.grad.norm().item(), res.grad_wxh[0], **TOL)
    if isinstance(spec, fg.GRU):
        np.testing.assert_allclose(cell.bias_ih_l0.grad.norm().item(), res.grad_b_ih[0], **TOL)
        np.testing.assert_allclose(cell.bias_hh_l0.grad.norm().item(), res.grad_b_hh[0], **TOL)
    else:  # one bias b = bias_ih + bias_hh: its gradient is either's
        np.testing.assert_allclose(cell.bias_ih_l0.grad.norm().item(), res.grad_b[0], **TOL)


def module_outputs(module, kind):
    """Outputs of every module of type ``kind`` of a forward pass, kept with their gradients."""
    outs = []
    for m in module.modules():
        if isinstance(m, kind):
            m.register_forward_hook(lambda mod, i, o: (o.retain_grad(), outs.append(o))[0])
    return outs


CNN_SPECS = [  # test_cnn's sizes and activations: the compiled kernels are in the disk cache
    fg.CNN(depth=3, channels=3, in_channels=2, ndim=2, size=4, padding="circular", sigma_w2=1.5, sigma_b2=0.1),
    fg.CNN(depth=3, channels=3, in_channels=2, ndim=1, size=6, padding="zeros", activation="linear", loss="probe"),
]


@pytest.mark.parametrize("spec", CNN_SPECS, ids=["2d-circular", "1d-zeros-probe"])
def test_to_torch_cnn_reproduces_run(spec):
    k = 1
    W, B, x, y = fg.cnn_trial_arrays(spec, 3, np.array([k]), 2)
    res = fg.cnn_backprop(W, B, x, y, activation=spec.activation, loss=spec.loss, padding=spec.padding)
    t = fg.to_torch(spec, seed=3, trial=k, batch=2)
    convs = [m for m in t.module if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert len(convs) == 3 and all(m.padding_mode == spec.padding for m in convs)
    assert t.x.shape == (2, 2, *spec.shape) and t.y.shape == (2, 3, *spec.shape)
    outs = module_outputs(t.module, (nn.Conv1d, nn.Conv2d))
    t.loss(t.module(t.x), t.y).backward()
    np.testing.assert_allclose([m.weight.grad.norm().item() for m in convs], res.grad_w[0], **TOL)
    np.testing.assert_allclose([m.bias.grad.norm().item() for m in convs], res.grad_b[0], **TOL)
    np.testing.assert_allclose([o.grad.norm().item() for o in outs], res.delta[0], **TOL)
    np.testing.assert_allclose([(o.detach() ** 2).mean().item() for o in outs], res.q[0], **TOL)
    conv = fg.from_torch(t.module, size=spec.size, loss=spec.loss)  # and back: the spec, the arrays, the statistics
    assert conv.spec == fg.CNN(depth=3, channels=3, in_channels=2, ndim=spec.ndim, size=spec.size,
                               padding=spec.padding, activation=spec.activation, loss=spec.loss)
    for got, want in zip(conv.arrays["W"] + conv.arrays["b"], W + B, strict=True):
        np.testing.assert_array_equal(got, want)
    for key, value in conv.backprop(t.x, t.y).arrays.items():
        np.testing.assert_array_equal(value, res.arrays[key], err_msg=key)


def test_from_torch_plain_conv_sequential_equals_autograd():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), nn.Tanh(),
                        nn.Conv2d(3, 3, 3, padding="same", padding_mode="circular"), nn.Tanh()).double()
    x, y = torch.randn(2, 2, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    conv = fg.from_torch(net, size=4)
    assert conv.spec == fg.CNN(depth=2, channels=3, in_channels=2, size=4, ndim=2, padding="circular")
    res = conv.backprop(x, y)
    outs = module_outputs(net, nn.Conv2d)
    (0.5 * ((net(x) - y) ** 2).sum() / 2).backward()
    np.testing.assert_allclose(res.grad_w[0], [m.weight.grad.norm().item() for m in net[::2]], **TOL)
    np.testing.assert_allclose(res.delta[0], [o.grad.norm().item() for o in outs], **TOL)
    np.testing.assert_allclose(res.q[0], [(o.detach() ** 2).mean().item() for o in outs], **TOL)


TRANSFORMER_SPECS = [  # test_transformer's sizes and activations (its kernels are in the disk cache)
    fg.Transformer(depth=2, tokens=4, width=4, heads=2, ratio=2, norm="pre"),
    fg.Transformer(depth=2, tokens=4, width=4, heads=2, ratio=2, norm="post", norm_kind="rms", causal=True,
                   residual="1/sqrt(L)", loss="probe"),
    fg.Transformer(depth=2, tokens=4, width=4, heads=2, norm="none", mlp=False, causal=True, residual=0.5),
]


@pytest.mark.parametrize("spec", TRANSFORMER_SPECS, ids=["pre", "post-rms-causal-probe", "none-attention"])
def test_to_torch_transformer_reproduces_run(spec):
    k = 2
    arrays = fg.transformer_trial_arrays(spec, 5, np.array([k]), 3)
    res = fg.transformer_backprop(*arrays, heads=spec.heads, activation=spec.activation, norm=spec.norm,
                                  norm_kind=spec.norm_kind, final_norm=spec.final_norm, residual=spec.residual,
                                  causal=spec.causal, loss=spec.loss)
    t = fg.to_torch(spec, seed=5, trial=k, batch=3)
    assert t.x.shape == (3, 4, 4)
    streams = [None] * spec.depth
    for l, block in enumerate(t.module.blocks):
        block.register_forward_hook(lambda mod, i, o, l=l: (o.retain_grad(), streams.__setitem__(l, o))[0])
    t.loss(t.module(t.x), t.y).backward()
    names = ("q", "k", "v", "o", "1", "2") if spec.mlp else ("q", "k", "v", "o")
    for n in names:
        np.testing.assert_allclose([getattr(b, f"w_{n}").weight.grad.norm().item() for b in t.module.blocks],
                                   res.arrays[f"grad_w{n}"][0], err_msg=n, **TOL)
    np.testing.assert_allclose([s.grad.norm().item() for s in streams], res.grad_x[0], **TOL)
    np.testing.assert_allclose([(s.detach() ** 2).mean().item() for s in streams], res.q[0], **TOL)
    conv = fg.from_torch(t.module, loss=spec.loss)  # and back
    normed = spec.norm != "none" or spec.closing_norm  # the structure, with the norm kind and final norm resolved
    assert conv.spec == fg.Transformer(depth=2, tokens=4, width=4, heads=2, ratio=spec.ratio, norm=spec.norm,
                                       norm_kind=spec.kind if normed else None, residual=spec.residual,
                                       causal=spec.causal, mlp=spec.mlp, loss=spec.loss,
                                       final_norm=None if spec.norm == "post" else spec.closing_norm)
    for name, got in conv.arrays.items():
        want = arrays[("W_q", "W_k", "W_v", "W_o", "W_1", "W_2").index(name)]
        assert (got is None and want is None) or np.array_equal(got, want), name
    for key, value in conv.backprop(t.x, t.y).arrays.items():
        np.testing.assert_array_equal(value, res.arrays[key], err_msg=key)


def test_to_torch_refuses():
    with pytest.raises(ValueError, match="spec: torch.nn.RNN has tanh and relu only"):
        fg.to_torch(fg.RNN(steps=2, hidden=2, inputs=1, activation="sigmoid"))
    with pytest.raises(ValueError, match="spec: to_torch covers"):
        fg.to_torch(fg.Chain(depth=3))
    with pytest.raises(ValueError, match="trial"):
        fg.to_torch(fg.MLP(depth=2, width=2), trial=-1)


# 2. from_torch: the compiled statistics of a module's own weights equal torch autograd.

def test_from_torch_sequential_equals_autograd():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 6), nn.LeakyReLU(0.2),
                        nn.Linear(6, 2)).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    conv = fg.from_torch(net)
    assert conv.spec == fg.MLP(depth=3, width=6, input_width=4, output_width=2, activation="leaky_relu",
                               alpha=0.2, last_activation="linear")
    res = conv.backprop(x, y)
    outs = linear_outputs(net)
    (0.5 * ((net(x) - y) ** 2).sum() / 5).backward()
    linears = [m for m in net if isinstance(m, nn.Linear)]
    np.testing.assert_allclose(res.grad_w[0], [m.weight.grad.norm().item() for m in linears], **TOL)
    np.testing.assert_allclose(res.grad_b[0], [m.bias.grad.norm().item() for m in linears], **TOL)
    np.testing.assert_allclose(res.delta[0], [o.grad.norm().item() for o in outs], **TOL)
    np.testing.assert_allclose(res.q[0], [(o.detach() ** 2).mean().item() for o in outs], **TOL)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_from_torch_recurrent_equals_autograd(kind, batch_first):
    torch.manual_seed(1)
    cell = getattr(nn, kind)(3, 4, batch_first=batch_first).double()
    steps, batch = 5, 2
    x = torch.randn((batch, steps, 3) if batch_first else (steps, batch, 3), dtype=torch.float64)
    y = torch.randn(batch, 4, dtype=torch.float64)
    conv = fg.from_torch(cell, steps=steps)
    assert fg.models.of(conv.spec).name == kind.lower()
    res = conv.backprop(x, y)
    out = cell(x)[0]
    last = out[:, -1] if batch_first else out[-1]
    (0.5 * ((last - y) ** 2).sum() / batch).backward()
    np.testing.assert_allclose(res.grad_whh[0], cell.weight_hh_l0.grad.norm().item(), **TOL)
    np.testing.assert_allclose(res.grad_wxh[0], cell.weight_ih_l0.grad.norm().item(), **TOL)
    key = "grad_b_hh" if kind == "GRU" else "grad_b"
    np.testing.assert_allclose(res.arrays[key][0], cell.bias_hh_l0.grad.norm().item(), **TOL)


def test_from_torch_round_trips_to_torch():
    spec = fg.ResMLP(depth=4, width=5, norm="layer", residual=0.5, sigma_b=0.1)
    t = fg.to_torch(spec, seed=2, trial=1, batch=3)
    conv = fg.from_torch(t.module)
    assert fg.models.of(conv.spec).name == "resmlp" and conv.spec.norm == "layer" and conv.spec.residual == 0.5
    res, run = conv.backprop(t.x, t.y), compiled_trial(spec, 2, 1, 3)
    for key in ("grad_w", "grad_b", "delta", "q", "grad_h"):
        np.testing.assert_allclose(res.arrays[key][0], run.arrays[key][0], **TOL)


def test_from_torch_refuses_naming_the_module():
    with pytest.raises(ValueError, match=r"module: no fastgrad family covers 1 \(Conv1d\).*fastgrad.torch_run"):
        fg.from_torch(nn.Sequential(nn.Linear(3, 3), nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match=r"covers 1 \(GELU\)"):
        fg.from_torch(nn.Sequential(nn.Linear(3, 3), nn.GELU(approximate="tanh")))
    with pytest.raises(ValueError, match="hidden widths differ"):
        fg.from_torch(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match=r"covers LSTM: one layer"):
        fg.from_torch(nn.LSTM(2, 3, num_layers=2), steps=3)
    with pytest.raises(ValueError, match="steps: from_torch of an nn.GRU"):
        fg.from_torch(nn.GRU(2, 3))
    with pytest.raises(ValueError, match="module: expected a torch.nn.Module"):
        fg.from_torch(np.zeros(3))
    with pytest.raises(ValueError, match=r"covers 2 \(Conv2d\): a CNN's convolutions have stride 1"):
        fg.from_torch(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh(), nn.Conv2d(2, 2, 3, stride=2)), size=4)
    with pytest.raises(ValueError, match=r"covers 0 \(Conv1d\).*circular or zero padding"):
        fg.from_torch(nn.Sequential(nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect")), size=4)
    with pytest.raises(ValueError, match=r"covers 2 \(Flatten\)"):
        fg.from_torch(nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.ReLU(), nn.Flatten()), size=4)
    with pytest.raises(ValueError, match="size: from_torch of an nn.Sequential of Conv1d needs"):
        fg.from_torch(nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.ReLU()))
    with pytest.raises(ValueError, match="size: only convolutional networks"):
        fg.from_torch(nn.Sequential(nn.Linear(3, 3)), size=4)
    with pytest.raises(ValueError, match=r"covers Branchy.*torch_run"):
        fg.from_torch(Branchy(torch.Generator()))


# 3. torch_run: the TorchNet family.

def test_torch_run_equals_compiled_engine_on_the_same_weights():
    res = fg.torch_run(mlp_factory, 6, batch=4, inputs=5, seed=3)
    assert res.backend == "torch-vmap" and res.spec.modules() == ["0", "1", "2", "3", "4"]
    assert res.grad_out.shape == (6, 5) and res.grad_out.dtype == np.float64
    for k in (0, 5):
        t = res.spec.trial(k, seed=3, batch=4)
        conv = fg.from_torch(t.module)
        compiled = conv.backprop(t.x, t.y)
        linear = [0, 2, 4]  # the Linear modules: their outputs are z_l
        np.testing.assert_allclose(res.grad_out[k, linear], compiled.delta[0], **TOL)
        np.testing.assert_allclose(res.q[k, linear], compiled.q[0], **TOL)
        np.testing.assert_allclose(res.grad_w[k, linear], compiled.grad_w[0], **TOL)
        np.testing.assert_allclose(res.grad_b[k, linear], compiled.grad_b[0], **TOL)
        assert np.all(res.grad_w[k, [1, 3]] == 0)  # Tanh has no weights
    from fastgrad import stats

    rate = stats.decay_rate(res, "grad_out", n_boot=50)  # fastgrad's statistics take the result unchanged
    assert rate["excluded"] == 0 and np.isfinite(rate["slope"])


def test_torch_run_recurrent_equals_compiled_engine():
    spec = fg.RNN(steps=4, hidden=3, inputs=2, activation="tanh", sigma_b=0.1)
    res = fg.torch_run(lambda g: fg.to_torch(spec, seed=0, trial=0).module, 3, batch=2, inputs=(4, 2))
    for k in range(3):  # every trial the same weights, its own batch
        t = res.spec.trial(k, batch=2)
        compiled = fg.from_torch(t.module, steps=4).backprop(t.x, t.y)
        np.testing.assert_allclose(res.grad_w[k, 0], np.hypot(compiled.grad_whh[0], compiled.grad_wxh[0]), **TOL)
        np.testing.assert_allclose(res.grad_b[k, 0], np.sqrt(2) * compiled.grad_b[0], **TOL)  # bias_ih, bias_hh


def reference_loop(spec, trials, batch, seed=0, dtype="float64"):
    """Plain per-trial torch autograd: every leaf module's output kept with its gradient."""
    rows = {k: [] for k in ("grad_out", "q", "grad_w", "grad_b", "grad_norm", "loss")}
    for k in range(trials):
        t = spec.trial(k, seed=seed, batch=batch, dtype=dtype)
        leaves = [m for m in t.module.modules() if not list(m.children())]
        outs = {}
        for m in leaves:
            m.register_forward_hook(lambda mod, i, o, outs=outs: (o.retain_grad(), outs.setdefault(mod, o))[0])
        loss = t.loss(t.module(t.x), t.y)
        loss.backward()
        rows["grad_out"].append([outs[m].grad.norm().item() for m in leaves])
        rows["q"].append([(outs[m].detach() ** 2).mean().item() for m in leaves])
        rows["grad_w"].append([m.weight.grad.norm().item() if getattr(m, "weight", None) is not None else 0.0
                               for m in leaves])
        rows["grad_b"].append([m.bias.grad.norm().item() if getattr(m, "bias", None) is not None else 0.0
                               for m in leaves])
        rows["grad_norm"].append(torch.cat([p.grad.ravel() for p in t.module.parameters()]).norm().item())
        rows["loss"].append(loss.item())
    return {k: np.array(v) for k, v in rows.items()}


def test_torch_run_cnn_with_batchnorm_equals_a_plain_autograd_loop():
    res = fg.torch_run(cnn_factory, 5, batch=3, inputs=(2, 4, 4), loss="probe", seed=1)
    assert res.backend == "torch-vmap"
    assert res.spec.modules() == ["0", "1", "2", "3", "4"]
    ref = reference_loop(res.spec, 5, 3, seed=1)
    for key, value in ref.items():
        np.testing.assert_allclose(res.arrays[key], value, err_msg=key, **TOL)


def test_trial_k_is_the_same_whatever_the_chunking():
    whole = fg.torch_run(cnn_factory, 9, batch=2, inputs="2x4x4")
    part = fg.torch_run(cnn_factory, 5, batch=2, inputs=(2, 4, 4), first_trial=4, chunk=2)
    looped = fg.torch_run(cnn_factory, 5, batch=2, inputs=(2, 4, 4), first_trial=4, vectorize=False)
    assert looped.backend.startswith("torch-loop")
    for key in whole.arrays:  # the same draws; batched and single products may round differently
        np.testing.assert_allclose(part.arrays[key], whole.arrays[key][4:], rtol=1e-13, err_msg=key)
        np.testing.assert_allclose(looped.arrays[key], whole.arrays[key][4:], rtol=1e-12, err_msg=key)
    a, b = whole.spec.trial(6, batch=2), part.spec.trial(6, batch=2)
    assert torch.equal(a.x, b.x) and all(torch.equal(p, q) for p, q in
                                         zip(a.module.parameters(), b.module.parameters(), strict=True))


def test_float32():
    res = fg.torch_run(cnn_factory, 3, batch=2, inputs=(2, 4, 4), dtype="float32")
    assert res.grad_out.dtype == np.float32 and res.backend == "torch-vmap"
    ref = reference_loop(res.spec, 3, 2, dtype="float32")  # PyTorch's float32 draws: the float32 trial
    for key, value in ref.items():
        np.testing.assert_allclose(res.arrays[key], value, rtol=1e-5, err_msg=key)


def test_module_failing_under_vmap_falls_back_and_says_so():
    with pytest.warns(RuntimeWarning, match="does not run under torch.func.vmap.*one by one"):
        res = fg.torch_run(Branchy, 4, batch=3, inputs=4)
    assert res.backend.startswith("torch-loop (") and "vmap" not in res.backend.split("(")[0]
    ref = reference_loop(res.spec, 4, 3)
    np.testing.assert_allclose(res.grad_w, ref["grad_w"], **TOL)
    np.testing.assert_allclose(res.grad_out, ref["grad_out"], **TOL)
    with pytest.raises(ValueError, match="vectorize: the module does not run under torch.func.vmap"):
        fg.torch_run(Branchy, 2, batch=2, inputs=4, vectorize=True)


def test_batchnorm_in_training_mode_runs_vectorised():
    def train_mode(g):  # default init (the global generator, seeded per trial); BatchNorm on batch statistics
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh())

    res = fg.torch_run(train_mode, 3, batch=4, inputs=3)
    loop = fg.torch_run(train_mode, 3, batch=4, inputs=3, vectorize=False)
    assert res.backend == "torch-vmap" and loop.backend == "torch-loop (vectorize=False)"
    for key in res.arrays:
        np.testing.assert_allclose(res.arrays[key], loop.arrays[key], err_msg=key, **TOL)


def test_bad_input_is_one_line_naming_the_argument():
    with pytest.raises(ValueError, match="factory: expected a function returning a torch.nn.Module, got a int"):
        fg.torch_run(lambda g: 3, 2, inputs=4)
    with pytest.raises(ValueError, match="factory: expected a function"):
        fg.TorchNet(factory=42, inputs=3)
    with pytest.raises(ValueError, match="factory: cannot import 'nowhere.make'"):
        fg.TorchNet(factory="nowhere.make", inputs=3)
    with pytest.raises(ValueError, match="factory: expected a function"):
        fg.TorchNet(factory="make", inputs=3)
    with pytest.raises(ValueError, match="inputs: expected an input shape"):
        fg.torch_run(mlp_factory, 2, inputs=(5, 0))
    with pytest.raises(ValueError, match="inputs: give one input's shape"):
        fg.torch_run(mlp_factory, 2)
    with pytest.raises(ValueError, match="loss: unknown 'xent'"):
        fg.torch_run(mlp_factory, 2, inputs=5, loss="xent")
    with pytest.raises(ValueError, match="trials: must be >= 1"):
        fg.torch_run(mlp_factory, 0, inputs=5)
    with pytest.raises(ValueError, match="backend: TorchNet runs on the CPU only"):
        fg.run(fg.TorchNet(mlp_factory, 5), 2, backend="cuda")


def test_sweep_of_an_init_scale_then_analyze_and_plot(tmp_path, capsys):
    from fastgrad.cli import main

    grid = {"factory": "tests.test_torch_bridge:mlp_factory", "inputs": 5, "scale": [0.5, 1.0, 3.0]}
    report = fg.sweep("torchnet", grid, trials=6, batch=2, store=tmp_path / "s", progress=False)
    assert report.done == 3 and not report.failed
    frame = fg.load(tmp_path / "s")
    assert set(frame["scale"]) == {0.5, 1.0, 3.0} and frame["layer"].max() == 5
    cell = frame[frame["scale"] == 3.0].sort_values(["trial", "layer"])
    direct = fg.torch_run(mlp_factory, 6, batch=2, inputs=5, scale=3.0)
    np.testing.assert_array_equal(cell["grad_out"].to_numpy(), direct.grad_out.ravel())
    again = fg.sweep("torchnet", grid, trials=6, batch=2, store=tmp_path / "s", progress=False)
    assert again.skipped == 3 and again.done == 0  # resumed: nothing recomputed
    assert main(["analyze", str(tmp_path / "s")]) == 0
    assert "slope" in capsys.readouterr().out  # the decay rate of grad_out, the family's main statistic
    assert main(["plot", str(tmp_path / "s"), "--out", str(tmp_path / "fig")]) == 0
    assert list((tmp_path / "fig").glob("*.png"))
    pd.testing.assert_frame_equal(frame, fg.load(tmp_path / "s"))


def test_sweep_refuses_a_callable_factory_in_the_grid(tmp_path):
    with pytest.raises(ValueError, match="grid: 'factory' has a value of unsupported type"):
        fg.sweep("torchnet", {"factory": mlp_factory, "inputs": 5}, trials=2, store=tmp_path / "x",
                 progress=False)


def test_sweep_on_dask_equals_local(tmp_path):
    pytest.importorskip("dask.distributed")
    grid = {"factory": "tests.test_torch_bridge.mlp_factory", "inputs": 5, "scale": [0.5, 2.0]}
    fg.sweep("torchnet", grid, trials=5, batch=2, store=tmp_path / "local", progress=False)
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        report = fg.sweep("torchnet", grid, trials=5, batch=2, store=tmp_path / "dask", executor="dask",
                          address=cluster.scheduler_address, progress=False)
    assert report.done == 2 and not report.failed
    pd.testing.assert_frame_equal(fg.load(tmp_path / "dask"), fg.load(tmp_path / "local"))


class Tokens(nn.Module):
    """A custom forward over integer inputs: embedding, mean over positions, a linear read-out."""

    def __init__(self, g):
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.out = nn.Linear(6, 3)
        for p in self.parameters():
            nn.init.normal_(p, generator=g)

    def forward(self, ids):
        return self.out(torch.tanh(self.embed(ids)).mean(dim=1))


def test_callable_inputs_keep_integer_token_ids():
    res = fg.torch_run(Tokens, 4, batch=3, inputs=lambda g, b: torch.randint(0, 10, (b, 5), generator=g))
    assert res.backend == "torch-vmap" and res.spec.modules() == ["embed", "out"]
    ref = reference_loop(res.spec, 4, 3)
    for key, value in ref.items():
        np.testing.assert_allclose(res.arrays[key], value, err_msg=key, **TOL)


def plain_mlp(g):
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def scale_init(module, g, scale=1.0):
    """Draws the weights; shifts the biases it does not draw (from the module's state as the factory left it)."""
    for m in module:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=scale / m.in_features**0.5, generator=g)
            m.bias.add_(0.1)


def test_init_draws_each_trial_on_one_module():
    res = fg.torch_run(plain_mlp, 5, batch=3, inputs=5, init=scale_init, scale=2.0)
    assert res.backend == "torch-vmap"
    ref = reference_loop(res.spec, 5, 3)  # trial k: the factory's module, reset, then init's draws
    for key, value in ref.items():
        np.testing.assert_allclose(res.arrays[key], value, err_msg=key, **TOL)
    a, b = res.spec.trial(1, batch=3).module, res.spec.trial(4, batch=3).module
    assert torch.equal(a[0].bias, b[0].bias) and not torch.equal(a[0].weight, b[0].weight)  # no drift
    loop = fg.torch_run(plain_mlp, 5, batch=3, inputs=5, init=scale_init, scale=2.0, vectorize=False)
    part = fg.torch_run(plain_mlp, 3, batch=3, inputs=5, init=scale_init, scale=2.0, first_trial=2, chunk=2)
    for key in res.arrays:
        np.testing.assert_allclose(loop.arrays[key], res.arrays[key], err_msg=key, **TOL)
        np.testing.assert_allclose(part.arrays[key], res.arrays[key][2:], err_msg=key, **TOL)


def test_inplace_activations():
    def inplace(g):
        net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
        for p in net.parameters():
            nn.init.normal_(p, generator=g)
        return net

    res = fg.torch_run(inplace, 3, batch=4, inputs=4)
    ref = reference_loop(res.spec, 3, 4)
    for key in ("grad_w", "grad_b", "grad_norm", "loss"):
        np.testing.assert_allclose(res.arrays[key], ref[key], err_msg=key, **TOL)


def test_float32_squares_do_not_underflow():
    def tiny(g):
        net = nn.Linear(3, 2)
        nn.init.normal_(net.weight, std=1e-20, generator=g)
        nn.init.zeros_(net.bias)
        return net

    res = fg.torch_run(tiny, 2, batch=2, inputs=3, dtype="float32")
    assert res.q.dtype == np.float32 and np.all(res.q > 0)  # ~1e-40: a float32 square would be 0

"""The same workloads written the way a researcher would without fastgrad.

Each function takes the arrays of :func:`fastgrad.mlp_trial_arrays` (or the
RNN/chain equivalents) and returns the same statistics as fastgrad, so that
every peer is checked against fastgrad before it is timed. torch and jax are
imported inside the functions: they are optional (``fastgrad[peers]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special as sp

Arrays = dict[str, Any]


# ---------------------------------------------------------------- NumPy, batched over trials
def _np_act(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if name == "tanh":
        h = np.tanh(z)
        return h, 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return np.maximum(z, 0), (z > 0).astype(z.dtype)
    s = sp.expit(z)
    return s, s * sp.expit(-z)


def numpy_mlp(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """Forward and backward of T MLPs with batched matmuls (np.matmul over the trial axis)."""
    W, b, x, y = a["W"], a["b"], a["x"], a["y"]
    L = len(W)
    hs, ds, q = [x], [], []
    for l in range(L):
        z = np.matmul(hs[-1], W[l]) + b[l][:, None, :]
        q.append(np.mean(z * z, axis=(1, 2)))
        h, d = _np_act(activation, z)
        hs.append(h)
        ds.append(d)
    batch = x.shape[1]
    dh = (hs[-1] - y) / batch
    out = {k: np.empty((x.shape[0], L), dtype=x.dtype) for k in ("grad_w", "grad_b", "delta")}
    for l in range(L - 1, -1, -1):
        delta = dh * ds[l]
        out["delta"][:, l] = np.sqrt(np.sum(delta * delta, axis=(1, 2)))
        out["grad_b"][:, l] = np.linalg.norm(delta.sum(axis=1), axis=1)
        gw = np.matmul(hs[l].transpose(0, 2, 1), delta)
        out["grad_w"][:, l] = np.sqrt(np.sum(gw * gw, axis=(1, 2)))
        dh = np.matmul(delta, W[l].transpose(0, 2, 1))
    out["q"] = np.stack(q, axis=1)
    return out


def numpy_rnn(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """BPTT for T RNNs, batched over trials (loss on the last step)."""
    whh, wxh, bias, x, y = a["W_hh"], a["W_xh"], a["b"], a["x"], a["y"]
    T, S, B, _ = x.shape
    n = whh.shape[1]
    hs = [np.zeros((T, B, n), dtype=x.dtype)]
    ds = []
    zx = np.matmul(x.reshape(T, S * B, -1), wxh).reshape(T, S, B, n) + bias[:, None, None, :]
    for t in range(S):
        h, d = _np_act(activation, np.matmul(hs[-1], whh) + zx[:, t])
        hs.append(h)
        ds.append(d)
    g = (hs[-1] - y) / B
    grad_h = np.empty((T, S), dtype=x.dtype)
    dw = np.zeros_like(whh)
    for t in range(S - 1, -1, -1):
        grad_h[:, t] = np.sqrt(np.sum(g * g, axis=(1, 2)))
        delta = g * ds[t]
        dw += np.matmul(hs[t].transpose(0, 2, 1), delta)
        g = np.matmul(delta, whh.transpose(0, 2, 1))
    return {"grad_h": grad_h, "grad_whh": np.sqrt(np.sum(dw * dw, axis=(1, 2)))}


def numpy_chain(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """Signed dC/db of N one-neuron chains, vectorised across chains."""
    w, b, x, y = a["w"], a["b"], a["x"], a["y"]
    act = x
    ds = []
    for l in range(w.shape[1]):
        act, d = _np_act(activation, w[:, l] * act + b[:, l])
        ds.append(d)
    g = act - y
    db = np.empty_like(w)
    for l in range(w.shape[1] - 1, -1, -1):
        g = g * ds[l]
        db[:, l] = g
        g = g * w[:, l]
    return {"dc_db": db}


# ---------------------------------------------------------------- PyTorch
def _torch_act(torch: Any, name: str) -> Callable[[Any], Any]:
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[name]


def _torch_mlp_stats(torch: Any, W: list[Any], b: list[Any], x: Any, y: Any, act: Callable[[Any], Any],
                     batched: bool) -> dict[str, Any]:
    zs, h = [], x
    for l in range(len(W)):
        z = (torch.bmm(h, W[l]) + b[l][:, None, :]) if batched else (h @ W[l] + b[l])
        z.retain_grad()
        zs.append(z)
        h = act(z)
    dims = (1, 2) if batched else (0, 1)
    loss = 0.5 * ((h - y) ** 2).sum() / x.shape[-2]
    loss.backward()
    with torch.no_grad():
        return {
            "grad_w": torch.stack([w.grad.square().sum(dims).sqrt() for w in W], -1),
            "grad_b": torch.stack([v.grad.square().sum(-1).sqrt() for v in b], -1),
            "delta": torch.stack([z.grad.square().sum(dims).sqrt() for z in zs], -1),
            "q": torch.stack([z.square().mean(dims) for z in zs], -1),
        }


def torch_mlp_batched(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """One autograd graph over all trials (bmm), loss summed over trials."""
    import torch

    W = [torch.from_numpy(w).requires_grad_() for w in a["W"]]
    b = [torch.from_numpy(v).requires_grad_() for v in a["b"]]
    out = _torch_mlp_stats(torch, W, b, torch.from_numpy(a["x"]), torch.from_numpy(a["y"]),
                           _torch_act(torch, activation), batched=True)
    return {k: v.numpy() for k, v in out.items()}


def torch_mlp_loop(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """A Python loop over trials, autograd per trial: what a typical user writes."""
    import torch

    act = _torch_act(torch, activation)
    rows: dict[str, list[Any]] = {"grad_w": [], "grad_b": [], "delta": [], "q": []}
    for t in range(a["x"].shape[0]):
        W = [torch.from_numpy(w[t]).requires_grad_() for w in a["W"]]
        b = [torch.from_numpy(v[t]).requires_grad_() for v in a["b"]]
        out = _torch_mlp_stats(torch, W, b, torch.from_numpy(a["x"][t]), torch.from_numpy(a["y"][t]), act,
                               batched=False)
        for k in rows:
            rows[k].append(out[k].numpy())
    return {k: np.stack(v) for k, v in rows.items()}


def torch_rnn_batched(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """The unrolled RNN as one autograd graph over all trials."""
    import torch

    act = _torch_act(torch, activation)
    whh = torch.from_numpy(a["W_hh"]).requires_grad_()
    wxh = torch.from_numpy(a["W_xh"])
    bias = torch.from_numpy(a["b"])
    x = torch.from_numpy(a["x"])
    T, S, B, _ = x.shape
    h = torch.zeros((T, B, whh.shape[1]), dtype=x.dtype)
    hs = []
    for t in range(S):
        h = act(torch.bmm(h, whh) + torch.bmm(x[:, t], wxh) + bias[:, None, :])
        h.retain_grad()
        hs.append(h)
    loss = 0.5 * ((h - torch.from_numpy(a["y"])) ** 2).sum() / B
    loss.backward()
    with torch.no_grad():
        return {"grad_h": torch.stack([v.grad.square().sum((1, 2)).sqrt() for v in hs], -1).numpy(),
                "grad_whh": whh.grad.square().sum((1, 2)).sqrt().numpy()}


def torch_chain(a: Arrays, activation: str) -> dict[str, np.ndarray]:
    """Autograd through N chains at once (elementwise)."""
    import torch

    act = _torch_act(torch, activation)
    w = torch.from_numpy(a["w"])
    b = torch.from_numpy(a["b"]).requires_grad_()
    h = torch.from_numpy(a["x"])
    for l in range(w.shape[1]):
        h = act(w[:, l] * h + b[:, l])
    (0.5 * (h - torch.from_numpy(a["y"])) ** 2).sum().backward()
    return {"dc_db": b.grad.numpy()}


# ---------------------------------------------------------------- JAX
def _jax_act(jnp: Any, jax: Any, name: str) -> Callable[[Any], Any]:
    return {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}[name]


def jax_mlp(activation: str) -> Callable[[Arrays], dict[str, Any]]:
    """jit(vmap(grad)) of one trial's loss; dLoss/dz via zero perturbations of z."""
    import jax
    import jax.numpy as jnp

    act = _jax_act(jnp, jax, activation)

    def loss(W: list[Any], b: list[Any], eps: list[Any], x: Any, y: Any) -> tuple[Any, Any]:
        h, qs = x, []
        for l in range(len(W)):
            z = h @ W[l] + b[l] + eps[l]
            qs.append(jnp.mean(z * z))
            h = act(z)
        return 0.5 * jnp.sum((h - y) ** 2) / x.shape[0], jnp.stack(qs)

    def one(W: list[Any], b: list[Any], x: Any, y: Any) -> dict[str, Any]:
        eps = [jnp.zeros((x.shape[0], w.shape[1]), x.dtype) for w in W]
        (gw, gb, ge), q = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(W, b, eps, x, y)
        return {"grad_w": jnp.stack([jnp.linalg.norm(g) for g in gw]),
                "grad_b": jnp.stack([jnp.linalg.norm(g) for g in gb]),
                "delta": jnp.stack([jnp.linalg.norm(g) for g in ge]), "q": q}

    fn = jax.jit(jax.vmap(one))
    return lambda a: fn(list(a["W"]), list(a["b"]), a["x"], a["y"])


def jax_rnn(activation: str) -> Callable[[Arrays], dict[str, Any]]:
    """jit(vmap(grad)) of one RNN trial, unrolled with lax.scan; dLoss/dh_t via perturbations."""
    import jax
    import jax.numpy as jnp

    act = _jax_act(jnp, jax, activation)

    def loss(whh: Any, eps: Any, wxh: Any, bias: Any, x: Any, y: Any) -> Any:
        def step(h: Any, inp: tuple[Any, Any]) -> tuple[Any, None]:
            xt, et = inp
            return act(h @ whh + xt @ wxh + bias) + et, None

        h0 = jnp.zeros((x.shape[1], whh.shape[0]), x.dtype)
        h, _ = jax.lax.scan(step, h0, (x, eps))
        return 0.5 * jnp.sum((h - y) ** 2) / x.shape[1]

    def one(whh: Any, wxh: Any, bias: Any, x: Any, y: Any) -> dict[str, Any]:
        eps = jnp.zeros((x.shape[0], x.shape[1], whh.shape[0]), x.dtype)
        gw, ge = jax.grad(loss, argnums=(0, 1))(whh, eps, wxh, bias, x, y)
        return {"grad_h": jnp.sqrt(jnp.sum(ge * ge, axis=(1, 2))), "grad_whh": jnp.linalg.norm(gw)}

    fn = jax.jit(jax.vmap(one))
    return lambda a: fn(a["W_hh"], a["W_xh"], a["b"], a["x"], a["y"])


def jax_chain(activation: str) -> Callable[[Arrays], dict[str, Any]]:
    """jit(grad) of the summed chain cost with respect to the biases (elementwise across chains)."""
    import jax
    import jax.numpy as jnp

    act = _jax_act(jnp, jax, activation)

    def cost(b: Any, w: Any, x: Any, y: Any) -> Any:
        h = x
        for l in range(w.shape[1]):
            h = act(w[:, l] * h + b[:, l])
        return 0.5 * jnp.sum((h - y) ** 2)

    fn = jax.jit(jax.grad(cost))
    return lambda a: {"dc_db": fn(a["b"], a["w"], a["x"], a["y"])}


def jax_gated(cell: str) -> Callable[..., dict[str, Any]]:
    """jit(vmap(grad)) of one LSTM or GRU trial (the ``last`` loss), unrolled with lax.scan.

    dLoss/dh_t through zero perturbations of h_t, as for :func:`jax_rnn`. Takes
    the arrays of :func:`fastgrad.gated_trial_arrays` (the GRU's two biases).
    """
    import jax
    import jax.numpy as jnp

    sig = jax.nn.sigmoid

    def loss(wh: Any, eps: Any, wx: Any, b: Any, bh: Any, x: Any, y: Any) -> Any:
        n = wh.shape[0]

        def step(state: tuple[Any, Any], inp: tuple[Any, Any]) -> tuple[tuple[Any, Any], None]:
            h, c = state
            xt, et = inp
            if cell == "lstm":
                a = xt @ wx + h @ wh + b
                c = sig(a[:, n:2 * n]) * c + sig(a[:, :n]) * jnp.tanh(a[:, 2 * n:3 * n])
                h = sig(a[:, 3 * n:]) * jnp.tanh(c)
            else:
                ax, ah = xt @ wx + b, h @ wh + bh
                r = sig(ax[:, :n] + ah[:, :n])
                z = sig(ax[:, n:2 * n] + ah[:, n:2 * n])
                h = (1 - z) * jnp.tanh(ax[:, 2 * n:] + r * ah[:, 2 * n:]) + z * h
            return (h + et, c), None

        h0 = jnp.zeros((x.shape[1], wh.shape[0]), x.dtype)
        (h, _), _ = jax.lax.scan(step, (h0, h0), (x, eps))
        return 0.5 * jnp.sum((h - y) ** 2) / x.shape[1]

    def one(wh: Any, wx: Any, b: Any, bh: Any, x: Any, y: Any) -> dict[str, Any]:
        eps = jnp.zeros((x.shape[0], x.shape[1], wh.shape[0]), x.dtype)
        gw, ge = jax.grad(loss, argnums=(0, 1))(wh, eps, wx, b, bh, x, y)
        return {"grad_h": jnp.sqrt(jnp.sum(ge * ge, axis=(1, 2))), "grad_whh": jnp.linalg.norm(gw)}

    fn = jax.jit(jax.vmap(one))
    if cell == "lstm":
        return lambda wh, wx, b, x, y: fn(wh, wx, b, jnp.zeros_like(b), x, y)
    return lambda wh, wx, b, bh, x, y: fn(wh, wx, b, bh, x, y)


def torch_compiled_mlp(activation: str) -> Callable[[Arrays], dict[str, np.ndarray]]:
    """torch.compile of one graph over all trials (bmm); dLoss/dz through zero perturbations (torch.func.grad).

    The first call compiles (reported apart by the benchmark); later calls with the
    same shapes reuse the compiled graph.
    """
    import torch

    act = _torch_act(torch, activation)

    def loss(W: list[Any], b: list[Any], eps: list[Any], x: Any, y: Any) -> tuple[Any, Any]:
        h, qs = x, []
        for l in range(len(W)):
            z = torch.bmm(h, W[l]) + b[l][:, None, :] + eps[l]
            qs.append(z.square().mean((1, 2)))
            h = act(z)
        return 0.5 * ((h - y) ** 2).sum() / x.shape[-2], torch.stack(qs, -1)

    grad = torch.func.grad(loss, argnums=(0, 1, 2), has_aux=True)

    def stats(W: list[Any], b: list[Any], x: Any, y: Any) -> dict[str, Any]:
        eps = [torch.zeros(x.shape[0], x.shape[1], w.shape[2], dtype=x.dtype) for w in W]
        (gw, gb, ge), q = grad(W, b, eps, x, y)
        return {"grad_w": torch.stack([g.square().sum((1, 2)).sqrt() for g in gw], -1),
                "grad_b": torch.stack([g.square().sum(-1).sqrt() for g in gb], -1),
                "delta": torch.stack([g.square().sum((1, 2)).sqrt() for g in ge], -1), "q": q}

    compiled = torch.compile(stats)

    def run(a: Arrays) -> dict[str, np.ndarray]:
        out = compiled([torch.from_numpy(w) for w in a["W"]], [torch.from_numpy(v) for v in a["b"]],
                       torch.from_numpy(a["x"]), torch.from_numpy(a["y"]))
        return {k: v.detach().numpy() for k, v in out.items()}

    return run


def torch_compiled_rnn(activation: str) -> Callable[[Arrays], dict[str, np.ndarray]]:
    """torch.compile of the unrolled RNN over all trials (bmm); dLoss/dh_t through zero perturbations of h_t."""
    import torch

    act = _torch_act(torch, activation)

    def loss(whh: Any, eps: Any, wxh: Any, bias: Any, x: Any, y: Any) -> Any:
        T, S, B, _ = x.shape
        h = torch.zeros((T, B, whh.shape[1]), dtype=x.dtype)
        for t in range(S):
            h = act(torch.bmm(h, whh) + torch.bmm(x[:, t], wxh) + bias[:, None, :]) + eps[:, t]
        return 0.5 * ((h - y) ** 2).sum() / B

    grad = torch.func.grad(loss, argnums=(0, 1))

    def stats(whh: Any, wxh: Any, bias: Any, x: Any, y: Any) -> dict[str, Any]:
        eps = torch.zeros((x.shape[0], x.shape[1], x.shape[2], whh.shape[1]), dtype=x.dtype)
        gw, ge = grad(whh, eps, wxh, bias, x, y)
        return {"grad_h": ge.square().sum((2, 3)).sqrt(), "grad_whh": gw.square().sum((1, 2)).sqrt()}

    compiled = torch.compile(stats)

    def run(a: Arrays) -> dict[str, np.ndarray]:
        out = compiled(*(torch.from_numpy(a[k]) for k in ("W_hh", "W_xh", "b", "x", "y")))
        return {k: v.detach().numpy() for k, v in out.items()}

    return run


def torch_mlp_cells(cells: list[tuple[float, float]], depth: int, width: int, trials: int, batch: int,
                    activation: str, dtype: str, compiled: bool, draw_once: bool = False,
                    seed: int = 0) -> list[float]:
    """A sweep as a PyTorch user runs it: for each (sigma_w^2, sigma_b^2) cell, draw the trials and run them.

    Each cell draws its trials with ``torch.randn`` (W_l ~ N(0, sigma_w^2 / width),
    b_l ~ N(0, sigma_b^2), x and y ~ N(0, 1)) and runs one batched graph over them
    (``torch_mlp_batched``'s code, or ``torch_compiled_mlp``'s compiled one, mse loss).
    With ``draw_once``, the standard normals are drawn once, before the first cell's
    clock starts, and each cell scales them (common random numbers, as fastgrad's cells).
    Returns the seconds of each cell; with ``compiled``, the first includes compilation.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)
    act = _torch_act(torch, activation)
    run_compiled = torch_compiled_mlp(activation) if compiled else None

    def normals() -> tuple[list[Any], list[Any], Any, Any]:
        return ([torch.randn(trials, width, width, generator=gen, dtype=dt) for _ in range(depth)],
                [torch.randn(trials, width, generator=gen, dtype=dt) for _ in range(depth)],
                torch.randn(trials, batch, width, generator=gen, dtype=dt),
                torch.randn(trials, batch, width, generator=gen, dtype=dt))

    shared = normals() if draw_once else None
    seconds = []
    for sigma_w2, sigma_b2 in cells:
        t0 = time.perf_counter()
        zw, zb, x, y = normals() if shared is None else shared
        W = [z * (sigma_w2 / width) ** 0.5 for z in zw]
        b = [z * sigma_b2**0.5 for z in zb]
        if run_compiled is not None:
            run_compiled({"W": [w.numpy() for w in W], "b": [v.numpy() for v in b], "x": x.numpy(), "y": y.numpy()})
        else:
            _torch_mlp_stats(torch, [w.requires_grad_() for w in W], [v.requires_grad_() for v in b], x, y, act,
                             batched=True)
        seconds.append(time.perf_counter() - t0)
    return seconds


# ---------------------------------------------------------------- the transformer (W-transformer)
def torch_transformer_batched(a: Arrays, heads: int) -> dict[str, np.ndarray]:
    """Pre-LN transformers (gelu, mse, closing LayerNorm) as one autograd graph over all trials.

    ``a``: the arrays of :func:`fastgrad.transformer_trial_arrays` (W_q .. W_2 as (T, L, ., .), x, y
    (T, B, T_tok, d)); returns fastgrad's statistics (T, L).
    """
    import torch
    import torch.nn.functional as F

    ws = [torch.from_numpy(a[k]).requires_grad_() for k in ("W_q", "W_k", "W_v", "W_o", "W_1", "W_2")]
    x, y = torch.from_numpy(a["x"]), torch.from_numpy(a["y"])
    trials, batch, tokens, d = x.shape
    depth, dh = ws[0].shape[1], d // heads
    h = x.reshape(trials, batch * tokens, d)
    streams, ents = [], []
    for l in range(depth):
        wq, wk, wv, wo, w1, w2 = (w[:, l] for w in ws)
        u = F.layer_norm(h, (d,), eps=1e-5)
        q, k, v = (torch.bmm(u, m).view(trials, batch, tokens, heads, dh).transpose(2, 3) for m in (wq, wk, wv))
        s = q @ k.transpose(-1, -2) / dh ** 0.5
        att = torch.softmax(s, -1)
        with torch.no_grad():
            ents.append(-(att * torch.log_softmax(s, -1)).sum(-1).mean((1, 2, 3)))
        o = (att @ v).transpose(2, 3).reshape(trials, batch * tokens, d)
        yv = h + torch.bmm(o, wo)
        h = yv + torch.bmm(F.gelu(torch.bmm(F.layer_norm(yv, (d,), eps=1e-5), w1)), w2)
        h.retain_grad()
        streams.append(h)
    out = F.layer_norm(h, (d,), eps=1e-5)
    loss = 0.5 * ((out - y.reshape(out.shape)) ** 2).sum() / batch
    loss.backward()
    names = ("grad_wq", "grad_wk", "grad_wv", "grad_wo", "grad_w1", "grad_w2")
    with torch.no_grad():
        stats = {n: w.grad.square().sum((2, 3)).sqrt() for n, w in zip(names, ws, strict=True)}
        stats["grad_x"] = torch.stack([s.grad.square().sum((1, 2)).sqrt() for s in streams], -1)
        stats["q"] = torch.stack([s.square().mean((1, 2)) for s in streams], -1)
        stats["entropy"] = torch.stack(ents, -1)
        res = []
        for s in streams:
            seq = s.view(trials, batch, tokens, d)
            dev = (seq - seq.mean(2, keepdim=True)).square().sum((2, 3)).sqrt()
            res.append((dev / seq.square().sum((2, 3)).sqrt()).mean(1))
        stats["res"] = torch.stack(res, -1)
    return {k: v.numpy() for k, v in stats.items()}


_TRANSFORMER_MATRICES = ("W_q", "W_k", "W_v", "W_o", "W_1", "W_2")
_TRANSFORMER_GRADS = ("grad_wq", "grad_wk", "grad_wv", "grad_wo", "grad_w1", "grad_w2")


def torch_compiled_transformer(heads: int) -> Callable[[Arrays], dict[str, np.ndarray]]:
    """torch.compile of :func:`torch_transformer_batched`'s graph over all trials (torch.func.grad).

    dLoss/dx_l through zero perturbations of the stream leaving each block; q, the
    attention entropy and res come out as auxiliary outputs. The first call compiles
    (reported apart by the benchmark); later calls with the same shapes reuse the
    compiled graph.
    """
    import torch
    import torch.nn.functional as F

    def loss(ws: list[Any], eps: Any, x: Any, y: Any) -> tuple[Any, dict[str, Any]]:
        trials, batch, tokens, d = x.shape
        depth, dh = ws[0].shape[1], d // heads
        h = x.reshape(trials, batch * tokens, d)
        qs, ents, res = [], [], []
        for l in range(depth):
            wq, wk, wv, wo, w1, w2 = (w[:, l] for w in ws)
            u = F.layer_norm(h, (d,), eps=1e-5)
            q, k, v = (torch.bmm(u, m).view(trials, batch, tokens, heads, dh).transpose(2, 3) for m in (wq, wk, wv))
            s = q @ k.transpose(-1, -2) / dh ** 0.5
            att = torch.softmax(s, -1)
            ents.append(-(att * torch.log_softmax(s, -1)).sum(-1).mean((1, 2, 3)).detach())
            o = (att @ v).transpose(2, 3).reshape(trials, batch * tokens, d)
            yv = h + torch.bmm(o, wo)
            h = yv + torch.bmm(F.gelu(torch.bmm(F.layer_norm(yv, (d,), eps=1e-5), w1)), w2) + eps[:, l]
            hd = h.detach()
            qs.append(hd.square().mean((1, 2)))
            seq = hd.view(trials, batch, tokens, d)
            dev = (seq - seq.mean(2, keepdim=True)).square().sum((2, 3)).sqrt()
            res.append((dev / seq.square().sum((2, 3)).sqrt()).mean(1))
        out = F.layer_norm(h, (d,), eps=1e-5)
        aux = {"q": torch.stack(qs, -1), "entropy": torch.stack(ents, -1), "res": torch.stack(res, -1)}
        return 0.5 * ((out - y.reshape(out.shape)) ** 2).sum() / batch, aux

    grad = torch.func.grad(loss, argnums=(0, 1), has_aux=True)

    def stats(ws: list[Any], x: Any, y: Any) -> dict[str, Any]:
        trials, batch, tokens, d = x.shape
        eps = torch.zeros((trials, ws[0].shape[1], batch * tokens, d), dtype=x.dtype)
        (gw, ge), aux = grad(ws, eps, x, y)
        out = {n: g.square().sum((2, 3)).sqrt() for n, g in zip(_TRANSFORMER_GRADS, gw, strict=True)}
        out["grad_x"] = ge.square().sum((2, 3)).sqrt()
        return {**out, **aux}

    compiled = torch.compile(stats)

    def run(a: Arrays) -> dict[str, np.ndarray]:
        out = compiled([torch.from_numpy(a[k]) for k in _TRANSFORMER_MATRICES], torch.from_numpy(a["x"]),
                       torch.from_numpy(a["y"]))
        return {k: v.detach().numpy() for k, v in out.items()}

    return run


def jax_transformer(heads: int) -> Callable[[Arrays], dict[str, Any]]:
    """jit(vmap(grad)) of one pre-LN transformer trial (gelu, mse, closing LayerNorm), blocks by lax.scan.

    The same network and statistics as :func:`torch_transformer_batched`: dLoss/dW of
    the six matrices, dLoss/dx_l through zero perturbations of the stream leaving each
    block, q, the attention entropy and res as auxiliary outputs. float64 needs
    ``jax.config.update("jax_enable_x64", True)`` before the first call.
    """
    import jax
    import jax.numpy as jnp

    def norm(z: Any) -> Any:
        mu = jnp.mean(z, -1, keepdims=True)
        c = z - mu
        return c / jnp.sqrt(jnp.mean(c * c, -1, keepdims=True) + 1e-5)

    def loss(ws: tuple[Any, ...], eps: Any, x: Any, y: Any) -> tuple[Any, dict[str, Any]]:
        batch, tokens, d = x.shape
        dh = d // heads

        def block(h: Any, inp: tuple[Any, ...]) -> tuple[Any, tuple[Any, Any, Any]]:
            wq, wk, wv, wo, w1, w2, e = inp
            u = norm(h)
            q, k, v = ((u @ m).reshape(batch, tokens, heads, dh).transpose(0, 2, 1, 3) for m in (wq, wk, wv))
            s = q @ k.transpose(0, 1, 3, 2) / dh ** 0.5
            logp = jax.nn.log_softmax(s, -1)
            att = jnp.exp(logp)
            ent = jax.lax.stop_gradient(-jnp.mean(jnp.sum(att * logp, -1)))
            o = (att @ v).transpose(0, 2, 1, 3).reshape(batch * tokens, d)
            yv = h + o @ wo
            h = yv + jax.nn.gelu(norm(yv) @ w1, approximate=False) @ w2 + e
            hd = jax.lax.stop_gradient(h)
            seq = hd.reshape(batch, tokens, d)
            dev = jnp.sqrt(jnp.sum((seq - jnp.mean(seq, 1, keepdims=True)) ** 2, (1, 2)))
            res = jnp.mean(dev / jnp.sqrt(jnp.sum(seq * seq, (1, 2))))
            return h, (jnp.mean(hd * hd), ent, res)

        h, (q, ent, res) = jax.lax.scan(block, x.reshape(batch * tokens, d), (*ws, eps))
        out = norm(h)
        return 0.5 * jnp.sum((out - y.reshape(out.shape)) ** 2) / batch, {"q": q, "entropy": ent, "res": res}

    def one(ws: tuple[Any, ...], x: Any, y: Any) -> dict[str, Any]:
        eps = jnp.zeros((ws[0].shape[0], x.shape[0] * x.shape[1], x.shape[2]), x.dtype)
        (gw, ge), aux = jax.grad(loss, argnums=(0, 1), has_aux=True)(ws, eps, x, y)
        out = {n: jnp.sqrt(jnp.sum(g * g, (1, 2))) for n, g in zip(_TRANSFORMER_GRADS, gw, strict=True)}
        out["grad_x"] = jnp.sqrt(jnp.sum(ge * ge, (1, 2)))
        return {**out, **aux}

    fn = jax.jit(jax.vmap(one))
    return lambda a: fn(tuple(a[k] for k in _TRANSFORMER_MATRICES), a["x"], a["y"])

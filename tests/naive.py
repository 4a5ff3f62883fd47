"""Plain NumPy references that every fastgrad kernel is checked against.

Written for clarity, not speed, from the definitions in DESIGN.md, with
activations from NumPy/SciPy (not from fastgrad).
"""

from __future__ import annotations

import numpy as np
import scipy.special as sp

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def phi(name: str, z: np.ndarray, alpha: float | None = None) -> np.ndarray:
    """Activation, from NumPy/SciPy."""
    if name == "linear":
        return z.copy()
    if name == "sigmoid":
        return sp.expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        a = 0.01 if alpha is None else alpha
        return np.where(z < 0, a * z, z)
    if name == "elu":
        a = 1.0 if alpha is None else alpha
        return np.where(z < 0, a * np.expm1(np.minimum(z, 0)), z)
    if name == "selu":
        return SELU_SCALE * np.where(z < 0, SELU_ALPHA * np.expm1(np.minimum(z, 0)), z)
    if name == "softplus":
        return np.logaddexp(0, z)
    if name == "gelu":
        return 0.5 * z * sp.erfc(-z / np.sqrt(2))
    raise KeyError(name)


def dphi(name: str, z: np.ndarray, alpha: float | None = None) -> np.ndarray:
    """Derivative of the activation, from stable closed forms; nan where z is nan."""
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "linear":
            d = np.ones_like(z)
        elif name == "sigmoid":
            d = sp.expit(z) * sp.expit(-z)
        elif name == "softplus":
            d = sp.expit(z)
        elif name == "tanh":
            d = 1.0 / np.cosh(z) ** 2
        elif name == "relu":
            d = (z > 0).astype(z.dtype)
        elif name == "leaky_relu":
            d = np.where(z > 0, 1.0, 0.01 if alpha is None else alpha).astype(z.dtype)
        elif name == "elu":
            d = np.where(z > 0, 1.0, (1.0 if alpha is None else alpha) * np.exp(np.minimum(z, 0)))
        elif name == "selu":
            d = SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0)))
        elif name == "gelu":
            d = 0.5 * sp.erfc(-z / np.sqrt(2)) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        else:
            raise KeyError(name)
    return np.where(np.isnan(z), np.nan, d).astype(z.dtype)


def mlp(W, b, x, y, activation="tanh", loss="mse", last_activation=None, alpha=None):
    """Forward and backward of T MLPs; returns dict of (T, L) statistics and the gradients."""
    T, B, _ = x.shape
    L = len(W)
    acts = [activation] * L
    if last_activation is not None:
        acts[-1] = last_activation
    out = {k: np.zeros((T, L)) for k in ("grad_w", "grad_b", "delta", "q")}
    grads = []
    for t in range(T):
        hs = [x[t]]
        zs = []
        for l in range(L):
            z = hs[-1] @ W[l][t] + b[l][t]
            zs.append(z)
            hs.append(phi(acts[l], z, alpha))
        dh = (hs[-1] - y[t]) / B if loss == "mse" else y[t] / B
        gw = [None] * L
        gb = [None] * L
        for l in range(L - 1, -1, -1):
            d = dh * dphi(acts[l], zs[l], alpha)
            gw[l] = hs[l].T @ d
            gb[l] = d.sum(axis=0)
            out["grad_w"][t, l] = np.linalg.norm(gw[l])
            out["grad_b"][t, l] = np.linalg.norm(gb[l])
            out["delta"][t, l] = np.linalg.norm(d)
            out["q"][t, l] = np.mean(zs[l] ** 2)
            dh = d @ W[l][t].T
        grads.append((gw, gb))
    return out, grads


def mlp_loss(W, b, x, y, activation="tanh", loss="mse", last_activation=None, alpha=None):
    """The loss of one trial (arrays without the trial axis), for finite differences."""
    h = x
    L = len(W)
    for l in range(L):
        act = last_activation if (l == L - 1 and last_activation is not None) else activation
        h = phi(act, h @ W[l] + b[l], alpha)
    B = x.shape[0]
    if loss == "mse":
        return 0.5 * np.sum((h - y) ** 2) / B
    return np.sum(y * h) / B


def _layer_norm(h, eps):
    """LN(h) row by row (biased variance, no affine parameters) and its Jacobian du/dh per row (B, n, n).

    The Jacobian is written from the definition u = (h - mean) / sqrt(var + eps), term by term:
    d(h - mean)/dh = I - 11^T / n, d sqrt(var + eps)/dh_j = (h_j - mean) / (n s).
    """
    n = h.shape[1]
    c = h - h.mean(axis=1, keepdims=True)
    s = np.sqrt((c * c).sum(axis=1, keepdims=True) / n + eps)
    centre = np.eye(n) - np.full((n, n), 1.0 / n)
    jac = np.stack([centre / s[i, 0] - np.outer(c[i], c[i]) / (n * s[i, 0] ** 3) for i in range(h.shape[0])])
    return c / s, jac


def resmlp(W, b, x, y, activation="tanh", loss="mse", last_activation=None, alpha=None, residual=1.0, norm=None,
           eps=1e-5):
    """Forward and backward of T residual MLPs (docs/architecture.md); dict of (T, L) statistics with ``grad_h``."""
    T, B, _ = x.shape
    L = len(W)
    acts = [activation] * L
    if last_activation is not None:
        acts[-1] = last_activation
    out = {k: np.zeros((T, L)) for k in ("grad_w", "grad_b", "delta", "q", "grad_h")}
    for t in range(T):
        h = x[t]
        ins, jacs, zs = [], [], []
        for l in range(L):
            block = 0 < l < L - 1
            inp, jac = _layer_norm(h, eps) if block and norm == "layer" else (h, None)
            z = inp @ W[l][t] + b[l][t]
            ins.append(inp)
            jacs.append(jac)
            zs.append(z)
            h = h + residual * phi(acts[l], z, alpha) if block else phi(acts[l], z, alpha)
        g = (h - y[t]) / B if loss == "mse" else y[t] / B  # dLoss/dh_L
        for l in range(L - 1, -1, -1):
            block = 0 < l < L - 1
            d = (residual if block else 1.0) * g * dphi(acts[l], zs[l], alpha)
            out["grad_w"][t, l] = np.linalg.norm(ins[l].T @ d)
            out["grad_b"][t, l] = np.linalg.norm(d.sum(axis=0))
            out["delta"][t, l] = np.linalg.norm(d)
            out["q"][t, l] = np.mean(zs[l] ** 2)
            du = d @ W[l][t].T
            if jacs[l] is not None:
                du = np.einsum("bi,bij->bj", du, jacs[l])
            g = g + du if block else du
            out["grad_h"][t, l] = np.linalg.norm(g)
    return out


def resmlp_loss(W, b, x, y, activation="tanh", loss="mse", last_activation=None, alpha=None, residual=1.0,
                norm=None, eps=1e-5):
    """The loss of one residual-MLP trial (arrays without the trial axis), for finite differences."""
    h = x
    L = len(W)
    for l in range(L):
        act = last_activation if (l == L - 1 and last_activation is not None) else activation
        if 0 < l < L - 1:
            inp = _layer_norm(h, eps)[0] if norm == "layer" else h
            h = h + residual * phi(act, inp @ W[l] + b[l], alpha)
        else:
            h = phi(act, h @ W[l] + b[l], alpha)
    B = x.shape[0]
    if loss == "mse":
        return 0.5 * np.sum((h - y) ** 2) / B
    return np.sum(y * h) / B


def chain(w, b, x, y, activation="sigmoid"):
    """Signed dC/db_l of N chains, by the chain rule written out."""
    N, L = w.shape
    a = x.copy()
    zs = []
    for l in range(L):
        z = w[:, l] * a + b[:, l]
        zs.append(z)
        a = phi(activation, z)
    g = a - y
    db = np.zeros((N, L))
    for l in range(L - 1, -1, -1):
        g = g * dphi(activation, zs[l])
        db[:, l] = g
        g = g * w[:, l]
    return db


def rnn(Whh, Wxh, b, x, y, activation="tanh", loss="last"):
    """BPTT for T RNNs; returns dict of statistics as rnn_backprop defines them."""
    T, S, B, _ = x.shape
    out = {k: np.zeros((T, S)) for k in ("grad_h", "grad_whh_step", "q")}
    out.update({k: np.zeros(T) for k in ("grad_whh", "grad_wxh", "grad_b")})
    for t in range(T):
        hs = [np.zeros((B, Whh.shape[1]))]
        zs = []
        for s in range(S):
            z = hs[-1] @ Whh[t] + x[t, s] @ Wxh[t] + b[t]
            zs.append(z)
            hs.append(phi(activation, z))
            out["q"][t, s] = np.mean(z**2)
        if loss == "probe":
            g = y[t] / B
        elif loss == "last":
            g = (hs[-1] - y[t]) / B
        else:
            g = (hs[-1] - y[t, S - 1]) / B
        dWhh = np.zeros_like(Whh[t])
        dWxh = np.zeros_like(Wxh[t])
        db = np.zeros_like(b[t])
        for s in range(S - 1, -1, -1):
            if loss == "all" and s < S - 1:
                g = g + (hs[s + 1] - y[t, s]) / B
            out["grad_h"][t, s] = np.linalg.norm(g)
            d = g * dphi(activation, zs[s])
            step = hs[s].T @ d
            out["grad_whh_step"][t, s] = np.linalg.norm(step)
            dWhh += step
            dWxh += x[t, s].T @ d
            db += d.sum(axis=0)
            g = d @ Whh[t].T
        out["grad_whh"][t] = np.linalg.norm(dWhh)
        out["grad_wxh"][t] = np.linalg.norm(dWxh)
        out["grad_b"][t] = np.linalg.norm(db)
    return out


def rnn_jacobian(Whh, Wxh, b, x, activation="tanh"):
    """||dh_S/dh_t||_F (T, S) for the first sequence of each batch, by forward accumulation.

    P[i, j] = dh_{k,j} / dh_{t,i}, built step by step from h_t forwards (the
    engine accumulates backwards from h_S).
    """
    T, S, _, _ = x.shape
    out = np.zeros((T, S))
    for trial in range(T):
        h = np.zeros(Whh.shape[1])
        zs = []
        for s in range(S):
            z = h @ Whh[trial] + x[trial, s, 0] @ Wxh[trial] + b[trial]
            zs.append(z)
            h = phi(activation, z)
        for t in range(S):  # index t is h_{t+1}
            p = np.eye(Whh.shape[1])
            for k in range(t + 1, S):
                p = p @ (Whh[trial] * dphi(activation, zs[k])[None, :])
            out[trial, t] = np.linalg.norm(p)
    return out


def rnn_final_state(Whh, Wxh, b, x, h, start, activation="tanh"):
    """h_S of one sequence (arrays without the trial and batch axes) given h at step ``start``."""
    for s in range(start, x.shape[0]):
        h = phi(activation, h @ Whh + x[s] @ Wxh + b)
    return h


def rnn_loss(Whh, Wxh, b, x, y, activation="tanh", loss="last"):
    """The loss of one RNN trial (arrays without the trial axis)."""
    S, B, _ = x.shape
    h = np.zeros((B, Whh.shape[1]))
    total = 0.0
    for s in range(S):
        h = phi(activation, h @ Whh + x[s] @ Wxh + b)
        if loss == "all":
            total += 0.5 * np.sum((h - y[s]) ** 2) / B
    if loss == "last":
        total = 0.5 * np.sum((h - y) ** 2) / B
    elif loss == "probe":
        total = np.sum(y * h) / B
    return total


def central_difference(loss_fn, param, eps=1e-6):
    """d loss / d param by central differences, perturbing ``param`` in place (restored)."""
    fd = np.zeros_like(param)
    for idx in np.ndindex(param.shape):
        old = param[idx]
        param[idx] = old + eps
        up = loss_fn()
        param[idx] = old - eps
        down = loss_fn()
        param[idx] = old
        fd[idx] = (up - down) / (2 * eps)
    return fd

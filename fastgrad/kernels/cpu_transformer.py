"""The transformer's kernel file: forward and backward pass of L encoder blocks, per trial (CPU).

Definitions (docs/transformers.md). A trial's batch is B sequences of T tokens of width d, stored
as N = B T rows: row ``b T + i`` is token i of sequence b. Weights act on rows (``u @ W``), no biases.
Block l maps the stream x_{l-1} (N, d) to x_l through an attention and an MLP sublayer, each
``t = x + a F(x')``, with branch scale a; ``x' = N(x)`` under pre-norm (``NORM_PRE``), and the sum
normalised, ``N(t)``, under post-norm (``NORM_POST``); without ``skip`` the ``x +`` is dropped.
N is LayerNorm ``(h - mean h) / sqrt(var h + eps)`` or RMSNorm ``h / sqrt(mean h^2 + eps)`` over
each row, without affine parameters.

Attention: ``Q = u W_q``, ``K = u W_k``, ``V = u W_v``; per head h (columns h d_h .. (h + 1) d_h,
d_h = d / H) ``S = Q_h K_h^T / sqrt(d_h)`` (causal: keys j > i masked), ``A = softmax(S)`` by rows,
``O_h = A V_h``; ``F(u) = O W_o``. MLP: ``F(v) = phi(v W_1) W_2`` (W_1 d x m, W_2 m x d).
An optional norm on the last stream (``final_norm``, pre-norm's usual closing LayerNorm) gives the
output; the loss is mse against targets or the probe, per sequence, averaged over the batch.

Backward through a norm, with ``g = dLoss/du`` and ``r = 1 / s`` per row: LayerNorm
``r (g - mean g - u mean(g u))``, RMSNorm ``r (g - u mean(g u))``. Through the softmax:
``dS = A * (dA - rowsum(A * dA))``, with ``dA = dO_h V_h^T``.

Statistics (K, T, L) per block l, in the order of :data:`STATISTICS`: the Frobenius norms of
dLoss/dW for the six matrices; ``grad_x = ||dLoss/dx_l||_F`` over the batch; ``q = mean(x_l^2)``;
``entropy``, the attention's mean entropy (nats) over sequences, heads and queries;
``res = ||X - 1 xbar^T||_F / ||X||_F`` of x_l's sequences (xbar the mean token), averaged over the
batch. Squares, softmax and norms' moments in float64 whatever the dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._math import exp, log_unit
from fastgrad._numba import REDUCE_FASTMATH, call, copy, jit, kernel
from fastgrad.codes import (
    MLP_PROBE,
    NORM_POST,
    NORM_PRE,
    NORMAL,
    TRAIN_XENT,
    TRANSFORMER_READOUT,
    TRANSFORMER_W0,
    TRANSFORMER_X,
    TRANSFORMER_Y,
)
from fastgrad.kernels.cpu_train import (
    Data,
    Optimizer,
    Record,
    begin_epoch,
    begin_trial,
    clip_scale,
    diverged_epoch,
    epoch_order,
    optimizer_step,
    second_size,
)
from fastgrad.kernels.cpu_train import loss_gradient as train_loss_gradient
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import sum_squares

STATISTICS = ("grad_wq", "grad_wk", "grad_wv", "grad_wo", "grad_w1", "grad_w2", "grad_x", "q", "entropy", "res")
"""The statistics' names, in the order of the first axis of the kernels' ``stats``."""


class Net(NamedTuple):
    """What one transformer trial computes, apart from its numbers.

    Attributes
    ----------
    act : FirstClass
        The MLP's activation loop (``activations.loop``).
    alpha : float
        Its parameter.
    heads : int
        H (d divisible by H).
    norm : int
        ``codes.NORM_NONE``, ``NORM_PRE`` or ``NORM_POST``.
    rms : bool
        RMSNorm instead of LayerNorm.
    eps : float
        The norm's eps.
    residual : float
        The branch scale a.
    skip, mlp, final_norm, causal : bool
        Residual connections; MLP sublayers; a norm on the last stream; the causal mask.
    loss : int
        ``codes.MLP_MSE`` or ``codes.MLP_PROBE``.
    """

    act: Any
    alpha: float
    heads: int
    norm: int
    rms: bool
    eps: float
    residual: float
    skip: bool
    mlp: bool
    final_norm: bool
    causal: bool
    loss: int


class Init(NamedTuple):
    """How a generated trial is drawn: sizes, the weights' kind (``codes``) and six scales (q, k, v, o, 1, 2).

    ``draw`` is the draw function (``draw.draw_function``); ``hidden`` is m (0 without MLP sublayers).
    """

    draw: Any
    depth: int
    tokens: int
    width: int
    hidden: int
    kind: int
    scales: np.ndarray


# Slots of Work.streams (L + 1, 8, N, d): at index l (0-based block), the stream x_l entering block l
# (index L: x_L), the attention sublayer's output y, the projections' input u, Q, K, V, the heads' outputs O,
# the MLP's input; index L's Y slot holds the output (x_L or its final norm).
X, Y, U, Q, K, V, O, M = range(8)
# Slots of Work.scales (L + 1, 4, N), the norms' inverse scales per row: of u, of a post-norm y, of the MLP's
# input, of a post-norm x_{l+1} (at l + 1); index 0's R_X is the final norm's (x_0 is never normalised).
R_U, R_Y, R_M, R_X = range(4)
# Slots of Work.scratch (7, N, d).
TMP, G, G2, DQ, DK, DV, DO = range(7)


class Work(NamedTuple):
    """One trial's buffers, allocated once per block of trials (L blocks, N rows, width d, hidden m).

    Few arrays on purpose: a tuple of 28 buffers passed between the passes cost ~15 s of compilation.
    ``streams`` (L + 1, 8, N, d) and ``scales`` (L + 1, 4, N, float64) by the slots above; ``hidden``
    (L + 1, 2, N, m): block l's activations phi(z) and derivatives phi'(z), index L scratch (z, dLoss/dh);
    ``att`` (L, B, H, T, T); ``scratch`` (7, N, d). The weight gradients are a tuple shaped as the
    weights (:func:`backward`).
    """

    streams: np.ndarray
    scales: np.ndarray
    hidden: np.ndarray
    att: np.ndarray
    scratch: np.ndarray


@jit
def _mm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b (one compiled product per layout: each np.dot call site compiles anew)."""
    np.dot(a, b, out)


@jit
def _mm_tn(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a^T @ b."""
    np.dot(a.T, b, out)


@jit
def _mm_nt(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b^T."""
    np.dot(a, b.T, out)


@jit
def _norm(m: np.ndarray) -> float:
    """||m||_F of a C-contiguous 2-D array, squares in float64."""
    return np.sqrt(sum_squares(m.reshape(m.size)))


@jit
def norm_rows(h: np.ndarray, u: np.ndarray, r: np.ndarray, rms: bool, eps: float) -> None:
    """u = N(h) row by row (u may be h), r = the rows' inverse scales 1 / sqrt(var + eps) (or mean square)."""
    n, d = h.shape
    for i in range(n):
        mu = 0.0
        if not rms:
            for j in range(d):
                mu += np.float64(h[i, j])
            mu /= d
        var = 0.0
        for j in range(d):
            c = np.float64(h[i, j]) - mu
            var += c * c
        ri = 1.0 / np.sqrt(var / d + eps)
        r[i] = ri
        for j in range(d):
            u[i, j] = (np.float64(h[i, j]) - mu) * ri


@jit
def norm_back(g: np.ndarray, u: np.ndarray, r: np.ndarray, rms: bool) -> None:
    """g <- dLoss/dh from g = dLoss/du, u = N(h) and r its rows' inverse scales, in place."""
    n, d = g.shape
    for i in range(n):
        mg = 0.0
        mgu = 0.0
        for j in range(d):
            mg += np.float64(g[i, j])
            mgu += np.float64(g[i, j]) * np.float64(u[i, j])
        mg = 0.0 if rms else mg / d
        mgu /= d
        for j in range(d):
            g[i, j] = r[i] * (np.float64(g[i, j]) - mg - np.float64(u[i, j]) * mgu)


@jit
def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, att: np.ndarray, o: np.ndarray, causal: bool) -> float:
    """Every head's softmax(Q K^T / sqrt(d_h)) into ``att`` (B, H, T, T; masked entries 0) and A V into ``o``.

    Returns the attention's mean entropy over sequences, heads and queries (nats). Each sum runs
    over its terms in order (c, then j), with the independent sums innermost, so the loops
    vectorise without reassociating any sum (a running sum innermost is bound by the adder's
    latency: 212 against ~60 us a block of the W-transformer).
    """
    batch, heads, tokens, _ = att.shape
    d = q.shape[1]
    dh = d // heads
    scale = 1.0 / np.sqrt(dh)
    s = np.empty(tokens)
    kt = np.empty((dh, tokens))  # this head's K^T, float64
    row = np.empty(dh)
    entropy = 0.0
    for b in range(batch):
        base = b * tokens
        for h in range(heads):
            c0 = h * dh
            a = att[b, h]
            for c in range(dh):
                for j in range(tokens):
                    kt[c, j] = np.float64(k[base + j, c0 + c])
            for i in range(tokens):
                keys = i + 1 if causal else tokens
                for j in range(keys):
                    s[j] = 0.0
                for c in range(dh):
                    qc = np.float64(q[base + i, c0 + c])
                    for j in range(keys):
                        s[j] += qc * kt[c, j]
                top = -np.inf
                for j in range(keys):
                    s[j] *= scale
                    top = max(top, s[j])
                total = 0.0
                for j in range(keys):
                    s[j] -= top
                    total += exp(s[j])
                mean_s = 0.0
                for j in range(tokens):
                    p = exp(s[j]) / total if j < keys else 0.0
                    a[i, j] = p
                    if j < keys:
                        mean_s += p * s[j]
                entropy += -log_unit(1.0 / total) - mean_s  # log Z - sum_j A_ij (s_ij - max)
                row[:] = 0.0
                for j in range(keys):
                    aij = np.float64(a[i, j])
                    for c in range(dh):
                        row[c] += aij * np.float64(v[base + j, c0 + c])
                for c in range(dh):
                    o[base + i, c0 + c] = row[c]
    return entropy / (batch * heads * tokens)


@jit
def attention_back(q: np.ndarray, k: np.ndarray, v: np.ndarray, att: np.ndarray, do: np.ndarray, dq: np.ndarray,
                   dk: np.ndarray, dv: np.ndarray, causal: bool) -> None:
    """dLoss/dQ, dK, dV (N, d) from dLoss/dO: dA = dO_h V_h^T, dS = A * (dA - rowsum(A dA)), through each head.

    Sums in order with the independent ones innermost, as in :func:`attention`.
    """
    batch, heads, tokens, _ = att.shape
    d = q.shape[1]
    dh = d // heads
    scale = 1.0 / np.sqrt(dh)
    ds = np.empty(tokens)
    vt = np.empty((dh, tokens))  # this head's V^T, float64
    row = np.empty(dh)
    dk[:] = 0.0
    dv[:] = 0.0
    for b in range(batch):
        base = b * tokens
        for h in range(heads):
            c0 = h * dh
            a = att[b, h]
            for c in range(dh):
                for j in range(tokens):
                    vt[c, j] = np.float64(v[base + j, c0 + c])
            for i in range(tokens):
                keys = i + 1 if causal else tokens
                for j in range(keys):
                    ds[j] = 0.0
                for c in range(dh):
                    doc = np.float64(do[base + i, c0 + c])
                    for j in range(keys):
                        ds[j] += doc * vt[c, j]
                dot = 0.0
                for j in range(keys):
                    dot += np.float64(a[i, j]) * ds[j]
                for j in range(keys):
                    ds[j] = np.float64(a[i, j]) * (ds[j] - dot) * scale
                row[:] = 0.0
                for j in range(keys):
                    dsj = ds[j]
                    for c in range(dh):
                        row[c] += dsj * np.float64(k[base + j, c0 + c])
                for c in range(dh):
                    dq[base + i, c0 + c] = row[c]
                for j in range(keys):
                    for c in range(dh):
                        dk[base + j, c0 + c] += ds[j] * np.float64(q[base + i, c0 + c])
                        dv[base + j, c0 + c] += np.float64(a[i, j]) * np.float64(do[base + i, c0 + c])


@jit(fastmath=REDUCE_FASTMATH)
def residue(x: np.ndarray, tokens: int) -> float:
    """res(X) = ||X - 1 xbar^T||_F / ||X||_F of each sequence of x (N, d), averaged over the sequences.

    Two passes over tokens shifted by the first one (the mean shift, then the deviations): the
    one-pass difference of squares cancels exactly where res is small, which is what rank collapse
    measures, and identical tokens give res = 0 exactly (their shifts are exact zeros).
    """
    n, d = x.shape
    batch = n // tokens
    shift = np.empty(d)
    total = 0.0
    for b in range(batch):
        first = b * tokens
        shift[:] = 0.0
        whole = 0.0
        for i in range(tokens):
            for c in range(d):
                v = np.float64(x[first + i, c])
                shift[c] += v - np.float64(x[first, c])
                whole += v * v
        spread = 0.0
        for i in range(tokens):
            for c in range(d):
                e = (np.float64(x[first + i, c]) - np.float64(x[first, c])) - shift[c] / tokens
                spread += e * e
        total += np.sqrt(spread / whole)
    return total / batch


@jit
def _combine(dst: np.ndarray, base: np.ndarray, branch: np.ndarray, skip: bool, a: float) -> None:
    """dst = base + a branch (or a branch without the skip), over 2-D C arrays."""
    n, d = dst.shape
    for i in range(n):
        for j in range(d):
            dst[i, j] = (base[i, j] if skip else 0.0) + a * branch[i, j]


@jit(inline="always")
def forward(w: tuple[np.ndarray, ...], x: np.ndarray, net: Net, work: Work, stats: np.ndarray, t: int) -> None:
    """The streams x_1 .. x_L and the output from x (N, d) into ``work``; q, entropy, res into ``stats[:, t]``."""
    wq, wk, wv, wo, w1, w2 = w
    depth = wq.shape[0]
    tokens = work.att.shape[3]
    n, d = x.shape
    m = w1.shape[2]
    pre, post = net.norm == NORM_PRE, net.norm == NORM_POST
    st, sc, tmp = work.streams, work.scales, work.scratch[TMP]
    _combine(st[0, X], x, x, False, 1.0)
    for l in range(depth):
        c, r = st[l], sc[l]
        if pre:
            norm_rows(c[X], c[U], r[R_U], net.rms, net.eps)
        else:
            _combine(c[U], c[X], c[X], False, 1.0)
        _mm(c[U], wq[l], c[Q])
        _mm(c[U], wk[l], c[K])
        _mm(c[U], wv[l], c[V])
        stats[8, t, l] = attention(c[Q], c[K], c[V], work.att[l], c[O], net.causal)
        _mm(c[O], wo[l], tmp)
        _combine(c[Y], c[X], tmp, net.skip, net.residual)
        if post:
            norm_rows(c[Y], c[Y], r[R_Y], net.rms, net.eps)
        nxt = st[l + 1, X]
        if net.mlp:
            if pre:
                norm_rows(c[Y], c[M], r[R_M], net.rms, net.eps)
            else:
                _combine(c[M], c[Y], c[Y], False, 1.0)
            z, h = work.hidden[depth, 0], work.hidden[l]
            _mm(c[M], w1[l], z)
            call(net.act, z.reshape(n * m), h[0].reshape(n * m), h[1].reshape(n * m), net.alpha)
            _mm(h[0], w2[l], tmp)
            _combine(nxt, c[Y], tmp, net.skip, net.residual)
            if post:
                norm_rows(nxt, nxt, sc[l + 1, R_X], net.rms, net.eps)
        else:
            _combine(nxt, c[Y], c[Y], False, 1.0)
        stats[7, t, l] = sum_squares(nxt.reshape(n * d)) / (n * d)
        stats[9, t, l] = residue(nxt, tokens)
    if net.final_norm:
        norm_rows(st[depth, X], st[depth, Y], sc[0, R_X], net.rms, net.eps)
    else:
        _combine(st[depth, Y], st[depth, X], st[depth, X], False, 1.0)


@jit
def _projection_back(u: np.ndarray, dp: np.ndarray, w: np.ndarray, dw: np.ndarray, du: np.ndarray, tmp: np.ndarray,
                     add: bool) -> float:
    """||dLoss/dW|| = ||u^T dP|| of a projection P = u W, and du (+)= dP W^T."""
    _mm_tn(u, dp, dw)
    _mm_nt(dp, w, tmp)
    _combine(du, du, tmp, add, 1.0)
    return _norm(dw)


@jit
def output_gradient(y: np.ndarray, net: Net, work: Work) -> None:
    """dLoss/d(output) of the statistics' losses (mse against ``y``, or the probe ``y``) into scratch G."""
    n, d = y.shape
    batch = n // work.att.shape[3]
    g, out = work.scratch[G], work.streams[work.streams.shape[0] - 1, Y]
    for i in range(n):
        for j in range(d):
            g[i, j] = (y[i, j] if net.loss == MLP_PROBE else out[i, j] - y[i, j]) / batch


@jit(inline="always")
def backward(w: tuple[np.ndarray, ...], dw: tuple[np.ndarray, ...], net: Net, work: Work, stats: np.ndarray,
             t: int) -> None:
    """Back from dLoss/d(output), in scratch G, through every block: norms and grad_x into ``stats[:, t]``.

    Block l's weight gradients go to ``dw[k][l % dw[k].shape[0]]`` (k = q, k, v, o, 1, 2): shaped as the
    weights for training, or one block deep (reused) when only their norms are wanted.
    """
    wq, wk, wv, wo, w1, w2 = w
    depth = wq.shape[0]
    pre, post = net.norm == NORM_PRE, net.norm == NORM_POST
    a = net.residual
    st, sc, s = work.streams, work.scales, work.scratch
    g, g2, tmp = s[G], s[G2], s[TMP]
    out = st[depth, Y]
    if net.final_norm:
        norm_back(g, out, sc[0, R_X], net.rms)
    for l in range(depth - 1, -1, -1):
        c, r = st[l], sc[l]
        b = l % dw[0].shape[0]  # the block's gradients (0: a one-block buffer, reused)
        dq, dk, dv, do, dw1, dw2 = dw[0][b], dw[1][b], dw[2][b], dw[3][b], dw[4][b], dw[5][b]
        stats[6, t, l] = _norm(g)
        stats[4, t, l] = 0.0  # without MLP sublayers (written over below with them)
        stats[5, t, l] = 0.0
        if net.mlp:
            if post:
                norm_back(g, st[l + 1, X], sc[l + 1, R_X], net.rms)
            _combine(g2, g, g, False, a)
            h, dh = work.hidden[l], work.hidden[depth, 1]
            _mm_tn(h[0], g2, dw2)
            stats[5, t, l] = _norm(dw2)
            _mm_nt(g2, w2[l], dh)
            _scale_by(dh, h[1])
            _mm_tn(c[M], dh, dw1)
            stats[4, t, l] = _norm(dw1)
            _mm_nt(dh, w1[l], g2)
            if pre:
                norm_back(g2, c[M], r[R_M], net.rms)
            _combine(g, g, g2, net.skip, 1.0)
        if post:
            norm_back(g, c[Y], r[R_Y], net.rms)
        _combine(g2, g, g, False, a)
        _mm_tn(c[O], g2, do)
        stats[3, t, l] = _norm(do)
        _mm_nt(g2, wo[l], s[DO])
        attention_back(c[Q], c[K], c[V], work.att[l], s[DO], s[DQ], s[DK], s[DV], net.causal)
        stats[0, t, l] = _projection_back(c[U], s[DQ], wq[l], dq, g2, tmp, False)  # g2 = dLoss/du, summed
        stats[1, t, l] = _projection_back(c[U], s[DK], wk[l], dk, g2, tmp, True)
        stats[2, t, l] = _projection_back(c[U], s[DV], wv[l], dv, g2, tmp, True)
        if pre:
            norm_back(g2, c[U], r[R_U], net.rms)
        _combine(g, g, g2, net.skip, 1.0)


@jit
def _scale_by(a: np.ndarray, b: np.ndarray) -> None:
    """a *= b elementwise over 2-D C arrays of one shape."""
    n, m = a.shape
    for i in range(n):
        for j in range(m):
            a[i, j] *= b[i, j]


@jit
def trial(w: tuple[np.ndarray, ...], dw: tuple[np.ndarray, ...], x: np.ndarray, y: np.ndarray, net: Net, work: Work,
          stats: np.ndarray, t: int) -> None:
    """One trial into column ``t`` of ``stats`` (K, T, L): w = (W_q, W_k, W_v, W_o, W_1, W_2), x and y (N, d).

    ``dw``: the weight gradients' buffers (:func:`backward`).
    """
    forward(w, x, net, work, stats, t)
    output_gradient(y, net, work)
    backward(w, dw, net, work, stats, t)


@jit(inline="always")
def workspace(depth: int, batch: int, tokens: int, d: int, m: int, heads: int, dtype: Any) -> Work:
    """The buffers of :func:`trial` for L blocks of B sequences of T tokens, width d, hidden m."""
    n = batch * tokens
    return Work(np.empty((depth + 1, 8, n, d), dtype=dtype), np.empty((depth + 1, 4, n)),
                np.empty((depth + 1, 2, n, m), dtype=dtype),
                np.empty((depth, batch, heads, tokens, tokens), dtype=dtype),
                np.empty((7, n, d), dtype=dtype))


@jit(inline="always")
def draw_weights(w: tuple[np.ndarray, ...], seed: int, trial_id: int, init: Init) -> None:
    """Block l's six matrices of generated trial ``trial_id``, from tensors W0 + 6 l + k."""
    for l in range(init.depth):
        for k in range(6):
            if init.hidden > 0 or k < 4:
                draw_matrix(init.draw, w[k][l], init.kind, init.scales[k], seed, trial_id, TRANSFORMER_W0 + 6 * l + k)


@jit(inline="always")
def draw_trial(w: tuple[np.ndarray, ...], x: np.ndarray, y: np.ndarray, seed: int, trial_id: int,
               init: Init) -> None:
    """Every array of generated trial ``trial_id``: the weights (:func:`draw_weights`); x, y ~ N(0, 1)."""
    draw_weights(w, seed, trial_id, init)
    draw_vector(init.draw, x.reshape(x.size), NORMAL, 1.0, seed, trial_id, TRANSFORMER_X)
    draw_vector(init.draw, y.reshape(y.size), NORMAL, 1.0, seed, trial_id, TRANSFORMER_Y)


@jit(inline="always")
def _weights(depth: int, d: int, m: int, dtype: Any) -> tuple[np.ndarray, ...]:
    return (np.empty((depth, d, d), dtype=dtype), np.empty((depth, d, d), dtype=dtype),
            np.empty((depth, d, d), dtype=dtype), np.empty((depth, d, d), dtype=dtype),
            np.empty((depth, d, m), dtype=dtype), np.empty((depth, m, d), dtype=dtype))


@kernel
def generated(net: Net, init: Init, seed: int, trial0: int, batch: int, stats: np.ndarray, lo: int, hi: int) -> None:
    """Columns ``lo .. hi - 1`` of ``stats`` (K, T, L): trials ``trial0 + lo ..`` drawn, then run."""
    dtype = stats.dtype
    depth, tokens, d, m = init.depth, init.tokens, init.width, init.hidden
    w = _weights(depth, d, m, dtype)
    x = np.empty((batch * tokens, d), dtype=dtype)
    y = np.empty((batch * tokens, d), dtype=dtype)
    work = workspace(depth, batch, tokens, d, m, net.heads, dtype)
    dw = _weights(1, d, m, dtype)
    for t in range(lo, hi):
        draw_trial(w, x, y, seed, trial0 + t, init)
        trial(w, dw, x, y, net, work, stats, t)


@kernel
def explicit(net: Net, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray, w1: np.ndarray,
             w2: np.ndarray, x: np.ndarray, y: np.ndarray, stats: np.ndarray, lo: int, hi: int) -> None:
    """Columns ``lo .. hi - 1``: W_q .. W_o (T, L, d, d), W_1 (T, L, d, m), W_2 (T, L, m, d), x and y (T, B, T, d)."""
    _, batch, tokens, d = x.shape
    work = workspace(wq.shape[1], batch, tokens, d, w1.shape[3], net.heads, x.dtype)
    dw = _weights(1, d, w1.shape[3], x.dtype)
    for t in range(lo, hi):
        trial((wq[t], wk[t], wv[t], wo[t], w1[t], w2[t]), dw, x[t].reshape(batch * tokens, d),
              y[t].reshape(batch * tokens, d), net, work, stats, t)


@kernel
def draw_arrays(init: Init, seed: int, trials: np.ndarray, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray,
                wo: np.ndarray, w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """The arrays of the given trials, exactly as :func:`generated` draws them."""
    for i in range(trials.size):
        draw_trial((wq[i], wk[i], wv[i], wo[i], w1[i], w2[i]), x[i], y[i], seed, trials[i], init)


@jit(inline="always")
def _packed(p: np.ndarray, depth: int, d: int, m: int) -> tuple[np.ndarray, ...]:
    """Views of a packed vector [W_q, W_k, W_v, W_o (L, d, d), W_1 (L, d, m), W_2 (L, m, d), ...] as the weights."""
    a = depth * d * d
    b = depth * d * m
    return (p[:a].reshape((depth, d, d)), p[a:2 * a].reshape((depth, d, d)), p[2 * a:3 * a].reshape((depth, d, d)),
            p[3 * a:4 * a].reshape((depth, d, d)), p[4 * a:4 * a + b].reshape((depth, d, m)),
            p[4 * a + b:4 * a + 2 * b].reshape((depth, m, d)))


@jit
def _readout(out: np.ndarray, wr: np.ndarray, br: np.ndarray, logits: np.ndarray) -> None:
    """logits = out @ W_r + b_r over rows."""
    _mm(out, wr, logits)
    n, k = logits.shape
    for i in range(n):
        for j in range(k):
            logits[i, j] += br[j]


@jit
def _load(src: np.ndarray, order: np.ndarray, first: int, count: int, rows: int, dst: np.ndarray) -> None:
    """dst's sequences = src[order[first + r]] for r < count (N, T, c); later ones repeat the last given."""
    tokens, c = src.shape[1], src.shape[2]
    for r in range(rows):
        seq = order[first + min(r, count - 1)]
        for i in range(tokens):
            for j in range(c):
                dst[r * tokens + i, j] = src[seq, i, j]


@kernel
def train(net: Net, init: Init, seed: int, trial0: int, data: Data, opt: Optimizer, epochs: int, batch: int,
          out: Record, lo: int, hi: int) -> None:
    """Train trials ``trial0 + lo .. trial0 + hi - 1`` into rows lo .. hi - 1 of ``out``.

    The L blocks (trial k's weights as :func:`generated` draws them), then a read-out on every token:
    ``logits = out_L W_r + b_r``, W_r (d x outputs) ~ N(0, 1 / d) from tensor TRANSFORMER_READOUT,
    b_r = 0; ``net.loss`` is codes.TRAIN_MSE or TRAIN_XENT of each token's logits against
    ``data.y`` (N, T, outputs), averaged over the minibatch's tokens. ``data.x`` is (N, T, d).
    Parameters are packed [W_q, W_k, W_v, W_o, W_1, W_2 (each all blocks), W_r, b_r]; L2 decay
    on all but b_r. Per epoch: ``grad_w`` (L + 1) the mean of block l's ||dLoss/d(W_q .. W_2)||
    (all six together) and of ||dLoss/dW_r||, ``grad_b`` (1) of ||dLoss/db_r||, ``grad_h`` (L) of
    ||dLoss/dx_l||; held-out accuracy per token (classification).
    """
    x, y = data.x, data.y
    dtype = x.dtype
    depth, tokens, d, m = init.depth, init.tokens, init.width, init.hidden
    n, n_out = y.shape[0], y.shape[2]
    n_blocks = depth * (4 * d * d + 2 * d * m)
    n_w = n_blocks + d * n_out
    size = n_w + n_out
    p = np.empty(size, dtype=dtype)
    gp = np.empty(size, dtype=dtype)
    first = np.empty(size)
    second = np.empty(second_size(opt.kind, size))
    w, dw = _packed(p, depth, d, m), _packed(gp, depth, d, m)
    wr, br = p[n_blocks:n_w].reshape((d, n_out)), p[n_w:]
    gwr, gbr = gp[n_blocks:n_w].reshape((d, n_out)), gp[n_w:]
    work = workspace(depth, batch, tokens, d, m, net.heads, dtype)
    rows = batch * tokens
    xb = np.empty((rows, d), dtype=dtype)
    yb = np.empty((rows, n_out), dtype=dtype)
    logits = np.empty((rows, n_out), dtype=dtype)
    dlogits = np.empty((rows, n_out), dtype=dtype)
    stats = np.empty((len(STATISTICS), 1, depth), dtype=dtype)
    final = work.streams[depth, Y]
    steps = n // batch
    keys = np.empty(n)
    m_test = data.x_test.shape[0]
    order_test = np.arange(m_test)
    held_out = (m_test + batch - 1) // batch if net.loss == TRAIN_XENT else 0
    for k in range(lo, hi):
        trial = trial0 + k
        draw_weights(w, seed, trial, init)
        draw_matrix(init.draw, wr, NORMAL, 1.0 / np.sqrt(d), seed, trial, TRANSFORMER_READOUT)
        br[:] = 0.0
        begin_trial(out, k, p, first, second)
        updates = 0
        for epoch in range(epochs):
            if out.diverged[k] >= 0:
                diverged_epoch(out, k, epoch)
                continue
            order = epoch_order(seed, trial, epoch, keys)
            begin_epoch(out, k, epoch)
            total = 0.0
            correct = 0
            hits_test = 0
            for s in range(steps + held_out):  # the minibatches, then the held-out chunks: one forward call site
                step = s < steps
                start = s * batch if step else (s - steps) * batch
                count = batch if step else min(batch, m_test - start)
                _load(x if step else data.x_test, order if step else order_test, start, count, batch, xb)
                _load(y if step else data.y_test, order if step else order_test, start, count, batch, yb)
                forward(w, xb, net, work, stats, 0)
                _readout(final, wr, br, logits)
                c = count * tokens
                value, hits = train_loss_gradient(logits[:c], yb[:c], net.loss, dlogits[:c])
                if not step:
                    hits_test += hits
                    continue
                total += value
                correct += hits
                _mm_tn(final, dlogits, gwr)
                for j in range(n_out):
                    acc = 0.0
                    for i in range(rows):
                        acc += dlogits[i, j]
                    gbr[j] = acc
                _mm_nt(dlogits, wr, work.scratch[G])
                backward(w, dw, net, work, stats, 0)
                for l in range(depth):
                    block = 0.0
                    for part in range(6):  # the six matrices' norms, from the backward pass's statistics
                        block += np.float64(stats[part, 0, l]) ** 2
                    out.grad_w[k, epoch, l] += np.sqrt(block) / steps
                    out.grad_h[k, epoch, l] += stats[6, 0, l] / steps
                out.grad_w[k, epoch, depth] += np.sqrt(sum_squares(gp[n_blocks:n_w])) / steps
                out.grad_b[k, epoch, 0] += np.sqrt(sum_squares(gbr)) / steps
                scale = clip_scale(sum_squares(gp), opt.clip)
                updates += 1
                for part in range(2):  # the weights (with L2), then b_r: one call site, compiled once
                    lo_p, hi_p = (0, n_w) if part == 0 else (n_w, size)
                    optimizer_step(p[lo_p:hi_p], gp[lo_p:hi_p], first[lo_p:hi_p], second[lo_p:hi_p], opt,
                                   opt.weight_decay if part == 0 else 0.0, scale, updates)
            out.loss[k, epoch] = total / steps
            out.accuracy[k, epoch] = correct / (steps * rows)
            if not (np.isfinite(total) and np.isfinite(sum_squares(p))):
                out.diverged[k] = epoch
            out.test_accuracy[k, epoch] = hits_test / (m_test * tokens) if held_out else np.nan
        copy(out.params1[k], p)

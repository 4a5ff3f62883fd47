"""Backpropagation through time on the GPU: one thread block per trial (numba.cuda).

Same definitions as ``kernels/cpu_rnn.py``. Per trial (a slab of global
memory): W_hh, W_xh, b, the inputs x, the targets, h_0..h_S, phi'(z_t), two
buffers for dLoss/dh and the accumulated dLoss/dW_hh, dLoss/dW_xh, dLoss/db.
"""

from __future__ import annotations

from typing import Any

from numba import cuda, float64

from fastgrad.codes import NORMAL, RNN_ALL, RNN_B, RNN_PROBE, RNN_WHH, RNN_WXH, RNN_X, RNN_Y
from fastgrad.kernels.cuda_device import MAX_THREADS, block_sum, fill_tensor, phi_dphi, stream_key


@cuda.jit
def rnn_generated(seed: int, trial0: int, batch: int, hidden: int, inputs: int, w_kind: int, w_scale: float,
                  x_scale: float, b_kind: int, b_scale: float, act: int, alpha: float, loss: int, P: Any, X: Any,
                  Y: Any, H: Any, D: Any, G: Any, grad_h: Any, grad_whh_step: Any, q: Any, totals: Any) -> None:
    """Block k runs trial ``trial0 + k``.

    Slabs (row k): P = [W_hh (n*n), W_xh (d*n), b (n), dW_hh (n*n), dW_xh (d*n), db (n)];
    X (S*B*d); Y (Sy*B*n); H ((S+1)*B*n); D (S*B*n); G (2*B*n).
    """
    k = cuda.blockIdx.x
    trial = trial0 + k
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    buf = cuda.shared.array(MAX_THREADS, float64)
    steps = grad_h.shape[1]
    n = hidden
    bn = batch * n
    p, x, y, h, dd, g = P[k], X[k], Y[k], H[k], D[k], G[k]
    o_wxh = n * n
    o_b = o_wxh + inputs * n
    o_dwhh = o_b + n
    o_dwxh = o_dwhh + n * n
    o_db = o_dwxh + inputs * n
    fill_tensor(p, 0, n, n, w_kind, w_scale, stream_key(seed, trial, RNN_WHH))
    fill_tensor(p, o_wxh, inputs, n, NORMAL, x_scale, stream_key(seed, trial, RNN_WXH))
    fill_tensor(p, o_b, 1, n, b_kind, b_scale, stream_key(seed, trial, RNN_B))
    fill_tensor(x, 0, steps * batch, inputs, NORMAL, 1.0, stream_key(seed, trial, RNN_X))
    fill_tensor(y, 0, Y.shape[1] // n, n, NORMAL, 1.0, stream_key(seed, trial, RNN_Y))
    for e in range(tid, bn, nt):
        h[e] = 0.0
    for e in range(tid, o_db + n - o_dwhh, nt):
        p[o_dwhh + e] = 0.0
    cuda.syncthreads()

    for t in range(steps):
        acc = 0.0
        for e in range(tid, bn, nt):
            i = e // n
            j = e - i * n
            s = p[o_b + j]
            for r in range(n):
                s += h[t * bn + i * n + r] * p[r * n + j]
            for r in range(inputs):
                s += x[(t * batch + i) * inputs + r] * p[o_wxh + r * n + j]
            acc += float64(s) * float64(s)
            hv, dv = phi_dphi(act, s, alpha)
            h[(t + 1) * bn + e] = hv
            dd[t * bn + e] = dv
        total = block_sum(acc, buf)
        if tid == 0:
            q[k, t] = total / bn
        cuda.syncthreads()

    inv_b = 1.0 / batch
    last = (Y.shape[1] // bn - 1) * bn
    for e in range(tid, bn, nt):
        g[e] = y[e] * inv_b if loss == RNN_PROBE else (h[steps * bn + e] - y[last + e]) * inv_b
    cuda.syncthreads()
    cur = 0
    for t in range(steps - 1, -1, -1):
        acc = 0.0
        for e in range(tid, bn, nt):
            if loss == RNN_ALL and t < steps - 1:
                g[cur + e] += (h[(t + 1) * bn + e] - y[t * bn + e]) * inv_b
            acc += float64(g[cur + e]) * float64(g[cur + e])
        total = block_sum(acc, buf)
        if tid == 0:
            grad_h[k, t] = total ** 0.5
        for e in range(tid, bn, nt):
            g[cur + e] *= dd[t * bn + e]  # delta_t
        cuda.syncthreads()
        acc = 0.0
        for e in range(tid, n * n, nt):
            r = e // n
            j = e - r * n
            s = 0.0
            for i in range(batch):
                s += float64(h[t * bn + i * n + r]) * float64(g[cur + i * n + j])
            acc += s * s
            p[o_dwhh + e] += s
        total = block_sum(acc, buf)
        if tid == 0:
            grad_whh_step[k, t] = total ** 0.5
        for e in range(tid, inputs * n, nt):
            r = e // n
            j = e - r * n
            s = 0.0
            for i in range(batch):
                s += float64(x[(t * batch + i) * inputs + r]) * float64(g[cur + i * n + j])
            p[o_dwxh + e] += s
        for j in range(tid, n, nt):
            s = 0.0
            for i in range(batch):
                s += float64(g[cur + i * n + j])
            p[o_db + j] += s
        nxt = bn - cur
        for e in range(tid, bn, nt):
            i = e // n
            r = e - i * n
            s = 0.0
            for j in range(n):
                s += g[cur + i * n + j] * p[r * n + j]
            g[nxt + e] = s
        cur = nxt
        cuda.syncthreads()

    for which in range(3):
        start = o_dwhh if which == 0 else (o_dwxh if which == 1 else o_db)
        size = n * n if which == 0 else (inputs * n if which == 1 else n)
        acc = 0.0
        for e in range(tid, size, nt):
            acc += float64(p[start + e]) * float64(p[start + e])
        total = block_sum(acc, buf)
        if tid == 0:
            totals[k, which] = total ** 0.5

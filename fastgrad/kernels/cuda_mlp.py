"""The deep MLP on the GPU: one thread block per trial (numba.cuda).

Same definitions as ``kernels/cpu_mlp.py``. Weights, biases, inputs and
targets are drawn on the device from the trial's streams; each block keeps its
trial's layers, activations and phi'(z) in a per-trial slab of global memory
(bounded by the chunk of trials in flight), and its threads share every
elementwise loop and matrix product of the trial. Squares are summed in
float64 through a shared-memory block reduction.
"""

from __future__ import annotations

from typing import Any

from numba import cuda, float64

from fastgrad.codes import MLP_B0, MLP_MSE, MLP_W0, MLP_X, MLP_Y, NORMAL
from fastgrad.kernels.cuda_device import MAX_THREADS, block_sum, fill_tensor, phi_dphi, stream_key


@cuda.jit
def mlp_generated(seed: int, trial0: int, batch: int, dims: Any, woff: Any, boff: Any, hoff: Any, w_kind: Any,
                  w_scale: Any, b_kind: Any, b_scale: Any, act: Any, alpha: Any, loss: int, W: Any, Bias: Any,
                  H: Any, D: Any, G: Any, grad_w: Any, grad_b: Any, delta: Any, q: Any) -> None:
    """Block k runs trial ``trial0 + k``; W, Bias, H, D, G are per-trial slabs (row k)."""
    k = cuda.blockIdx.x
    trial = trial0 + k
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    buf = cuda.shared.array(MAX_THREADS, float64)
    depth = dims.shape[0] - 1
    w, bias, h, d, g = W[k], Bias[k], H[k], D[k], G[k]

    for l in range(depth):
        fill_tensor(w, woff[l], dims[l], dims[l + 1], w_kind[l], w_scale[l], stream_key(seed, trial, MLP_W0 + 2 * l))
        fill_tensor(bias, boff[l], 1, dims[l + 1], b_kind[l], b_scale[l], stream_key(seed, trial, MLP_B0 + 2 * l))
    fill_tensor(h, 0, batch, dims[0], NORMAL, 1.0, stream_key(seed, trial, MLP_X))
    half = G.shape[1] // 2  # g holds two buffers: dLoss/dh of this layer and of the previous one
    fill_tensor(g, half, batch, dims[depth], NORMAL, 1.0, stream_key(seed, trial, MLP_Y))  # y or the probe g
    cuda.syncthreads()

    for l in range(depth):
        n_in = dims[l]
        n_out = dims[l + 1]
        acc = 0.0
        for e in range(tid, batch * n_out, nt):
            i = e // n_out
            j = e - i * n_out
            s = bias[boff[l] + j]
            for r in range(n_in):
                s += h[hoff[l] + i * n_in + r] * w[woff[l] + r * n_out + j]
            acc += float64(s) * float64(s)
            hv, dv = phi_dphi(act[l], s, alpha[l])
            h[hoff[l + 1] + e] = hv
            d[hoff[l + 1] - hoff[1] + e] = dv
        total = block_sum(acc, buf)
        if tid == 0:
            q[k, l] = total / (batch * n_out)
        cuda.syncthreads()

    n_last = dims[depth]
    inv_b = 1.0 / batch
    for e in range(tid, batch * n_last, nt):
        target = g[half + e]
        g[e] = (h[hoff[depth] + e] - target) * inv_b if loss == MLP_MSE else target * inv_b
    cuda.syncthreads()

    cur = 0
    for l in range(depth - 1, -1, -1):
        n_in = dims[l]
        n_out = dims[l + 1]
        acc = 0.0
        for e in range(tid, batch * n_out, nt):
            v = g[cur + e] * d[hoff[l + 1] - hoff[1] + e]
            g[cur + e] = v
            acc += float64(v) * float64(v)
        total = block_sum(acc, buf)  # its syncthreads also publish delta_l to every thread
        if tid == 0:
            delta[k, l] = total ** 0.5
        acc = 0.0
        for j in range(tid, n_out, nt):
            s = 0.0
            for i in range(batch):
                s += float64(g[cur + i * n_out + j])
            acc += s * s
        total = block_sum(acc, buf)
        if tid == 0:
            grad_b[k, l] = total ** 0.5
        acc = 0.0
        for e in range(tid, n_in * n_out, nt):
            r = e // n_out
            j = e - r * n_out
            s = 0.0
            for i in range(batch):
                s += float64(h[hoff[l] + i * n_in + r]) * float64(g[cur + i * n_out + j])
            acc += s * s
        total = block_sum(acc, buf)
        if tid == 0:
            grad_w[k, l] = total ** 0.5
        if l > 0:
            nxt = half - cur
            for e in range(tid, batch * n_in, nt):
                i = e // n_in
                r = e - i * n_in
                s = 0.0
                for j in range(n_out):
                    s += g[cur + i * n_out + j] * w[woff[l] + r * n_out + j]
                g[nxt + e] = s
            cur = nxt
            cuda.syncthreads()

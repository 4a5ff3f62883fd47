"""The one-neuron chain on the GPU: one thread per trial (numba.cuda)."""

from __future__ import annotations

from typing import Any

from numba import cuda

from fastgrad.codes import CHAIN_CENTERED, CHAIN_NORMAL, CHAIN_WB, CHAIN_XY
from fastgrad.kernels.cuda_device import normal_pair, phi_dphi, stream_key


@cuda.jit
def chain_generated(seed: int, trial0: int, act: int, alpha: float, w_const: bool, w_scale: float, b_kind: int,
                    b_scale: float, W: Any, Dv: Any, A: Any, db: Any, gb: Any, gw: Any, q: Any) -> None:
    """Thread i runs trial ``trial0 + i``; W, Dv, A (N, L) are scratch (w_l, phi'(z_l), a_{l-1})."""
    i = cuda.grid(1)
    if i >= db.shape[0]:
        return
    depth = db.shape[1]
    trial = trial0 + i
    a, target = normal_pair(stream_key(seed, trial, CHAIN_XY), 0)
    key = stream_key(seed, trial, CHAIN_WB)
    for l in range(depth):
        gw_, gb_ = normal_pair(key, l)
        w = w_scale if w_const else w_scale * gw_
        if b_kind == CHAIN_CENTERED:
            b = -w * a
        elif b_kind == CHAIN_NORMAL:
            b = b_scale * gb_
        else:
            b = b_scale
        z = w * a + b
        q[i, l] = z * z
        W[i, l] = w
        A[i, l] = a
        a, dv = phi_dphi(act, z, alpha)
        Dv[i, l] = dv
    g = a - target
    for l in range(depth - 1, -1, -1):
        g *= Dv[i, l]
        db[i, l] = g
        gb[i, l] = abs(g)
        gw[i, l] = abs(g * A[i, l])
        g *= W[i, l]

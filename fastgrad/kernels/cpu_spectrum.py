"""The input-output Jacobian of MLPs and its singular values, per trial (CPU).

For a trial's input x (the first sample of its batch), ``h_l = phi(h_{l-1} W_l + b_l)``
gives ``dh_l = dh_{l-1} W_l D_l`` with ``D_l = diag(phi'(z_l))``, so the Jacobian of
h_L with respect to h_0, acting on row vectors, is

    J = W_1 D_1 W_2 D_2 ... W_L D_L        (n_0, n_L)

and J^T is the usual column-vector Jacobian dh_L/dh_0: both have the same
singular values. J is formed in float64 whatever the run's dtype (L products of
(n_0, n_l) by (n_l, n_{l+1})), then its singular values by LAPACK's SVD
(``np.linalg.svd``), in decreasing order.

The draws are :mod:`cpu_mlp`'s: trial k's weights, biases and inputs are those
of :func:`fastgrad.run` of the same spec, seed and batch (the whole batch is
drawn: its first row depends on the batch size), and J is taken at the first input.
"""

from __future__ import annotations

import numpy as np

from fastgrad._numba import jit, kernel
from fastgrad.kernels import cpu_mlp


@jit(inline="always")
def jacobian(w: np.ndarray, dims: np.ndarray, work: cpu_mlp.Work, row: int, out: np.ndarray,
             scratch: np.ndarray) -> np.ndarray:
    """J of batch row ``row`` after :func:`cpu_mlp.forward`; ``out`` and ``scratch`` hold n_0 x max width floats.

    Returns the (n_0, n_L) view of whichever buffer holds the product.
    """
    depth = dims.size - 1
    n0 = dims[0]
    hoff, ds = work.hoff, work.ds
    h0 = hoff[1]
    cur = out[: n0 * n0].reshape(n0, n0)
    for i in range(n0):
        for j in range(n0):
            cur[i, j] = 1.0 if i == j else 0.0
    a, b = out, scratch
    woff = 0
    for l in range(depth):
        n_in, n_out = dims[l], dims[l + 1]
        wl = w[woff : woff + n_in * n_out].reshape(n_in, n_out).astype(np.float64)
        nxt = b[: n0 * n_out].reshape(n0, n_out)
        np.dot(a[: n0 * n_in].reshape(n0, n_in), wl, nxt)
        d = ds[hoff[l + 1] - h0 + row * n_out : hoff[l + 1] - h0 + (row + 1) * n_out]
        for i in range(n0):
            for j in range(n_out):
                nxt[i, j] *= d[j]
        a, b = b, a
        woff += n_in * n_out
    return a[: n0 * dims[depth]].reshape(n0, dims[depth])


@jit(inline="always")
def widest(dims: np.ndarray) -> int:
    """The largest width of ``dims``."""
    m = 0
    for l in range(dims.size):
        m = max(m, dims[l])
    return m


@kernel
def mlp_generated(net: cpu_mlp.Net, init: cpu_mlp.Init, seed: int, trial0: int, batch: int, sv: np.ndarray,
                  lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``sv`` (T, min(n_0, n_L)): the singular values of trial ``trial0 + t``'s J."""
    dims = net.dims
    depth = dims.size - 1
    dtype = sv.dtype
    n_w, n_b = cpu_mlp.sizes(dims)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, dims[0]), dtype=dtype)
    y = np.empty((batch, dims[depth]), dtype=dtype)
    first = np.empty((1, dims[0]), dtype=dtype)
    work = cpu_mlp.workspace(dims, 1, dtype)
    q = np.empty(depth, dtype=dtype)
    size = dims[0] * widest(dims)
    buf, scratch = np.empty(size), np.empty(size)
    for t in range(lo, hi):
        cpu_mlp.draw_trial(w, b, x, y, seed, trial0 + t, dims, init)
        for i in range(dims[0]):
            first[0, i] = x[0, i]
        cpu_mlp.forward(w, b, first, net, work, q)
        jac = jacobian(w, dims, work, 0, buf, scratch)
        s = np.linalg.svd(jac, False)[1]
        for k in range(s.size):
            sv[t, k] = s[k]


@kernel
def mlp_explicit(net: cpu_mlp.Net, w: np.ndarray, b: np.ndarray, x: np.ndarray, jac: np.ndarray, lo: int,
                 hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``jac`` (T, n_0, n_L): J at the first row of x (T, B, n_0), packed w and b."""
    dims = net.dims
    work = cpu_mlp.workspace(dims, 1, x.dtype)
    q = np.empty(dims.size - 1, dtype=x.dtype)
    size = dims[0] * widest(dims)
    buf, scratch = np.empty(size), np.empty(size)
    first = np.empty((1, dims[0]), dtype=x.dtype)
    for t in range(lo, hi):
        for i in range(dims[0]):
            first[0, i] = x[t, 0, i]
        cpu_mlp.forward(w[t], b[t], first, net, work, q)
        j = jacobian(w[t], dims, work, 0, buf, scratch)
        out = jac[t]
        for i in range(j.shape[0]):
            for k in range(j.shape[1]):
                out[i, k] = j[i, k]

"""The input-output Jacobian of MLPs and its singular values, per trial (CPU).

For a trial's input x (the first sample of its batch), ``h_l = phi(h_{l-1} W_l + b_l)``
gives ``dh_l = dh_{l-1} W_l D_l`` with ``D_l = diag(phi'(z_l))``, so the Jacobian of
h_L with respect to h_0, acting on row vectors, is

    J = W_1 D_1 W_2 D_2 ... W_L D_L        (n_0, n_L)

and J^T is the usual column-vector Jacobian dh_L/dh_0: both have the same
singular values. J is formed in float64 whatever the run's dtype (L products of
(n_0, n_l) by (n_l, n_{l+1})), then its singular values by LAPACK's divide-and-conquer SVD
(dgesdd, values only), in decreasing order; a Jacobian with inf or nan gets nan singular values.

The draws are :mod:`cpu_mlp`'s: trial k's weights, biases and inputs are those
of :func:`fastgrad.run` of the same spec, seed and batch (the whole batch is
drawn: its first row depends on the batch size), and J is taken at the first input.
The residual MLP's J is :func:`resmlp_generated`'s. The recurrent cells' dh_S/dh_t is one
loop for every cell (:func:`spectrum_kernel`), which calls the interface every recurrent
kernel file exposes (``workspace``, ``draw_params``, ``draw_inputs``, ``forward``,
``jacobian_step``); each cell's entry point is that loop compiled with its file.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
from numba import types
from numba.np.linalg import _LAPACK

from fastgrad._numba import jit, kernel
from fastgrad.kernels import cpu_gru, cpu_lstm, cpu_mlp, cpu_resmlp, cpu_rnn

_GESDD = _LAPACK().numba_ez_gesdd(types.float64)
"""LAPACK's dgesdd through Numba's own binding (the one behind ``np.linalg.svd``), called with
jobz = 'N': singular values only, without the vectors ``np.linalg.svd`` always forms (half
the time of a depth-32, width-64 trial went into them)."""
_JOBZ_N = ord("N")
_KIND_D = ord("d")


@jit(inline="always")
def identity(m: np.ndarray) -> None:
    """``m`` (n, n) = I."""
    n = m.shape[0]
    for i in range(n):
        for k in range(n):
            m[i, k] = 1.0 if i == k else 0.0


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
    identity(out[: n0 * n0].reshape(n0, n0))
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
    s = np.empty(sv.shape[1])
    for t in range(lo, hi):
        cpu_mlp.draw_trial(w, b, x, y, seed, trial0 + t, dims, init)
        for i in range(dims[0]):
            first[0, i] = x[0, i]
        cpu_mlp.forward(w, b, first, net, work, q)
        jac = jacobian(w, dims, work, 0, buf, scratch)
        singular_values(jac, s, sv[t])


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


@jit(inline="always")
def first_sequence(x: np.ndarray, out: np.ndarray) -> None:
    """``out[:, 0] = x[:, 0]``: the batch's first sequence of x (S, B, d) into out (S, 1, d)."""
    for s in range(x.shape[0]):
        for i in range(x.shape[2]):
            out[s, 0, i] = x[s, 0, i]


@jit
def singular_values(a: np.ndarray, s: np.ndarray, out: np.ndarray) -> None:
    """The singular values of ``a`` (m, n), C-contiguous float64, decreasing, into ``out`` (min(m, n),).

    ``a`` is overwritten; ``s`` (min(m, n),) float64 is scratch. A C-contiguous (m, n)
    array is its transpose in LAPACK's column-major order, with the same singular values,
    so it is passed as is. A Jacobian with inf or nan (overflow) has nan singular values:
    recorded, not raised.
    """
    m, n = a.shape
    for v in a.reshape(m * n):
        if not np.isfinite(v):
            for k in range(out.size):
                out[k] = np.nan
            return
    dummy = np.empty(1)
    info = _GESDD(_KIND_D, _JOBZ_N, n, m, a.ctypes, n, s.ctypes, dummy.ctypes, 1, dummy.ctypes, 1)
    for k in range(out.size):
        out[k] = s[k] if info == 0 else np.nan


@jit(inline="always")
def store_singular_values(m: np.ndarray, out: np.ndarray) -> None:
    """The singular values of ``m`` (n, n), float64 (overwritten), decreasing, into ``out`` (n,)."""
    singular_values(m, np.empty(min(m.shape[0], m.shape[1])), out)


def spectrum_kernel(cell: ModuleType) -> Any:
    """The Jacobian-spectrum kernel of a recurrent cell: the loop below, compiled with the functions of ``cell``.

    ``cell`` is the cell's kernel file (``cpu_rnn``, ``cpu_lstm``, ``cpu_gru``): the loop calls its
    ``workspace``, ``draw_params``, ``draw_inputs``, ``forward`` and ``jacobian_step`` and reads
    its ``GATES`` and ``BIASES``, which compile into it as if the loop were written out for that
    cell (as ``cpu_train_seq.train_kernel``). One kernel per cell, cached as ``<cell>_generated``.

    Parameters
    ----------
    cell : module
        A recurrent kernel file.

    Returns
    -------
    numba dispatcher
        ``generated(net, init, seed, trial0, steps, batch, step, sv, lo, hi)``: rows ``lo .. hi - 1``
        of ``sv`` (T, n), the singular values of dh_S/dh_step (step 1-based) for the first sequence
        of trial ``trial0 + t``'s batch (drawn whole, as :func:`fastgrad.run` draws it): the cell's
        forward pass, then from dh_S/dh_S = I back through steps S .. step + 1 with its
        ``jacobian_step`` (the LSTM's c_step held: its carry dh_S/dc starts at 0), in float64.
    """

    def generated(net: Any, init: Any, seed: int, trial0: int, steps: int, batch: int, step: int, sv: np.ndarray,
                  lo: int, hi: int) -> None:
        n, d_in = init.hidden, init.inputs
        dtype = sv.dtype
        g = cell.GATES * n
        wh = np.empty((n, g), dtype=dtype)
        wx = np.empty((d_in, g), dtype=dtype)
        b = np.empty(g, dtype=dtype)
        bh = np.empty((cell.BIASES - 1) * g, dtype=dtype)
        square = np.empty((n, n), dtype=dtype)
        wide = np.empty((d_in, n), dtype=dtype)
        x = np.empty((steps, batch, d_in), dtype=dtype)
        no_y = np.empty((0, batch, n), dtype=dtype)  # the targets play no part in J
        x1 = np.empty((steps, 1, d_in), dtype=dtype)
        work = cell.workspace(steps, 1, n, dtype)
        q = np.empty(steps, dtype=dtype)
        m, carry, scratch = np.empty((n, n)), np.empty((n, n)), np.empty((n, g))
        for t in range(lo, hi):
            cell.draw_params(init, wh, wx, b, bh, square, wide, seed, trial0 + t)
            cell.draw_inputs(init, x, no_y, seed, trial0 + t)
            first_sequence(x, x1)
            cell.forward(wh, wx, b, bh, x1, net, work, q)
            w64 = wh.astype(np.float64)
            identity(m)
            carry[:] = 0.0
            for s in range(steps - 1, step - 1, -1):  # m = dh_S/dh_{s+1} -> dh_S/dh_s
                cell.jacobian_step(w64, work, s, m, carry, scratch)
            store_singular_values(m, sv[t])

    generated.__qualname__ = f"{cell.__name__.rsplit('.', 1)[-1].removeprefix('cpu_')}_generated"  # its cache files
    return kernel(generated)


# A kernel per cell from one loop, as cpu_train_seq's (the reasons and measurements are there); each is
# also its own key for spectra's first-call (compile) timing.
rnn_generated = spectrum_kernel(cpu_rnn)
lstm_generated = spectrum_kernel(cpu_lstm)
gru_generated = spectrum_kernel(cpu_gru)


@kernel
def resmlp_generated(net: cpu_resmlp.Net, init: cpu_mlp.Init, seed: int, trial0: int, batch: int,
                     sv: np.ndarray, lo: int, hi: int) -> None:
    """Rows ``lo .. hi - 1`` of ``sv``: the singular values of a residual MLP's J = dh_L/dh_0.

    Row-vector form, from J = W_1 D_1 (the plain input layer): a block multiplies by
    ``I + a J_LN W_l D_l`` (J_LN = I without LayerNorm; with it the LayerNorm's Jacobian,
    symmetric, ``v -> (v - mean(v) - u mean(v u)) / s`` for the first input's u and s),
    so ``J <- J + a (J J_LN) W_l D_l``; the read-out multiplies by W_L D_L.
    """
    dims = net.dims
    depth = dims.size - 1
    dtype = sv.dtype
    n_w, n_b = cpu_mlp.sizes(dims)
    w = np.empty(n_w, dtype=dtype)
    b = np.empty(n_b, dtype=dtype)
    x = np.empty((batch, dims[0]), dtype=dtype)
    y = np.empty((batch, dims[depth]), dtype=dtype)
    first = np.empty((1, dims[0]), dtype=dtype)
    work = cpu_resmlp.workspace(dims, 1, dtype, net.layer_norm)
    q = np.empty(depth, dtype=dtype)
    n0, n = dims[0], dims[1]
    size = n0 * widest(dims)
    jac, normed, branch = np.empty(size), np.empty(n0 * n), np.empty(n0 * n)
    s = np.empty(sv.shape[1])
    hoff, ds = work.mlp.hoff, work.mlp.ds
    h0 = hoff[1]
    for t in range(lo, hi):
        cpu_mlp.draw_trial(w, b, x, y, seed, trial0 + t, dims, init)
        for i in range(n0):
            first[0, i] = x[0, i]
        cpu_resmlp.forward(w, b, first, net, work, q)
        woff = 0
        cur = jac[: n0 * n].reshape(n0, n)
        for l in range(depth):
            n_in, n_out = dims[l], dims[l + 1]
            wl = w[woff : woff + n_in * n_out].reshape(n_in, n_out).astype(np.float64)
            d = ds[hoff[l + 1] - h0 : hoff[l + 2] - h0]
            if l == 0:
                for i in range(n0):
                    for j in range(n_out):
                        cur[i, j] = wl[i, j] * d[j]
            elif l < depth - 1:  # a block: J += a (J J_LN) W_l D_l
                src = normed.reshape(n0, n_in)
                if net.layer_norm:
                    u = work.us[hoff[l] - h0 : hoff[l] - h0 + n_in]
                    inv = work.inv_std[l]
                    for r in range(n0):
                        m1, m2 = 0.0, 0.0
                        for j in range(n_in):
                            m1 += cur[r, j]
                            m2 += cur[r, j] * np.float64(u[j])
                        m1 /= n_in
                        m2 /= n_in
                        for j in range(n_in):
                            src[r, j] = (cur[r, j] - m1 - np.float64(u[j]) * m2) * inv
                else:
                    for r in range(n0):
                        for j in range(n_in):
                            src[r, j] = cur[r, j]
                out = branch.reshape(n0, n_out)
                np.dot(src, wl, out)
                for i in range(n0):
                    for j in range(n_out):
                        cur[i, j] += net.residual * out[i, j] * d[j]
            else:  # the read-out
                last = jac[: n0 * n_out].reshape(n0, n_out)  # J is copied out first: it may share the buffer
                tmp = branch[: n0 * n_in].reshape(n0, n_in)
                for i in range(n0):
                    for j in range(n_in):
                        tmp[i, j] = cur[i, j]
                np.dot(tmp, wl, last)
                for i in range(n0):
                    for j in range(n_out):
                        last[i, j] *= d[j]
                singular_values(last, s, sv[t])
            woff += n_in * n_out

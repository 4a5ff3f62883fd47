"""Drawing one tensor of a trial from its counter-based stream (CPU)."""

from __future__ import annotations

import numpy as np
from numba import objmode

from fastgrad._numba import jit
from fastgrad.initializers import CONSTANT, IDENTITY, NORMAL, ORTHOGONAL, SPECTRAL, UNIFORM
from fastgrad.rng import fill_normal, fill_uniform, stream_key


@jit
def draw_matrix(out: np.ndarray, kind: int, scale: float, seed: int, trial: int, tensor: int) -> None:
    """Fill ``out`` (rows, cols), C-contiguous, with one initialised tensor."""
    rows, cols = out.shape
    flat = out.reshape(rows * cols)
    key = stream_key(seed, trial, tensor)
    if kind == NORMAL:
        fill_normal(flat, key, scale)
    elif kind == UNIFORM:
        fill_uniform(flat, key, -scale, scale)
    elif kind == CONSTANT:
        flat[:] = scale
    elif kind == IDENTITY:
        out[:, :] = 0.0
        for i in range(min(rows, cols)):
            out[i, i] = scale
    elif kind == ORTHOGONAL:
        # Haar-distributed: QR of a Gaussian matrix, columns signed by diag(R).
        big, small = max(rows, cols), min(rows, cols)
        g = np.empty(big * small, dtype=np.float64)
        fill_normal(g, key, 1.0)
        qt = orthonormal_columns(g.reshape(big, small))
        if rows >= cols:
            for i in range(rows):
                for j in range(cols):
                    out[i, j] = scale * qt[j, i]
        else:
            for j in range(rows):
                for i in range(cols):
                    out[j, i] = scale * qt[j, i]
    elif kind == SPECTRAL:
        # A square Gaussian matrix divided by its spectral radius, times the gain.
        g = np.empty(rows * cols, dtype=np.float64)
        fill_normal(g, key, 1.0)
        m = g.reshape(rows, cols)
        radius = spectral_radius(m)
        for i in range(rows):
            for j in range(cols):
                out[i, j] = m[i, j] * (scale / radius)


@jit
def orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Q^T of the QR factorisation of ``a`` (m, n), m >= n, with diag(R) made positive.

    Householder reflections in plain loops, float64. The signs make Q unique, so
    for a Gaussian ``a`` it is Haar-distributed. Written out rather than
    ``np.linalg.qr``: Numba's LAPACK wrappers took ~15 s to compile into every
    kernel that draws weights; these loops take well under one.
    """
    m, n = a.shape
    r = np.ascontiguousarray(a.T)  # row j: column j of a, reduced in place
    v = np.zeros((n, m))  # v[k, k:]: the k-th Householder vector
    vv = np.zeros(n)  # |v_k|^2, 0 when no reflection is needed
    diag = np.empty(n)
    for k in range(n):
        norm2 = 0.0
        for i in range(k, m):
            norm2 += r[k, i] * r[k, i]
        x0 = r[k, k]
        alpha = -np.sqrt(norm2) if x0 >= 0.0 else np.sqrt(norm2)
        for i in range(k, m):
            v[k, i] = r[k, i]
        v[k, k] = x0 - alpha
        vv[k] = norm2 - x0 * x0 + v[k, k] * v[k, k]
        diag[k] = alpha
        if vv[k] > 0.0:
            for j in range(k + 1, n):
                dot = 0.0
                for i in range(k, m):
                    dot += v[k, i] * r[j, i]
                c = 2.0 * dot / vv[k]
                for i in range(k, m):
                    r[j, i] -= c * v[k, i]
        else:
            diag[k] = x0
    qt = np.zeros((n, m))  # rows: the columns of Q = H_0 ... H_{n-1} [I; 0]
    for j in range(n):
        qt[j, j] = 1.0
    for k in range(n - 1, -1, -1):
        if vv[k] > 0.0:
            for j in range(n):
                dot = 0.0
                for i in range(k, m):
                    dot += v[k, i] * qt[j, i]
                c = 2.0 * dot / vv[k]
                for i in range(k, m):
                    qt[j, i] -= c * v[k, i]
    for j in range(n):
        if diag[j] < 0.0:
            for i in range(m):
                qt[j, i] = -qt[j, i]
    return qt


@jit(nogil=False)  # the object-mode block holds the GIL anyway; nogil would only warn so
def spectral_radius(m: np.ndarray) -> float:
    """max |eigenvalue| of a square float64 matrix, by NumPy's ``eigvals`` (LAPACK geev).

    Called through object mode: compiling Numba's own ``eigvals`` into every
    kernel that draws weights took seconds per kernel, for an init that runs
    once per trial.
    """
    with objmode(radius="float64"):
        radius = float(np.max(np.abs(np.linalg.eigvals(m))))
    return radius


@jit
def draw_vector(out: np.ndarray, kind: int, scale: float, seed: int, trial: int, tensor: int) -> None:
    """Fill a 1-D ``out`` with one initialised bias (or input) tensor."""
    key = stream_key(seed, trial, tensor)
    if kind == NORMAL:
        fill_normal(out, key, scale)
    elif kind == UNIFORM:
        fill_uniform(out, key, -scale, scale)
    else:
        out[:] = scale

"""Drawing one tensor of a trial from its counter-based stream (CPU)."""

from __future__ import annotations

import numpy as np

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
        q, r = np.linalg.qr(g.reshape(big, small))
        for j in range(small):
            sign = scale if r[j, j] >= 0.0 else -scale
            for i in range(big):
                q[i, j] *= sign
        if rows >= cols:
            out[:, :] = q
        else:
            out[:, :] = q.T
    elif kind == SPECTRAL:
        # A square Gaussian matrix divided by its spectral radius, times the gain.
        g = np.empty(rows * cols, dtype=np.float64)
        fill_normal(g, key, 1.0)
        m = g.reshape(rows, cols)
        radius = np.max(np.abs(np.linalg.eigvals(m.astype(np.complex128))))  # real eigvals would refuse complex ones
        out[:, :] = m * (scale / radius)


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

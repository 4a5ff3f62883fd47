"""Drawing one tensor of a trial from its counter-based stream (CPU).

Normal, uniform, constant and identity tensors are straight-line loops. The
orthogonal and spectral inits need LAPACK (QR, eigenvalues), whose compiled code
is large; a kernel compiles them only when it is called with the draw choice
``FACTORED`` (:data:`PLAIN` otherwise), so the common case never pays for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba.extending import overload

from fastgrad._numba import Choice, chosen, jit
from fastgrad.codes import CONSTANT, FACTORED_KINDS, IDENTITY, NORMAL, ORTHOGONAL, SPECTRAL, UNIFORM
from fastgrad.rng import fill_normal, fill_uniform, stream_key

PLAIN = Choice("draw", "plain")
FACTORED = Choice("draw", "factored")


def draw_choice(kinds: Any) -> Choice:
    """The draw choice a kernel needs for these init kinds: ``FACTORED`` if any is orthogonal or spectral.

    Parameters
    ----------
    kinds : int or iterable of int

    Returns
    -------
    Choice
    """
    return FACTORED if np.isin(np.atleast_1d(kinds), FACTORED_KINDS).any() else PLAIN


@jit
def _draw_plain(out: np.ndarray, kind: int, scale: float, key: np.uint64) -> None:
    rows, cols = out.shape
    flat = out.reshape(rows * cols)
    if kind == NORMAL:
        fill_normal(flat, key, scale)
    elif kind == UNIFORM:
        fill_uniform(flat, key, -scale, scale)
    elif kind == CONSTANT:
        flat[:] = scale
    elif kind == IDENTITY:
        flat[:] = 0.0
        for i in range(min(rows, cols)):
            out[i, i] = scale


@jit
def _draw_factored(out: np.ndarray, kind: int, scale: float, key: np.uint64) -> None:
    rows, cols = out.shape
    if kind == ORTHOGONAL:
        # Haar-distributed: QR of a Gaussian matrix, columns signed by diag(R).
        big, small = max(rows, cols), min(rows, cols)
        g = np.empty(big * small, dtype=np.float64)
        fill_normal(g, key, 1.0)
        q, r = np.linalg.qr(g.reshape(big, small))
        for j in range(small):
            sign = scale if r[j, j] >= 0.0 else -scale
            for i in range(big):
                q[i, j] *= sign
        for i in range(rows):
            for j in range(cols):
                out[i, j] = q[i, j] if rows >= cols else q[j, i]
    elif kind == SPECTRAL:
        # A square Gaussian matrix divided by its spectral radius, times the gain.
        g = np.empty(rows * cols, dtype=np.float64)
        fill_normal(g, key, 1.0)
        m = g.reshape(rows, cols)
        radius = np.max(np.abs(np.linalg.eigvals(m.astype(np.complex128))))  # real eigvals would refuse complex ones
        factor = scale / radius
        for i in range(rows):
            for j in range(cols):
                out[i, j] = m[i, j] * factor
    else:
        _draw_plain(out, kind, scale, key)


def _dispatch(draw: Any, out: Any, kind: Any, scale: Any, key: Any) -> None:
    raise NotImplementedError("compiled code only")


@overload(_dispatch, inline="always")
def _dispatch_impl(draw, out, kind, scale, key):  # type: ignore[no-untyped-def]
    name = chosen(draw, "draw")
    if name == "plain":
        return lambda draw, out, kind, scale, key: _draw_plain(out, kind, scale, key)
    if name == "factored":
        return lambda draw, out, kind, scale, key: _draw_factored(out, kind, scale, key)
    return None


@jit
def draw_matrix(draw: Any, out: np.ndarray, kind: int, scale: float, seed: int, trial: int, tensor: int) -> None:
    """Fill ``out`` (rows, cols), C-contiguous, with one initialised tensor; ``draw`` is PLAIN or FACTORED."""
    _dispatch(draw, out, kind, scale, stream_key(seed, trial, tensor))


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

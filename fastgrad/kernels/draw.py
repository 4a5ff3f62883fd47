"""Drawing one tensor of a trial from its counter-based stream (CPU).

Normal, uniform, constant and identity tensors are straight-line loops, with
normals in the tensor's own precision (``rng.fill_normal`` or ``rng.fill_normal32``:
one kernel per dtype, ``plain`` and ``plain32``, so that each compiles one loop). The
orthogonal and spectral inits need LAPACK (QR, eigenvalues), whose compiled code
is large. Both are compiled once per dtype into functions the kernels receive as
first-class functions (``Init.draw`` of each kernel file, from :func:`draw_function`):
the plain one for every kernel, the factored one only when an init needs it; no
kernel compiles the generator itself.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import types

from fastgrad._numba import FirstClass, call, jit, kernel
from fastgrad.codes import CONSTANT, FACTORED_KINDS, IDENTITY, NORMAL, ORTHOGONAL, SPECTRAL, UNIFORM
from fastgrad.rng import fill_normal, fill_normal32, fill_uniform, stream_key


@jit(inline="always")
def _draw_plain(out: np.ndarray, kind: int, scale: float, key: np.uint64, fill: Any) -> None:
    # fill: rng.fill_normal or rng.fill_normal32, the normals of out's dtype (a compile-time choice).
    rows, cols = out.shape
    flat = out.reshape(rows * cols)
    if kind == NORMAL:
        fill(flat, key, scale)
    elif kind == UNIFORM:
        fill_uniform(flat, key, -scale, scale)
    elif kind == CONSTANT:
        flat[:] = scale
    elif kind == IDENTITY:
        flat[:] = 0.0
        for i in range(min(rows, cols)):
            out[i, i] = scale


@kernel
def plain(out: np.ndarray, kind: int, scale: float, key: np.uint64) -> None:
    """Fill float64 ``out`` (rows, cols), C-contiguous: a NORMAL, UNIFORM, CONSTANT or IDENTITY tensor of ``key``."""
    _draw_plain(out, kind, scale, key, fill_normal)


@kernel
def plain32(out: np.ndarray, kind: int, scale: float, key: np.uint64) -> None:
    """:func:`plain` for float32 ``out``: normals in float32 arithmetic."""
    _draw_plain(out, kind, scale, key, fill_normal32)


@jit(inline="always")
def _draw_factored(out: np.ndarray, kind: int, scale: float, key: np.uint64, fill: Any) -> None:
    rows, cols = out.shape
    if kind == ORTHOGONAL:
        # Haar-distributed: QR of a Gaussian matrix, columns signed by diag(R); drawn in float64.
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
        # A square Gaussian matrix divided by its spectral radius, times the gain; drawn in float64.
        g = np.empty(rows * cols, dtype=np.float64)
        fill_normal(g, key, 1.0)
        m = g.reshape(rows, cols)
        radius = np.max(np.abs(np.linalg.eigvals(m.astype(np.complex128))))  # real eigvals would refuse complex ones
        factor = scale / radius
        for i in range(rows):
            for j in range(cols):
                out[i, j] = m[i, j] * factor
    else:
        _draw_plain(out, kind, scale, key, fill)


@kernel
def factored(out: np.ndarray, kind: int, scale: float, key: np.uint64) -> None:
    """As :func:`plain`, and ORTHOGONAL (QR) and SPECTRAL (eigenvalues) tensors, for float64 ``out``."""
    _draw_factored(out, kind, scale, key, fill_normal)


@kernel
def factored32(out: np.ndarray, kind: int, scale: float, key: np.uint64) -> None:
    """:func:`factored` for float32 ``out`` (QR and eigenvalues in float64, then rounded)."""
    _draw_factored(out, kind, scale, key, fill_normal32)


@functools.cache
def draw_function(name: str, dtype: str) -> FirstClass:
    """The draw function ``draw(out, kind, scale, key)`` for ``dtype``: ``"plain"`` or ``"factored"``.

    Parameters
    ----------
    name : {"plain", "factored"}
    dtype : {"float32", "float64"}

    Returns
    -------
    FirstClass
    """
    arr = types.Array(types.float32 if dtype == "float32" else types.float64, 2, "C")
    dispatcher = {("plain", "float64"): plain, ("factored", "float64"): factored, ("plain", "float32"): plain32,
                  ("factored", "float32"): factored32}[name, "float32" if dtype == "float32" else "float64"]
    return FirstClass(dispatcher, types.void(arr, types.int64, types.float64, types.uint64), name)


def draw_choice(kinds: Any, dtype: str = "float64") -> FirstClass:
    """The draw function a kernel needs for these init kinds: factored if any is orthogonal or spectral.

    Parameters
    ----------
    kinds : int or iterable of int
    dtype : {"float32", "float64"}

    Returns
    -------
    FirstClass
    """
    factor = np.isin(np.atleast_1d(kinds), FACTORED_KINDS).any()
    return draw_function("factored" if factor else "plain", dtype)


@jit(inline="always")
def draw_matrix(draw: Any, out: np.ndarray, kind: int, scale: float, seed: int, trial: int, tensor: int) -> None:
    """Fill ``out`` (rows, cols), C-contiguous, with one initialised tensor, by the draw function ``draw``."""
    call(draw, out, np.int64(kind), np.float64(scale), stream_key(seed, trial, tensor))


@jit(inline="always")
def draw_vector(draw: Any, out: np.ndarray, kind: int, scale: float, seed: int, trial: int, tensor: int) -> None:
    """Fill a 1-D C-contiguous ``out`` with one initialised bias (or input) tensor."""
    call(draw, out.reshape(1, out.size), np.int64(kind), np.float64(scale), stream_key(seed, trial, tensor))

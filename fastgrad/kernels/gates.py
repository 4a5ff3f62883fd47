"""Building blocks the gated cells share (:mod:`cpu_lstm`, :mod:`cpu_gru`): how a trial's gate weights are drawn.

Weights are stored for ``x @ W``: the recurrent weights W_h are (n, G n) and the
input weights W_x (d, G n), gate k in columns ``k n .. (k + 1) n`` (PyTorch's
``weight_hh_l0`` is ``W_h.T``, its rows in the same gate order). Each gate's block
is drawn on its own, from its own stream, so that an orthogonal init makes every
gate's (n, n) block orthogonal, as PyTorch users do it (``init.orthogonal_`` per
gate chunk).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastgrad._numba import jit
from fastgrad.codes import GATED_B, GATED_BH, GATED_CHRONO, GATED_WH, GATED_WX, MEMORY_CHRONO, UNIFORM
from fastgrad.kernels.draw import draw_matrix, draw_vector
from fastgrad.kernels.norms import accumulate_norm_squared


class Init(NamedTuple):
    """How a generated LSTM or GRU trial is drawn.

    Attributes
    ----------
    draw : FirstClass
        The draw function (``draw.draw_function``): factored when a block is orthogonal or spectral.
    hidden, inputs, gates : int
        n, d and the number of gates G (4 for the LSTM, 3 for the GRU).
    w_kind, x_kind : int
        Init kinds (``codes``) of each gate's recurrent (n, n) and input (d, n) blocks.
    w_scale, x_scale : float
    b_kind : int
        Kind of every bias entry (GRU: b_ih and b_hh alike) before the memory gate is set.
    b_scale : float
    memory_gate : int
        The gate whose bias sets the memory: the LSTM's forget gate (1), the GRU's update gate (1).
    memory_mode : int
        ``codes.MEMORY_CONSTANT`` (its b_ih block = ``memory_value``, its b_hh block 0) or
        ``MEMORY_CHRONO`` (Tallec & Ollivier 2018: ``log(u)``, u ~ U(1, memory_value - 1); the
        LSTM's input gate gets ``-log(u)``).
    memory_value : float
    """

    draw: Any
    hidden: int
    inputs: int
    gates: int
    w_kind: int
    w_scale: float
    x_kind: int
    x_scale: float
    b_kind: int
    b_scale: float
    memory_gate: int
    memory_mode: int
    memory_value: float


@jit(inline="always")
def draw_blocks(init: Init, out: np.ndarray, block: np.ndarray, kind: int, scale: float, seed: int, trial: int,
                tensor0: int) -> None:
    """Fill ``out`` (rows, G n) gate block by gate block, each drawn into ``block`` (rows, n) from tensor0 + k."""
    rows, n = block.shape
    for k in range(init.gates):
        draw_matrix(init.draw, block, kind, scale, seed, trial, tensor0 + k)
        for i in range(rows):
            for j in range(n):
                out[i, k * n + j] = block[i, j]


@jit(inline="always")
def draw_weights(init: Init, wh: np.ndarray, wx: np.ndarray, b: np.ndarray, bh: np.ndarray, square: np.ndarray,
                 wide: np.ndarray, seed: int, trial: int) -> None:
    """A trial's W_h (n, G n), W_x (d, G n), b (G n) and, if ``bh.size``, the GRU's b_hh (G n).

    ``square`` (n, n) and ``wide`` (d, n) are scratch for one block.
    """
    n = init.hidden
    draw_blocks(init, wh, square, init.w_kind, init.w_scale, seed, trial, GATED_WH)
    draw_blocks(init, wx, wide, init.x_kind, init.x_scale, seed, trial, GATED_WX)
    draw_vector(init.draw, b, init.b_kind, init.b_scale, seed, trial, GATED_B)
    if bh.size:
        draw_vector(init.draw, bh, init.b_kind, init.b_scale, seed, trial, GATED_BH)
    m = init.memory_gate * n
    if init.memory_mode == MEMORY_CHRONO:
        u = np.empty(n, dtype=b.dtype)
        draw_vector(init.draw, u, UNIFORM, 1.0, seed, trial, GATED_CHRONO)  # U(-1, 1)
        for j in range(n):
            v = np.log(1.0 + (init.memory_value - 2.0) * (np.float64(u[j]) + 1.0) * 0.5)
            b[m + j] = v
            if init.gates == 4:  # the LSTM's input gate: -log(u)
                b[j] = -v
    else:
        for j in range(n):
            b[m + j] = init.memory_value
    if bh.size:
        for j in range(n):
            bh[m + j] = 0.0


@jit(inline="always")
def gate_norms(total: np.ndarray, n: int, gates: int, out: np.ndarray) -> None:
    """``out[0]`` = ||total||, ``out[1 + k]`` = the norm of gate k's columns, of a flat (n, gates n) matrix."""
    g = gates * n
    out[0] = 0.0
    for k in range(gates):
        s = 0.0
        for r in range(n):
            for j in range(k * n, (k + 1) * n):
                v = np.float64(total[r * g + j])
                s += v * v
        out[1 + k] = np.sqrt(s)
        out[0] += s
    out[0] = np.sqrt(out[0])


@jit(inline="always")
def gate_parts(step: np.ndarray, total: np.ndarray, n: int, gates: int, parts: np.ndarray) -> None:
    """``total += step`` (float64) and ``parts[k]`` = the squared norm of gate k's columns, of flat (n, gates n) rows.

    One contiguous run of n entries per row and gate, each accumulated by the
    vectorised :func:`~fastgrad.kernels.norms.accumulate_norm_squared`.
    """
    g = gates * n
    parts[:] = 0.0
    for r in range(n):
        for k in range(gates):
            lo = r * g + k * n
            parts[k] += accumulate_norm_squared(step[lo : lo + n], total[lo : lo + n])

"""The GRU (PyTorch's equations, one layer), unrolled: spec, runs, given arrays, spectra, training.

Definitions in docs/architecture.md ("LSTM and GRU"); kernels in ``kernels/cpu_gru.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fastgrad.executor import Block
from fastgrad.kernels import cpu_gru, cpu_spectrum, cpu_train_seq
from fastgrad.models._gated import Cell, _Gated, gated, gated_backprop, gated_draws, gated_plan, gated_working
from fastgrad.models._recurrent import sequence_training
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.models.rnn import step_check
from fastgrad.results import Result


@dataclass(frozen=True)
class GRU(_Gated):
    """A GRU unrolled over ``steps``, with PyTorch's gate equations (``torch.nn.GRU``, one layer).

    ``r = sigmoid(ax_r + ah_r)``, ``z = sigmoid(ax_z + ah_z)``, ``n = tanh(ax_n + r * ah_n)``,
    ``h_t = (1 - z) * n + z * h_{t-1}``, with ``ax = x_t W_x + b_ih`` and ``ah = h_{t-1} W_h + b_hh``,
    gates r, z, n in that order, ``h_0 = 0`` (kernels/cpu_gru.py).

    Parameters
    ----------
    steps, hidden, inputs, init, gain, input_init, input_scale, bias_init, sigma_b, sigma_b2, bias_value, loss
        As for :class:`LSTM`; b_ih and b_hh are drawn alike.
    update_bias : float or "chrono"
        The update gate's b_ih block (its b_hh block is 0): z = sigmoid(b) is the share of
        h_{t-1} kept, so larger values remember longer; ``"chrono"``: log(u), u ~ U(1, chrono_max - 1).
    chrono_max : int, optional
    jacobian : bool
        Also compute ``jacobian_norm`` = ||dh_S/dh_t||_F (T, S) of the first sequence of each
        trial's batch: one (n, 3n) x (3n, n) product per step.
    """

    update_bias: float | str = 0.0
    model: str = field(default="gru", init=False)

    GATES: ClassVar[int] = 3
    MEMORY: ClassVar[str] = "update_bias"

    def __post_init__(self) -> None:
        self._check()


def gru_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_gru.Stats:
    """Empty output rows of the GRU kernels: (T, S) grad_h, q; (T, S, 4) per-step norms; (T, 7) totals;
    the Jacobian norms (T, S), or (T, 0) without them."""
    return cpu_gru.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                         np.empty((trials, steps, 4), dtype=dtype), np.empty((trials, 7), dtype=dtype),
                         np.empty((trials, steps if jacobian else 0), dtype=dtype))


def gru_backprop(W_h: np.ndarray, W_x: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray, x: np.ndarray,
                 y: np.ndarray, loss: str = "last", threads: int | None = None, jacobian: bool = False) -> Result:
    """Backpropagation through time for given GRUs, one per trial (:class:`fastgrad.GRU`'s equations).

    Parameters
    ----------
    W_h : array (T, n, 3n)
        Recurrent weights for ``h @ W_h``, gates r, z, n in column blocks (PyTorch's ``weight_hh_l0.T``).
    W_x : array (T, d, 3n)
        Input weights (``weight_ih_l0.T``).
    b_ih, b_hh : array (T, 3n)
        The two biases (``bias_ih_l0``, ``bias_hh_l0``).
    x : array (T, S, B, d)
    y : array
        ``last``/``probe``: (T, B, n); ``all``: (T, S, B, n).
    loss : {"last", "all", "probe"}
    threads : int, optional
    jacobian : bool
        Also ``jacobian_norm`` (T, S): ||dh_S/dh_t||_F of the first sequence of each trial's batch.

    Returns
    -------
    Result
        As :func:`fastgrad.run` of a :class:`~fastgrad.GRU`.
    """
    return gated_backprop(CELL, W_h, W_x, {"b_ih": b_ih, "b_hh": b_hh}, x, y, loss, threads, jacobian)


CELL = Cell("gru", cpu_gru.Net, ("r", "z", "n"), ("b_ih", "b_hh"), False, gru_stats, cpu_gru.explicit,
            cpu_gru.draw_arrays)


def gru(spec: GRU, dtype: str = "float64") -> tuple[cpu_gru.Net, Any]:
    """An GRU spec's kernel arguments (``Net``, the blocked gate draws' ``Init``)."""
    return gated(spec, CELL, dtype)


def gru_trial_arrays(spec: GRU, seed: int, trials: int | np.ndarray, batch: int,
                        dtype: str = "float64") -> tuple[np.ndarray, ...]:
    """Draw the arrays of GRU trials, exactly as :func:`fastgrad.run` draws them.

    Parameters
    ----------
    spec : GRU
    seed : int
    trials : int or int array
        How many (trials 0 .. trials - 1), or which.
    batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    tuple of numpy.ndarray
        ``(W_h, W_x, b_ih, b_hh, x, y)``, shaped as :func:`fastgrad.gru_backprop` takes them.
    """
    return gated_draws(spec, CELL, seed, trials, batch, dtype)


class GRUModel(Model):
    """The GRU's entry in the model table."""

    name = "gru"
    spec = GRU
    order = 4
    recurrent = True
    main_metric = "grad_h"  # ||dLoss/dh_t||, as the vanilla RNN's
    cpu_only = "the gated cells have CPU kernels only so far"
    statistics = 8
    spectrum = True
    trainable = True

    def plan(self, spec: GRU, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        return gated_plan(spec, CELL, trials, batch, seed, dt, first, cpu_gru.generated)

    def working(self, spec: GRU, batch: int) -> int:
        return gated_working(spec, batch)

    def trial_arrays(self, spec: GRU, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return gru_trial_arrays(spec, seed, trials, batch, dtype)

    def spectrum_block(self, spec: GRU, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        step = step_check(spec, step)
        net, init = gru(spec, dtype)
        sv = np.empty((trials, spec.hidden), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_spectrum.gru_generated(net, init, seed, first, spec.steps, batch, step, sv, lo, hi)

        return block, sv, (cpu_spectrum.gru_generated, dtype, init.draw)

    def train_setup(self, spec: GRU, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        return sequence_training(spec, data, classification, dt, gru, 3, 2,
                                 cpu_train_seq.train_gru)

    def warmup_specs(self, activation: str) -> list[GRU]:
        return [GRU(steps=2, hidden=2, inputs=1)]


PUBLIC = ("GRU", "gru_backprop", "gru_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(GRUModel())

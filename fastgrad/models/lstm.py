"""The LSTM (PyTorch's equations, one layer), unrolled: spec, runs, given arrays, spectra, training.

Definitions in docs/architecture.md ("LSTM and GRU"); kernels in ``kernels/cpu_lstm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fastgrad.executor import Block
from fastgrad.kernels import cpu_lstm, cpu_spectrum, cpu_train_seq
from fastgrad.models._gated import Cell, _Gated, gated, gated_backprop, gated_draws, gated_plan, gated_working
from fastgrad.models._recurrent import sequence_training
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.models.rnn import step_check
from fastgrad.results import Result


@dataclass(frozen=True)
class LSTM(_Gated):
    """An LSTM unrolled over ``steps``, with PyTorch's gate equations (``torch.nn.LSTM``, one layer).

    ``a_t = x_t W_x + h_{t-1} W_h + b`` (B, 4n), gates i, f, g, o in that order;
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``, ``h_0 = c_0 = 0``
    (kernels/cpu_lstm.py has the layout and the backward pass).

    Parameters
    ----------
    steps, hidden, inputs : int
        S, n and d.
    init : str
        Each gate's recurrent (n, n) block: ``normal`` (N(0, gain^2 / n)), ``orthogonal``
        (gain * Q, Q Haar-orthogonal per gate), ``identity`` (gain * I) or ``spectral``
        (spectral radius = gain).
    gain : float
        The scale of every recurrent init: gain plays sigma_w (sigma_w^2 = gain^2 on the
        mean-field axis). Default 1.
    input_init : str
        Each gate's input (d, n) block: ``normal`` (N(0, input_scale^2 / d)),
        ``xavier_normal`` (N(0, input_scale^2 2 / (d + n))) or ``orthogonal`` (input_scale * Q).
    input_scale : float
    bias_init, sigma_b, sigma_b2, bias_value
        Every bias entry, as for :class:`RNN` (default zeros), before the forget gate's is set:
        ``sigma_b`` counts under ``bias_init="normal"`` only, ``bias_value`` under ``"constant"`` only.
    forget_bias : float or "chrono"
        The forget gate's bias: a constant (0, or 1 as Jozefowicz et al. 2015 advise), or
        ``"chrono"`` (Tallec & Ollivier 2018): b_f = log(u), u ~ U(1, chrono_max - 1), and the
        input gate's b_i = -b_f.
    chrono_max : int, optional
        T_max of the chrono init (the longest dependency expected); default ``steps``.
    loss : str
        ``last``, ``all`` or ``probe``, as for :class:`RNN`.
    jacobian : bool
        Also compute ``jacobian_norm`` = ||dh_S/dh_t||_F and ``jacobian_c_norm`` = ||dc_S/dc_t||_F
        (T, S) of the first sequence of each trial's batch: two (n, 4n) x (4n, n) products per step.
    """

    forget_bias: float | str = 0.0
    model: str = field(default="lstm", init=False)

    GATES: ClassVar[int] = 4
    MEMORY: ClassVar[str] = "forget_bias"

    def __post_init__(self) -> None:
        self._check()


def lstm_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_lstm.Stats:
    """Empty output rows of the LSTM kernels: (T, S) grad_h, grad_c, q; (T, S, 5) per-step norms; (T, 7) totals;
    the two Jacobian norms (T, S), or (T, 0) without them."""
    jac = steps if jacobian else 0
    return cpu_lstm.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                          np.empty((trials, steps), dtype=dtype), np.empty((trials, steps, 5), dtype=dtype),
                          np.empty((trials, 7), dtype=dtype), np.empty((trials, jac), dtype=dtype),
                          np.empty((trials, jac), dtype=dtype))


def lstm_backprop(W_h: np.ndarray, W_x: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
                  loss: str = "last", threads: int | None = None, jacobian: bool = False) -> Result:
    """Backpropagation through time for given LSTMs, one per trial (:class:`fastgrad.LSTM`'s equations).

    Parameters
    ----------
    W_h : array (T, n, 4n)
        Recurrent weights for ``h @ W_h``, gates i, f, g, o in column blocks (PyTorch's ``weight_hh_l0.T``).
    W_x : array (T, d, 4n)
        Input weights (``weight_ih_l0.T``).
    b : array (T, 4n)
        Bias (``bias_ih_l0 + bias_hh_l0``).
    x : array (T, S, B, d)
    y : array
        ``last``/``probe``: (T, B, n); ``all``: (T, S, B, n), as for :func:`rnn_backprop`.
    loss : {"last", "all", "probe"}
    threads : int, optional
    jacobian : bool
        Also ``jacobian_norm`` and ``jacobian_c_norm`` (T, S): ||dh_S/dh_t||_F and
        ||dc_S/dc_t||_F of the first sequence of each trial's batch.

    Returns
    -------
    Result
        As :func:`fastgrad.run` of an :class:`~fastgrad.LSTM` (``grad_h``, ``grad_c``, ``q``, the
        per-step and total weight-gradient norms, per gate).
    """
    return gated_backprop(CELL, W_h, W_x, {"b": b}, x, y, loss, threads, jacobian)


CELL = Cell("lstm", cpu_lstm.Net, ("i", "f", "g", "o"), ("b",), True, lstm_stats, cpu_lstm.explicit,
            cpu_lstm.draw_arrays)


def lstm(spec: LSTM, dtype: str = "float64") -> tuple[cpu_lstm.Net, Any]:
    """An LSTM spec's kernel arguments (``Net``, the blocked gate draws' ``Init``)."""
    return gated(spec, CELL, dtype)


def lstm_trial_arrays(spec: LSTM, seed: int, trials: int | np.ndarray, batch: int,
                        dtype: str = "float64") -> tuple[np.ndarray, ...]:
    """Draw the arrays of LSTM trials, exactly as :func:`fastgrad.run` draws them.

    Parameters
    ----------
    spec : LSTM
    seed : int
    trials : int or int array
        How many (trials 0 .. trials - 1), or which.
    batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    tuple of numpy.ndarray
        ``(W_h, W_x, b, x, y)``, shaped as :func:`fastgrad.lstm_backprop` takes them.
    """
    return gated_draws(spec, CELL, seed, trials, batch, dtype)


class LSTMModel(Model):
    """The LSTM's entry in the model table."""

    name = "lstm"
    spec = LSTM
    order = 3
    recurrent = True
    main_metric = "grad_h"  # ||dLoss/dh_t||, as the vanilla RNN's
    cpu_only = "the gated cells have CPU kernels only so far"
    statistics = 10
    spectrum = True
    trainable = True

    def plan(self, spec: LSTM, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        return gated_plan(spec, CELL, trials, batch, seed, dt, first, cpu_lstm.generated)

    def working(self, spec: LSTM, batch: int) -> int:
        return gated_working(spec, batch)

    def trial_arrays(self, spec: LSTM, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return lstm_trial_arrays(spec, seed, trials, batch, dtype)

    def spectrum_block(self, spec: LSTM, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        step = step_check(spec, step)
        net, init = lstm(spec, dtype)
        sv = np.empty((trials, spec.hidden), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_spectrum.lstm_generated(net, init, seed, first, spec.steps, batch, step, sv, lo, hi)

        return block, sv, (cpu_spectrum.lstm_generated, dtype, init.draw)

    def train_setup(self, spec: LSTM, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        return sequence_training(spec, data, classification, dt, lstm, 4, 1,
                                 cpu_train_seq.train_lstm)

    def warmup_specs(self, activation: str) -> list[LSTM]:
        return [LSTM(steps=2, hidden=2, inputs=1)]


PUBLIC = ("LSTM", "lstm_backprop", "lstm_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(LSTMModel())

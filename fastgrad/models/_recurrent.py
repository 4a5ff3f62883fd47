"""What the recurrent cells (RNN, LSTM, GRU) share: training by BPTT with a linear read-out.

Not a model family itself (the leading underscore keeps it out of the registry's discovery).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad.codes import TRAIN_MSE, TRAIN_XENT
from fastgrad.kernels import cpu_rnn, cpu_train
from fastgrad.models.base import TrainSetup


def sequences(x: np.ndarray, y: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, S, d) and targets (N, K, k) of one split, K = 1 for targets of shape (N, k)."""
    if x.ndim != 3:
        raise ValueError(f"data: an RNN, LSTM or GRU trains on sequences (N, steps, features), got {which} inputs "
                         f"of shape {x.shape}")
    if y.ndim == 2:
        y = y[:, None, :]
    if y.ndim != 3 or y.shape[0] != x.shape[0] or not 1 <= y.shape[1] <= x.shape[1]:
        raise ValueError(f"data: {which} targets must be (N, outputs) or (N, K, outputs) with 1 <= K <= steps "
                         f"for inputs {x.shape}, got {y.shape}")
    return x, y


def sequence_training(spec: Any, data: Any, classification: bool, dt: np.dtype, lower: Callable[..., Any],
                      gates: int, cell_biases: int, kernel: Callable[..., None],
                      recurrent_size: int | None = None) -> TrainSetup:
    """A recurrent cell's training set-up: its ``steps`` and ``inputs`` from the data, a linear read-out of its
    last K steps (``kernels/cpu_train_seq``).

    Parameters
    ----------
    spec : RNN, LSTM or GRU spec
    data : Dataset
    classification : bool
    dt : numpy.dtype
    lower : callable
        ``lower(spec, dtype) -> (Net, Init)``, the cell's lowering.
    gates : int
        Gate blocks of the cell's weights (1 for the vanilla RNN).
    cell_biases : int
        Bias vectors of the cell (the GRU has two).
    kernel : callable
        The cell's training kernel ``kernel(net, init, seed, trial0, arrays, opt, epochs, batch, record, lo, hi)``.
    recurrent_size : int, optional
        Entries of the recurrent weights (default ``hidden * gates * hidden``; an IndRNN's u has ``hidden``).

    Returns
    -------
    TrainSetup
    """
    x, y = sequences(data.x_train, data.y_train, "training")
    x_test, y_test = x[:0], y[:0]
    if data.x_test.shape[0]:
        x_test, y_test = sequences(data.x_test, data.y_test, "held-out")
        if x_test.shape[1:] != x.shape[1:] or y_test.shape[1:] != y.shape[1:]:
            raise ValueError(f"data: held-out shapes {x_test.shape}, {y_test.shape} differ from the training "
                             f"shapes {x.shape}, {y.shape}")
    spec = dataclasses.replace(spec, inputs=data.features, steps=x.shape[1])
    net, init = lower(spec, dt.name)
    net = net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE)
    if hasattr(net, "jacobian"):  # the compile-time choice of the cells that have one
        net = net._replace(jacobian=cpu_rnn.NO_JACOBIAN)
    n, d, k = spec.hidden, data.features, y.shape[2]
    g = gates * n
    size = (n * g if recurrent_size is None else recurrent_size) + d * g + cell_biases * g + n * k + k
    arrays = cpu_train.Data(*(np.ascontiguousarray(a, dtype=dt) for a in (x, y, x_test, y_test)))

    def call(seed: int, arrays: Any, opt: Any, epochs: int, batch: int, record: Any, lo: int, hi: int) -> None:
        kernel(net, init, seed, 0, arrays, opt, epochs, batch, record, lo, hi)

    return TrainSetup(spec, tuple(arrays), size, (3, cell_biases + 1), spec.steps, call)

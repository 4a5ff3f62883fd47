"""fastgrad: statistics of vanishing and exploding gradients over thousands of trials.

Public API: :func:`run` with a model spec (:class:`MLP`, :class:`ResMLP`, :class:`Chain`,
:class:`RNN`, :class:`LSTM`, :class:`GRU`, ... : every family of ``fastgrad.models``); each
family's explicit-array routine (:func:`mlp_backprop`, ...) and trial arrays
(:func:`mlp_trial_arrays`, ..., or :func:`trial_arrays` for any spec); Jacobian spectra
:func:`spectrum` and :func:`mlp_jacobian`; sweeps, stores and training.
"""

from __future__ import annotations

import numpy as _np  # noqa: E402

from fastgrad import data  # noqa: E402
from fastgrad import models as _models  # noqa: E402
from fastgrad.engine import run, trial_arrays  # noqa: E402
from fastgrad.models.chain import Chain, chain_backprop, chain_trial_arrays  # noqa: E402
from fastgrad.models.gru import GRU, gru_backprop, gru_trial_arrays  # noqa: E402
from fastgrad.models.lstm import LSTM, lstm_backprop, lstm_trial_arrays  # noqa: E402
from fastgrad.models.mlp import MLP, mlp_backprop, mlp_jacobian, mlp_trial_arrays  # noqa: E402
from fastgrad.models.resmlp import ResMLP, resmlp_backprop, resmlp_trial_arrays  # noqa: E402
from fastgrad.models.rnn import RNN, rnn_backprop, rnn_trial_arrays  # noqa: E402
from fastgrad.results import Result  # noqa: E402
from fastgrad.spectra import Spectrum, spectrum  # noqa: E402
from fastgrad.store import load  # noqa: E402
from fastgrad.sweep import sweep  # noqa: E402
from fastgrad.torch_bridge import torch_run  # noqa: E402
from fastgrad.train import TrainResult, train  # noqa: E402
from fastgrad.version import __version__  # noqa: E402


def gated_trial_arrays(spec: object, seed: int, trials: int | _np.ndarray, batch: int,
                       dtype: str = "float64") -> tuple[object, ...]:
    """An LSTM's or GRU's trial arrays: :func:`trial_arrays` under its earlier name.

    Returns
    -------
    tuple
        ``(W_h, W_x, b, x, y)`` (LSTM) or ``(W_h, W_x, b_ih, b_hh, x, y)`` (GRU).
    """
    return trial_arrays(spec, seed, trials, batch, dtype)

__all__ = [
    "GRU",
    "LSTM",
    "MLP",
    "RNN",
    "Chain",
    "ResMLP",
    "Result",
    "Spectrum",
    "TrainResult",
    "__version__",
    "chain_backprop",
    "chain_trial_arrays",
    "data",
    "gated_trial_arrays",
    "gru_backprop",
    "gru_trial_arrays",
    "load",
    "lstm_backprop",
    "lstm_trial_arrays",
    "mlp_backprop",
    "mlp_jacobian",
    "mlp_trial_arrays",
    "resmlp_backprop",
    "resmlp_trial_arrays",
    "rnn_backprop",
    "rnn_trial_arrays",
    "run",
    "spectrum",
    "sweep",
    "torch_run",
    "train",
    "trial_arrays",
]
# A family added to fastgrad.models is exported here with no edit: its module's PUBLIC names.
for _name, _value in _models.public().items():
    if _name not in globals():
        globals()[_name] = _value
        __all__.append(_name)

"""fastgrad: statistics of vanishing and exploding gradients over thousands of trials.

Public API: :func:`run` with the specs :class:`MLP`, :class:`ResMLP`, :class:`Chain`,
:class:`RNN`, :class:`LSTM` and :class:`GRU`; the explicit-array routines
:func:`mlp_backprop`, :func:`resmlp_backprop`, :func:`chain_backprop`,
:func:`rnn_backprop`, :func:`lstm_backprop` and :func:`gru_backprop`; Jacobian spectra
:func:`spectrum` and :func:`mlp_jacobian`.
"""

from __future__ import annotations

from fastgrad import data  # noqa: E402
from fastgrad.engine import run  # noqa: E402
from fastgrad.explicit import (  # noqa: E402
    chain_backprop,
    gru_backprop,
    lstm_backprop,
    mlp_backprop,
    resmlp_backprop,
    rnn_backprop,
)
from fastgrad.results import Result  # noqa: E402
from fastgrad.specs import GRU, LSTM, MLP, RNN, Chain, ResMLP  # noqa: E402
from fastgrad.spectra import Spectrum, mlp_jacobian, spectrum  # noqa: E402
from fastgrad.store import load  # noqa: E402
from fastgrad.sweep import sweep  # noqa: E402
from fastgrad.train import TrainResult, train  # noqa: E402
from fastgrad.trials import (  # noqa: E402
    chain_trial_arrays,
    gated_trial_arrays,
    mlp_trial_arrays,
    rnn_trial_arrays,
)
from fastgrad.version import __version__  # noqa: E402

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
    "load",
    "lstm_backprop",
    "mlp_backprop",
    "mlp_jacobian",
    "mlp_trial_arrays",
    "resmlp_backprop",
    "rnn_backprop",
    "rnn_trial_arrays",
    "run",
    "spectrum",
    "sweep",
    "train",
]

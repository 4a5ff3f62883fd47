"""fastgrad: statistics of vanishing and exploding gradients over thousands of trials.

Public API: :func:`run` with the specs :class:`MLP`, :class:`Chain` and :class:`RNN`,
and the explicit-array routines :func:`mlp_backprop`, :func:`chain_backprop` and
:func:`rnn_backprop`.
"""

from __future__ import annotations

from fastgrad import data  # noqa: E402
from fastgrad.engine import run  # noqa: E402
from fastgrad.explicit import chain_backprop, mlp_backprop, rnn_backprop  # noqa: E402
from fastgrad.results import Result  # noqa: E402
from fastgrad.specs import MLP, RNN, Chain  # noqa: E402
from fastgrad.store import load  # noqa: E402
from fastgrad.sweep import sweep  # noqa: E402
from fastgrad.train import TrainResult, train  # noqa: E402
from fastgrad.trials import chain_trial_arrays, mlp_trial_arrays, rnn_trial_arrays  # noqa: E402
from fastgrad.version import __version__  # noqa: E402

__all__ = [
    "MLP",
    "RNN",
    "Chain",
    "Result",
    "TrainResult",
    "__version__",
    "chain_backprop",
    "chain_trial_arrays",
    "data",
    "load",
    "mlp_backprop",
    "mlp_trial_arrays",
    "rnn_backprop",
    "rnn_trial_arrays",
    "run",
    "sweep",
    "train",
]

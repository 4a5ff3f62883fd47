"""The result container returned by every engine entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Result:
    """Per-trial statistics of a run, and how to reproduce it.

    The statistics are in ``arrays`` and also readable as attributes
    (``res.grad_w``). MLP and chain runs have ``grad_w``, ``grad_b``, ``delta``
    and ``q``, each (trials, layers): ||dLoss/dW_l||_F, ||dLoss/db_l||_2,
    ||dLoss/dz_l||_F over the batch, mean(z_l^2) (docs/architecture.md); column
    l - 1 is layer l, 1 nearest the input; the chain adds the signed ``dc_db``. RNN runs have
    ``grad_h``, ``grad_whh_step``, ``q`` (trials, steps), column t - 1 step t, step 1 the
    earliest, and the totals ``grad_whh``, ``grad_wxh``, ``grad_b`` (trials,).
    All are in the run's dtype. Non-finite entries are results (overflow),
    never removed.

    Attributes
    ----------
    arrays : dict of str to numpy.ndarray
    spec : object or None
        The model spec for generated trials; None for explicit arrays.
    seed, trials, batch : int
    dtype : str
    backend : str
    version : str
        The fastgrad version that computed it.
    threads : int
    compile_seconds, run_seconds : float
        Time spent compiling (or loading compiled kernels), and running.
    """

    arrays: dict[str, np.ndarray]
    spec: Any = None
    seed: int | None = None
    trials: int = 0
    batch: int = 0
    dtype: str = "float64"
    backend: str = "cpu"
    version: str = ""
    threads: int = 1
    compile_seconds: float = 0.0
    run_seconds: float = 0.0

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"Result has no statistic or attribute {name!r}")

    @property
    def depth(self) -> int:
        """Number of layers (or time steps)."""
        return int(self.q.shape[1])

    @property
    def per_layer(self) -> list[str]:
        """Names of the (trials, layers) statistics."""
        return [k for k, v in self.arrays.items() if v.ndim == 2]

    def trials_per_second(self) -> float:
        """Trials per second of run time (compile time excluded)."""
        return self.trials / self.run_seconds if self.run_seconds > 0 else float("inf")

    def nonfinite(self) -> dict[str, int]:
        """Number of trials with any inf or nan, per statistic."""
        return {k: int(np.sum(~np.isfinite(v).reshape(v.shape[0], -1).all(axis=1))) for k, v in self.arrays.items()}

    def to_frame(self) -> pd.DataFrame:
        """The per-layer statistics as a tidy DataFrame: one row per trial x layer.

        Returns
        -------
        pandas.DataFrame
            Columns ``trial``, ``layer`` (1-based: 1 is nearest the input, or
            the earliest step) and one column per statistic; per-trial totals
            are repeated on every row of their trial.
        """
        return pd.DataFrame(tidy_columns(self.arrays))


def tidy_columns(arrays: dict[str, np.ndarray], first_trial: int = 0) -> dict[str, np.ndarray]:
    """Per-trial statistics as tidy columns, a row per trial x layer: the one layout of frames and stores.

    Parameters
    ----------
    arrays : dict of str to numpy.ndarray
        (trials, layers) statistics become columns; (trials,) totals are repeated on each of
        their trial's rows.
    first_trial : int
        The trial of the arrays' first row.

    Returns
    -------
    dict of str to numpy.ndarray
        ``trial``, ``layer`` (1-based: 1 is nearest the input, or the earliest step), then one
        column per statistic, in the order of ``arrays``.
    """
    trials, depth = next(v for v in arrays.values() if v.ndim == 2).shape
    columns = {"trial": np.repeat(np.arange(first_trial, first_trial + trials, dtype=np.int64), depth),
               "layer": np.tile(np.arange(1, depth + 1, dtype=np.int64), trials)}
    for k, v in arrays.items():
        columns[k] = v.ravel() if v.ndim == 2 else np.repeat(v, depth)
    return columns

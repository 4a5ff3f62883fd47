"""The result container returned by every engine entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("grad_w", "grad_b", "delta", "q")


@dataclass
class Result:
    """Per-trial, per-layer statistics of a run, and how to reproduce it.

    Attributes
    ----------
    grad_w, grad_b, delta, q : numpy.ndarray
        Shape (trials, layers), in the run's dtype: ||dLoss/dW_l||_F,
        ||dLoss/db_l||_2, ||dLoss/dz_l||_F over the batch, and mean(z_l^2)
        (DESIGN.md). Layer index 0 is the layer nearest the input.
        Non-finite entries are results (overflow), never removed.
    spec : object or None
        The model spec for generated trials; None for explicit arrays.
    seed, trials, batch : int
    dtype : str
        ``"float32"`` or ``"float64"``.
    backend : str
    version : str
        The fastgrad version that computed it.
    threads : int
    compile_seconds, run_seconds : float
        Time spent compiling (or loading compiled kernels) and running.
    extra : dict
        Model-specific arrays, e.g. ``dc_db`` (signed dC/db_l) for the chain.
    """

    grad_w: np.ndarray
    grad_b: np.ndarray
    delta: np.ndarray
    q: np.ndarray
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
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Number of layers (or time steps)."""
        return int(self.grad_w.shape[1])

    def trials_per_second(self) -> float:
        """Trials per second of run time (compile time excluded)."""
        return self.trials / self.run_seconds if self.run_seconds > 0 else float("inf")

    def nonfinite(self) -> dict[str, int]:
        """Number of trials with any inf or nan, per metric."""
        return {m: int(np.sum(~np.all(np.isfinite(getattr(self, m)), axis=1))) for m in METRICS}

    def to_frame(self) -> pd.DataFrame:
        """The statistics as a tidy DataFrame: one row per trial x layer.

        Returns
        -------
        pandas.DataFrame
            Columns ``trial``, ``layer`` (1-based, 1 nearest the input) and one
            column per metric.
        """
        t, depth = self.grad_w.shape
        frame = pd.DataFrame(
            {
                "trial": np.repeat(np.arange(t, dtype=np.int64), depth),
                "layer": np.tile(np.arange(1, depth + 1, dtype=np.int64), t),
            }
        )
        for m in METRICS:
            frame[m] = getattr(self, m).ravel()
        return frame

"""What every model's trial-array function shares: the one check of its arguments.

``run(spec, seed=s)`` computes trial k from exactly the arrays a model's
``*_trial_arrays`` returns (``fastgrad/models/<model>.py``), so they can be fed
to its explicit routine (:func:`fastgrad.mlp_backprop`, ...), to another
framework, or inspected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastgrad.checks import check_int
from fastgrad.executor import check_run


def trial_args(seed: Any, trials: Any, batch: Any = 1, dtype: Any = "float64") -> tuple[np.ndarray, int, int,
                                                                                          np.dtype]:
    """Check a trial-array call's arguments as every run's are checked (:func:`fastgrad.executor.check_run`).

    Returns
    -------
    (indices, batch, seed, dtype)
        The trial indices (a count or an array of indices), the checked batch, seed and dtype.
    """
    idx = indices(trials)
    args = check_run(max(int(idx.size), 1), batch, seed, dtype)
    return idx, args.batch, args.seed, args.dtype


def indices(trials: int | np.ndarray) -> np.ndarray:
    """Trial indices from a count (0 .. trials - 1) or an array of indices."""
    if np.isscalar(trials):
        return np.arange(check_int("trials", trials), dtype=np.int64)
    idx = np.asarray(trials, dtype=np.int64)
    if idx.ndim != 1 or np.any(idx < 0):
        raise ValueError(f"trials: expected a count or a 1-D array of non-negative indices, got {trials!r}")
    return np.ascontiguousarray(idx)



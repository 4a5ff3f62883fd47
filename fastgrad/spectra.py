"""Singular values of the input-output Jacobian over thousands of random networks (dynamical isometry).

:func:`spectrum` draws the trials of :func:`fastgrad.run` (same spec, seed and trial
index: the same weights and the same first input) and returns, per trial, every
singular value of J = dh_L/dh_0 at that input, and its summaries: the largest, the
condition number, and the mean and variance of the squared singular values
lambda = s^2 (the eigenvalues of J J^T, whose moments the mean-field theory of
Pennington, Schoenholz and Ganguli 2017 predicts: :func:`fastgrad.theory.spectrum_moments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastgrad import models
from fastgrad.checks import check_int
from fastgrad.executor import check_run, run_chunks
from fastgrad.version import __version__

SPECTRUM_CHUNK = 1024
"""Trials per kernel call: the singular values are (chunk, n) floats; working memory is per thread."""


@dataclass
class Spectrum:
    """The Jacobian spectra of a run's trials.

    Attributes
    ----------
    singular_values : numpy.ndarray (trials, k)
        Every singular value of J, in decreasing order, in the run's dtype (k = min(n_0, n_L)
        for MLPs, the hidden width for recurrent models).
    spec : MLP, ResMLP, RNN, LSTM or GRU
    seed, trials : int
    dtype : str
    version : str
    threads : int
    compile_seconds, run_seconds : float
    """

    singular_values: np.ndarray
    spec: Any
    seed: int
    trials: int
    dtype: str = "float64"
    version: str = __version__
    threads: int = 1
    compile_seconds: float = 0.0
    run_seconds: float = 0.0
    _lam: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lam = self.singular_values.astype(np.float64) ** 2

    @property
    def squared(self) -> np.ndarray:
        """lambda = s^2 (trials, k), float64: the eigenvalues of J J^T."""
        return self._lam

    @property
    def resolved(self) -> np.ndarray:
        """(trials, k) bool: singular values above the SVD's resolution, s > s_max k eps(float64).

        Below it a singular value is zero to working precision (LAPACK's, and NumPy's
        ``matrix_rank``, tolerance): its digits are rounding noise of the others.
        """
        sv = self.singular_values.astype(np.float64)
        return sv > sv[:, :1] * sv.shape[1] * np.finfo(np.float64).eps

    @property
    def max_singular_value(self) -> np.ndarray:
        """The largest singular value per trial (trials,)."""
        return self.singular_values[:, 0].astype(np.float64)

    @property
    def condition(self) -> np.ndarray:
        """s_max / s_min per trial (inf when J is singular).

        For orthogonal tanh (and other saturating) nets the condition number is mostly one
        singular value, the length mode: a change of h's length relaxes back to the variance
        map's fixed point, so one direction of J falls below the bulk by about exp(-2 q*) per
        layer (tanh at the edge, sigma_b^2 = 1e-4: width 128, depth 32, median condition 9.7e3,
        s_max / s_(k-1) 3.9e2; depth 128, 8.1e7 against 9.8e2). :func:`fastgrad.theory.length_mode`
        predicts it (docs/findings.md); ``singular_values[:, -2]`` is the bulk's lowest.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.max_singular_value / self.singular_values[:, -1].astype(np.float64)

    @property
    def mean_squared(self) -> np.ndarray:
        """The mean of lambda = s^2 per trial (tr(J J^T) / k)."""
        return self._lam.mean(axis=1)

    @property
    def var_squared(self) -> np.ndarray:
        """The variance of lambda = s^2 over the k singular values, per trial."""
        return self._lam.var(axis=1)

    def moments(self, level: float = 0.95) -> dict[str, float]:
        """The spectral moments over all trials, with normal confidence intervals over trials.

        ``m1`` = E[lambda], ``m2`` = E[lambda^2] (a trial's mean over its k values, then
        the mean over trials) and ``var`` = m2 - m1^2, the variance of the pooled density.

        Parameters
        ----------
        level : float

        Returns
        -------
        dict
            ``m1``, ``m1_low``, ``m1_high``, ``m2``, ``m2_low``, ``m2_high``, ``var``, ``trials``.
        """
        from statistics import NormalDist

        zq = NormalDist().inv_cdf(0.5 + level / 2)
        out: dict[str, float] = {"trials": float(self.trials)}
        for name, per in (("m1", self._lam.mean(axis=1)), ("m2", (self._lam**2).mean(axis=1))):
            mean, se = float(per.mean()), float(per.std(ddof=1) / np.sqrt(per.size)) if per.size > 1 else np.nan
            # lambda >= 0: a normal interval's lower end is cut at 0 (heavy tails make it reach below)
            out.update({name: mean, f"{name}_low": max(mean - zq * se, 0.0), f"{name}_high": mean + zq * se})
        out["var"] = out["m2"] - out["m1"] ** 2
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per trial: ``trial``, ``max_singular_value``, ``condition``, ``mean_squared``, ``var_squared``."""
        return pd.DataFrame({"trial": np.arange(self.trials), "max_singular_value": self.max_singular_value,
                             "condition": self.condition, "mean_squared": self.mean_squared,
                             "var_squared": self.var_squared})


def spectrum(spec: Any, trials: int, batch: int = 32, seed: int = 0, dtype: str = "float64",
             threads: int | None = None, chunk: int | None = None, step: int = 1, first_trial: int = 0) -> Spectrum:
    """The singular values of the Jacobian of ``trials`` random networks of ``spec``.

    MLP and ResMLP: J = dh_L/dh_0. RNN, LSTM and GRU: J = dh_S/dh_step (the LSTM's with c_step held:
    the h-block of the state Jacobian), through the recurrence. Trial k is
    :func:`fastgrad.run`'s trial k of the same spec, seed and batch: the same weights,
    biases and inputs, J taken at the first input (sequence) of its batch. Parallel over
    trials; working memory is a few n x n buffers (and one trial's activations) per thread.

    Parameters
    ----------
    spec : MLP, ResMLP, RNN, LSTM or GRU
    trials : int
    batch : int
        The batch :func:`fastgrad.run` would draw (its first input is used).
    seed : int
    dtype : {"float32", "float64"}
        The forward pass's precision; J and its SVD are formed in float64 and the
        singular values returned in this dtype.
    threads : int, optional
    chunk : int, optional
        Trials per kernel call (progress granularity); does not change results.
    step : int
        Recurrent models: the step t of dh_S/dh_t, 1 (the whole sequence) .. S (the identity).
    first_trial : int
        Row i is trial ``first_trial + i`` (as :func:`fastgrad.run`'s ``first_trial``).

    Returns
    -------
    Spectrum
    """
    model = models.of(spec)
    if not model.spectrum:
        known = ", ".join(m.spec.__name__ for m in models.REGISTRY.values() if m.spectrum)
        raise ValueError(f"spec: spectra are computed for {known}, got {type(spec).__name__}")
    args = check_run(trials, batch, seed, dtype, threads, first_trial)
    trials, seed, dt = args.trials, args.seed, args.dtype
    chunk = SPECTRUM_CHUNK if chunk is None else check_int("chunk", chunk)
    block, sv, key = model.spectrum_block(spec, trials, args.batch, seed, dt.name, step, args.first_trial)
    n_threads, compile_seconds, run_seconds = run_chunks(block, key, trials, chunk, threads)
    return Spectrum(sv, spec=spec, seed=seed, trials=trials, dtype=dt.name, threads=n_threads,
                    compile_seconds=compile_seconds, run_seconds=run_seconds)

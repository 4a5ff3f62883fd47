"""Dynamical isometry from finite networks: Jacobian spectra of Gaussian and orthogonal MLPs at the edge of chaos.

A study on fastgrad's public API (:func:`fastgrad.spectrum`, :class:`fastgrad.MLP`,
:mod:`fastgrad.theory`): the comparison of Pennington, Schoenholz & Ganguli (2017), which
``fastgrad demo`` draws and ``scripts/spectra_figures.py`` extends.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fastgrad import MLP, Spectrum, spectrum, theory

ISOMETRY_NETS: dict[str, tuple[str, float]] = {
    "linear": ("linear", 0.0),
    "tanh, critical": ("tanh", 1e-4),
    "relu, critical": ("relu", 0.0),
}
"""The dynamical-isometry comparison: activation and sigma_b^2; sigma_w^2 is each one's edge of chaos."""


def isometry_theory(depths: Sequence[int]) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The infinite-width densities :func:`isometry_study`'s figure can draw: the linear Gaussian nets' Fuss-Catalan.

    Parameters
    ----------
    depths : sequence of int

    Returns
    -------
    dict
        ``{"linear": {depth: (log10 lambda, density per unit log10 lambda)}}``.
    """
    return {"linear": {d: theory.fuss_catalan_density(d) for d in depths}}


def isometry_study(width: int = 128, depths: Sequence[int] = (8, 32, 128), trials: int = 100, seed: int = 0,
                   batch: int = 1) -> tuple[dict[str, dict[tuple[int, str], Spectrum]], pd.DataFrame]:
    """Spectra of J for Gaussian and orthogonal weights x linear / tanh / relu at the edge of chaos.

    The comparison of Pennington, Schoenholz & Ganguli (2017), from finite networks:
    sigma_w^2 = 1 for linear, the chi_1 = 1 edge at sigma_b^2 = 1e-4 for tanh, 2 for relu;
    N(0, 1/n)-scaled Gaussian or orthogonal (gain sigma_w) weights; inputs N(0, 1).

    Parameters
    ----------
    width : int
    depths : sequence of int
    trials : int
    seed, batch : int

    Returns
    -------
    spectra : dict of net name to {(depth, weights): Spectrum}
    table : pandas.DataFrame
        Per net, weights and depth: the measured m1, m2, var = m2 - m1^2 and var / m1^2 with
        intervals, beside :func:`fastgrad.theory.spectrum_moments`.
    """
    spectra: dict[str, dict[tuple[int, str], Spectrum]] = {}
    rows = []
    for name, (act, b2) in ISOMETRY_NETS.items():
        w2 = 1.0 if act == "linear" else 2.0 if act == "relu" else theory.critical_sigma_w2(act, b2)
        spectra[name] = {}
        for depth in depths:
            for weights in ("gaussian", "orthogonal"):
                kw: dict[str, object] = ({"init": "scaled_normal", "sigma_w2": w2} if weights == "gaussian"
                                         else {"init": "orthogonal", "gain": float(np.sqrt(w2))})
                spec = MLP(depth=depth, width=width, activation=act, sigma_b2=b2, **kw)  # type: ignore[arg-type]
                s = spectrum(spec, trials=trials, batch=batch, seed=seed)
                spectra[name][depth, weights] = s
                m = s.moments()
                want = theory.spectrum_moments(act, w2, b2, depth, weights)
                rows.append({"net": name, "weights": weights, "depth": depth, "width": width, "trials": trials,
                             "sigma_w2": w2, "sigma_b2": b2, "m1": m["m1"], "m1_low": m["m1_low"],
                             "m1_high": m["m1_high"], "m2": m["m2"], "m2_low": m["m2_low"], "m2_high": m["m2_high"],
                             "var_over_m1sq": m["var"] / m["m1"] ** 2, "theory_m1": want["m1"],
                             "theory_m2": want["m2"], "theory_var_over_m1sq": want["var"] / want["m1"] ** 2,
                             "median_condition": float(np.median(s.condition)), "seconds": s.run_seconds})
    return spectra, pd.DataFrame(rows)

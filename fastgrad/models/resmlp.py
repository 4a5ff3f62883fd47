"""The residual MLP (ResMLP), optionally with pre-LayerNorm: spec, lowering, runs, given arrays, spectra, training.

Definitions in docs/architecture.md ("ResMLP"); kernels in ``kernels/cpu_resmlp.py``.
Its trial k draws the numbers of trial k of its plain MLP (:meth:`ResMLP.plain`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from fastgrad.codes import TRAIN_MSE, TRAIN_XENT
from fastgrad.executor import Block, run_blocks, threads_context
from fastgrad.kernels import cpu_mlp, cpu_resmlp, cpu_spectrum
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.models.mlp import MLP, _mlp_arrays, dense_training, mlp, mlp_net, mlp_trial_arrays
from fastgrad.results import Result
from fastgrad.specs import LAYER_NORM_EPS, NORMS, _Scales, check_choice, residual_scale
from fastgrad.version import __version__


@dataclass(frozen=True)
class ResMLP(_Scales):
    """A residual MLP, optionally with pre-LayerNorm, drawn afresh for every trial.

    Widths as the :class:`MLP` (n_0, hidden width n, n_L). Layer 1 (input,
    n_0 -> n) and layer L (read-out, n -> n_L) are plain MLP layers:
    ``z_l = h_{l-1} W_l + b_l``, ``h_l = phi(z_l)`` (the read-out with
    ``last_activation``). Layers l = 2 .. L - 1 are residual blocks:
    ``h_l = h_{l-1} + a phi(z_l)`` with ``z_l = h_{l-1} W_l + b_l``, or with
    ``norm="layer"`` ``z_l = LN(h_{l-1}) W_l + b_l``, where
    ``LN(h) = (h - mean(h)) / sqrt(var(h) + 1e-5)`` over the n units of each row
    (biased variance, no affine parameters: ``torch.nn.functional.layer_norm``).

    Trial k draws exactly the numbers of trial k of :meth:`plain`, the MLP of
    the same fields (weights, biases, inputs, targets): plain and residual nets
    are paired trial by trial.

    Parameters
    ----------
    depth : int
        Number of weight layers L (>= 3: the input layer, at least one residual block, the read-out).
    width, activation, init, sigma_w, sigma_w2, gain, value, bias_init, sigma_b, sigma_b2, bias_value,
    input_width, output_width, loss, last_activation, alpha
        As for :class:`MLP` (its Notes say which argument scales which init), and validated by it.
    residual : float or str
        The branch scale a: a number > 0, or ``"1/sqrt(L)"`` for a = 1 / sqrt(depth). Default 1.
    norm : str, optional
        ``"layer"`` for pre-LayerNorm in the residual blocks; default none.
    """

    depth: int
    width: int
    activation: str = "tanh"
    init: str = "xavier_normal"
    sigma_w: float | None = None
    gain: float | None = None
    value: float | None = None
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    input_width: int | None = None
    output_width: int | None = None
    loss: str = "mse"
    last_activation: str | None = None
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    residual: float | str = 1.0
    norm: str | None = None
    model: str = field(default="resmlp", init=False)

    def __post_init__(self) -> None:
        self.plain()  # validates every field the MLP has, with the MLP's messages
        if self.depth < 3:
            raise ValueError(f"depth: a ResMLP needs >= 3 layers (the input layer, at least one residual block, "
                             f"the read-out), got {self.depth}; use fastgrad.MLP for fewer")
        residual_scale(self.residual, self.depth)
        if self.norm is not None:
            check_choice("norm", self.norm, NORMS)

    def plain(self) -> MLP:
        """The MLP of the same fields: the same widths, inits and draws, without the skips and the norm."""
        return MLP(**{f.name: getattr(self, f.name) for f in fields(MLP) if f.init})

    @property
    def residual_scale(self) -> float:
        """The branch scale a (``residual``, resolved against ``depth``)."""
        return residual_scale(self.residual, self.depth)

    @property
    def dims(self) -> np.ndarray:
        """Layer widths n_0 .. n_L as an int64 array (the MLP's)."""
        return self.plain().dims

    def layer_inits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer (weight kind, weight scale, bias kind, bias scale) arrays (the MLP's)."""
        return self.plain().layer_inits()


def resmlp_training(spec: ResMLP, classification: bool, dtype: str = "float64"
                    ) -> tuple[cpu_resmlp.Net, cpu_mlp.Init]:
    """A residual-MLP spec's arguments for the training kernel (``cpu_train.train_mlp``).

    Parameters
    ----------
    spec : ResMLP
        With the data's input and output widths.
    classification : bool
        Softmax cross-entropy (else mse).
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_resmlp.Net, cpu_mlp.Init)
        The draws are those of ``spec.plain()``, as :func:`resmlp`'s.
    """
    net, init = resmlp(dataclasses.replace(spec, loss="mse"), dtype)
    return net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE), init


def resmlp_net(dims: np.ndarray, activation: str, last_activation: str | None, alpha: float | None, loss: str,
               residual: float, norm: str | None, dtype: str = "float64") -> cpu_resmlp.Net:
    """The residual-MLP kernels' :class:`~fastgrad.kernels.cpu_resmlp.Net`.

    Parameters
    ----------
    dims : int array (L + 1,)
        Widths n_0 .. n_L.
    activation, last_activation, alpha, loss
        As for :func:`mlp_net`.
    residual : float
        The branch scale a (resolved: a number).
    norm : {"layer"} or None
        Pre-LayerNorm in the residual blocks.
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_resmlp.Net
    """
    net = mlp_net(dims, activation, last_activation, alpha, loss, dtype)
    return cpu_resmlp.Net(net.dims, net.hidden, net.last, net.alpha, net.loss, float(residual), norm == "layer",
                          LAYER_NORM_EPS)


def resmlp(spec: ResMLP, dtype: str = "float64") -> tuple[cpu_resmlp.Net, cpu_mlp.Init]:
    """A residual-MLP spec's kernel arguments; the draws are those of ``spec.plain()`` (common random numbers).

    Parameters
    ----------
    spec : ResMLP
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_resmlp.Net, cpu_mlp.Init)
    """
    _, init = mlp(spec.plain(), dtype)
    return resmlp_net(spec.dims, spec.activation, spec.last_activation, spec.alpha, spec.loss, spec.residual_scale,
                      spec.norm, dtype), init


def resmlp_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_resmlp.Stats:
    """Empty output rows of the residual-MLP kernels: five (trials, depth) arrays of ``dtype``."""
    return cpu_resmlp.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in range(5)))


def resmlp_backprop(
    W: np.ndarray | Sequence[np.ndarray],
    b: np.ndarray | Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "mse",
    last_activation: str | None = None,
    alpha: float | None = None,
    residual: float | str = 1.0,
    norm: str | None = None,
    threads: int | None = None,
) -> Result:
    """Per-layer gradient statistics of given residual MLPs (:class:`fastgrad.ResMLP`), one per trial.

    Layers 1 and L are plain; layers 2 .. L - 1 are residual blocks
    ``h_l = h_{l-1} + a phi(z_l)``, ``z_l = h_{l-1} @ W_l + b_l`` (or
    ``LN(h_{l-1}) @ W_l + b_l`` with ``norm="layer"``).

    Parameters
    ----------
    W, b, x, y, activation, loss, last_activation, alpha
        As for :func:`mlp_backprop`, with at least 3 layers and square hidden layers (n, n).
    residual : float or str
        The branch scale a: a number > 0, or ``"1/sqrt(L)"``.
    norm : {"layer"}, optional
        Pre-LayerNorm in the residual blocks.
    threads : int, optional
        CPU threads; default all.

    Returns
    -------
    Result
        ``grad_w``, ``grad_b``, ``delta``, ``q`` and ``grad_h`` (||dLoss/dh_{l-1}||_F:
        column 0 is the input's), each (T, L), in the input dtype.
    """
    dims, w_flat, b_flat, x, y = _mlp_arrays(W, b, x, y, activation, loss, last_activation, alpha)
    trials, batch, _ = x.shape
    depth = dims.size - 1
    if depth < 3:
        raise ValueError(f"W: a residual MLP needs >= 3 layers (the input layer, a residual block, the read-out), "
                         f"got {depth}")
    for l in range(1, depth - 1):
        if dims[l + 1] != dims[l]:
            raise ValueError(f"W[{l}]: a residual block maps the hidden width to itself, expected shape "
                             f"({dims[l]}, {dims[l]}), got ({dims[l]}, {dims[l + 1]})")
    a = residual_scale(residual, depth)
    if norm is not None:
        check_choice("norm", norm, NORMS)
    dt = x.dtype
    net = resmlp_net(dims, activation, last_activation, alpha, loss, a, norm, dt.name)
    stats = resmlp_stats(trials, depth, dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_resmlp.explicit(net, w_flat, b_flat, x, y, stats, lo, hi), 0, trials,
                   n_threads)
        seconds = time.perf_counter() - t0
    return Result(dict(stats._asdict()), trials=trials, batch=batch, dtype=dt.name, version=__version__,
                  threads=n_threads, run_seconds=seconds)


class ResMLPModel(Model):
    """The residual MLP's entry in the model table."""

    name = "resmlp"
    spec = ResMLP
    order = 1
    main_metric = "grad_h"  # what reaches each layer through the skips, as theory.residual_delta_curve
    cpu_only = "no CUDA kernel has residual blocks or LayerNorm"
    statistics = 5
    spectrum = True
    trainable = True

    def plan(self, spec: ResMLP, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = resmlp(spec, dt.name)
        stats = resmlp_stats(trials, spec.depth, dt)

        def block(lo: int, hi: int) -> None:
            cpu_resmlp.generated(net, init, seed, first, batch, stats, lo, hi)

        return dict(stats._asdict()), block, (cpu_resmlp.generated, dt.name, net.hidden, net.last, init.draw)

    def working(self, spec: ResMLP, batch: int) -> int:
        dims = [int(d) for d in spec.dims]
        return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True)) + 5 * batch * sum(dims)

    def trial_arrays(self, spec: ResMLP, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return resmlp_trial_arrays(spec, seed, trials, batch, dtype)

    def spectrum_block(self, spec: ResMLP, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        if step != 1:
            raise ValueError("step: applies to recurrent models (RNN, LSTM, GRU); a ResMLP's J is dh_L/dh_0")
        net, init = resmlp(spec, dtype)
        sv = np.empty((trials, int(min(spec.dims[0], spec.dims[-1]))), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_spectrum.resmlp_generated(net, init, seed, first, batch, sv, lo, hi)

        return block, sv, (cpu_spectrum.resmlp_generated, dtype, net.hidden, net.last, init.draw)

    def train_setup(self, spec: ResMLP, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        return dense_training(self, spec, data, classification, dt, resmlp_training, record_grad_h=True)

    def warmup_specs(self, activation: str) -> list[ResMLP]:
        return [ResMLP(depth=3, width=2, activation=activation)]


def resmlp_trial_arrays(spec: ResMLP, seed: int, trials: int | np.ndarray, batch: int,
                        dtype: str = "float64") -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """A residual MLP's trial arrays: its plain MLP's (:func:`fastgrad.mlp_trial_arrays`), the same numbers."""
    return mlp_trial_arrays(spec.plain(), seed, trials, batch, dtype)


PUBLIC = ("ResMLP", "resmlp_backprop", "resmlp_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(ResMLPModel())

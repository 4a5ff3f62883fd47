"""The independently recurrent network (IndRNN, Li et al. 2018): spec, lowering, runs, arrays, spectra, training.

``z_t = x_t W_x + u * h_{t-1} + b``, ``h_t = phi(z_t)``, ``h_0 = 0``: each unit feeds back
only to itself, through its entry of the recurrent vector u, so dh_S/dh_t is diagonal,
``prod_{s > t} u * phi'(z_s)`` unit by unit. With relu and positive pre-activations it is
exactly ``diag(u^(S - t))``: a unit's gradient neither vanishes nor explodes when
``|u|^S`` stays within chosen bounds, which is how Li et al. initialise u. Kernels in
``kernels/cpu_indrnn.py``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastgrad.activations import NAMES, loop
from fastgrad.codes import NORMAL, RNN_ALL, RNN_LAST, RNN_PROBE
from fastgrad.executor import Block, run_blocks, threads_context
from fastgrad.explicit import check_array
from fastgrad.initializers import BIAS_INITS
from fastgrad.kernels import cpu_indrnn
from fastgrad.kernels.draw import draw_choice
from fastgrad.models._recurrent import sequence_training
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.models.rnn import step_check
from fastgrad.results import Result
from fastgrad.specs import (
    RNN_LOSSES,
    activation_params,
    check_alpha,
    check_choice,
    check_float,
    check_int,
    recurrent_bias,
)
from fastgrad.trials import trial_args
from fastgrad.version import __version__

U_INITS = ("uniform", "constant", "bounded")
LOSS_CODES = {"last": RNN_LAST, "all": RNN_ALL, "probe": RNN_PROBE}


@dataclass(frozen=True)
class IndRNN:
    """An IndRNN unrolled over ``steps``: ``z_t = x_t W_x + u * h_{t-1} + b`` with a recurrent vector u.

    Parameters
    ----------
    steps, hidden, inputs : int
        S, n and d.
    activation : str
        Default relu (Li et al.).
    u_init : {"uniform", "constant", "bounded"}
        ``uniform``: u_j ~ U(u_low, u_high); ``constant``: every u_j = ``u_value``;
        ``bounded`` (Li et al.): u_j ~ U(u_bounds[0]^(1/T), u_bounds[1]^(1/T)) with T = ``u_steps``
        (default ``steps``), so that ``|u_j|^T`` lies in ``u_bounds``: a unit's gradient over T steps
        (relu, active units) is neither below u_bounds[0] nor above u_bounds[1].
    u_low, u_high : float
        The range of ``uniform`` (default 0, 1).
    u_value : float
        The value of ``constant`` (default 1).
    u_bounds : (float, float)
        ``bounded``'s limits on ``|u|^T``, 0 <= low <= high (default (0, 2): Li et al.'s bound against
        exploding, with no lower bound).
    u_steps : int, optional
        ``bounded``'s T (default ``steps``).
    input_scale : float
        W_x ~ N(0, input_scale^2 / inputs).
    bias_init, sigma_b, sigma_b2, bias_value, loss, alpha
        As for :class:`fastgrad.RNN`.
    jacobian : bool
        Also compute ``jacobian_norm`` (T, S) = ||dh_S/dh_t||_F of the first sequence: O(n) a step,
        since the Jacobian is diagonal.

    Notes
    -----
    An argument the chosen ``u_init`` does not use is refused, naming the one that counts.
    Trial k draws the vanilla RNN's trial k's x, y, W_x and b streams; u comes from its W_hh stream.
    """

    steps: int
    hidden: int
    inputs: int
    activation: str = "relu"
    u_init: str = "uniform"
    u_low: float | None = None
    u_high: float | None = None
    u_value: float | None = None
    u_bounds: tuple[float, float] | None = None
    u_steps: int | None = None
    input_scale: float = 1.0
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    loss: str = "last"
    alpha: float | None = None
    jacobian: bool = False
    sigma_b2: float | None = None
    model: str = field(default="indrnn", init=False)

    def __post_init__(self) -> None:
        for name in ("steps", "hidden", "inputs"):
            check_int(name, getattr(self, name))
        check_choice("activation", self.activation, NAMES)
        check_choice("u_init", self.u_init, U_INITS)
        check_choice("loss", self.loss, RNN_LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        check_float("input_scale", self.input_scale)
        uses = {"uniform": ("u_low", "u_high"), "constant": ("u_value",), "bounded": ("u_bounds", "u_steps")}
        for name in ("u_low", "u_high", "u_value", "u_bounds", "u_steps"):
            if getattr(self, name) is not None and name not in uses[self.u_init]:
                raise ValueError(f"{name}: not used by u_init={self.u_init!r}, which is set by "
                                 f"{' and '.join(uses[self.u_init])}")
        self.u_range  # noqa: B018  # validates the u arguments
        recurrent_bias(self.bias_init, self.sigma_b, self.sigma_b2, self.bias_value)
        check_alpha(self.alpha, self.activation)
        if not isinstance(self.jacobian, (bool, np.bool_)):
            raise ValueError(f"jacobian: expected True or False, got {self.jacobian!r}")

    @property
    def depth(self) -> int:
        """The number of steps (the network's depth in time)."""
        return self.steps

    @property
    def u_range(self) -> tuple[float, float]:
        """u's draw as ``(low, high)``: U(low, high) per unit (low == high for a constant)."""
        if self.u_init == "constant":
            v = 1.0 if self.u_value is None else check_float("u_value", self.u_value)
            return v, v
        if self.u_init == "uniform":
            low = 0.0 if self.u_low is None else check_float("u_low", self.u_low)
            high = 1.0 if self.u_high is None else check_float("u_high", self.u_high)
            if high < low:
                raise ValueError(f"u_low, u_high: need u_low <= u_high, got {low} and {high}")
            return low, high
        bounds = (0.0, 2.0) if self.u_bounds is None else self.u_bounds
        if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
            raise ValueError(f"u_bounds: expected (low, high) limits on |u|^T, got {bounds!r}")
        low, high = (check_float("u_bounds", v) for v in bounds)
        if not 0.0 <= low <= high:
            raise ValueError(f"u_bounds: need 0 <= low <= high, got {bounds!r}")
        steps = self.steps if self.u_steps is None else check_int("u_steps", self.u_steps)
        return low ** (1.0 / steps), high ** (1.0 / steps)


def indrnn(spec: IndRNN, dtype: str = "float64") -> tuple[cpu_indrnn.Net, cpu_indrnn.Init]:
    """An IndRNN spec's kernel arguments."""
    _, a = activation_params("activation", spec.activation, spec.alpha)
    b_kind, b_scale = recurrent_bias(spec.bias_init, spec.sigma_b, spec.sigma_b2, spec.bias_value)
    low, high = spec.u_range
    init = cpu_indrnn.Init(draw_choice([NORMAL], dtype), spec.hidden, spec.inputs, low, high,
                           spec.input_scale / math.sqrt(spec.inputs), b_kind, b_scale)
    return cpu_indrnn.Net(loop(spec.activation, dtype), a, LOSS_CODES[spec.loss]), init


def indrnn_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_indrnn.Stats:
    """Empty output rows: (T, S) grad_h, grad_u_step, q; (T, 3) totals; the Jacobian norms (T, S) or (T, 0)."""
    return cpu_indrnn.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                            np.empty((trials, steps), dtype=dtype), np.empty((trials, 3), dtype=dtype),
                            np.empty((trials, steps if jacobian else 0), dtype=dtype))


def indrnn_arrays(stats: cpu_indrnn.Stats, jacobian: bool) -> dict[str, np.ndarray]:
    """The result arrays: ``grad_h``, ``grad_u_step``, ``q`` (T, S); ``grad_u``, ``grad_wx``, ``grad_b`` (T,);
    ``jacobian_norm`` (T, S) if asked."""
    arrays = {"grad_h": stats.grad_h, "grad_u_step": stats.grad_u_step, "q": stats.q}
    if jacobian:
        arrays["jacobian_norm"] = stats.jac
    arrays.update({m: stats.totals[:, i] for i, m in enumerate(("grad_u", "grad_wx", "grad_b"))})
    return arrays


def indrnn_backprop(u: np.ndarray, W_x: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
                    activation: str = "relu", loss: str = "last", alpha: float | None = None,
                    threads: int | None = None, jacobian: bool = False) -> Result:
    """Backpropagation through time for given IndRNNs, one per trial.

    Parameters
    ----------
    u : array (T, n)
        The recurrent vectors.
    W_x : array (T, d, n)
    b : array (T, n)
    x : array (T, S, B, d)
    y : array
        ``last``/``probe``: (T, B, n); ``all``: (T, S, B, n), as for :func:`fastgrad.rnn_backprop`.
    activation : str
    loss : {"last", "all", "probe"}
    alpha : float, optional
    threads : int, optional
    jacobian : bool
        Also ``jacobian_norm`` (T, S) = ||dh_S/dh_t||_F of the first sequence of each trial's batch.

    Returns
    -------
    Result
        ``grad_h`` (T, S) ||dLoss/dh_t||_F; ``grad_u_step`` (T, S) ||sum_batch h_{t-1} * delta_t||, step
        t's share of dLoss/du; ``q`` (T, S) mean(z_t^2); ``grad_u``, ``grad_wx``, ``grad_b`` (T,).
    """
    check_choice("loss", loss, RNN_LOSSES)
    if not isinstance(jacobian, (bool, np.bool_)):
        raise ValueError(f"jacobian: expected True or False, got {jacobian!r}")
    _, a = activation_params("activation", activation, alpha)
    check_alpha(alpha, activation)
    u = check_array("u", u, 2)
    dt = u.dtype
    W_x = check_array("W_x", W_x, 3, dt)
    b = check_array("b", b, 2, dt)
    x = check_array("x", x, 4, dt)
    y = check_array("y", y, 4 if loss == "all" else 3, dt)
    trials, n = u.shape
    _, steps, batch, d = x.shape
    expected = {"W_x": (trials, d, n), "b": (trials, n), "x": (trials, steps, batch, d),
                "y": (trials, steps, batch, n) if loss == "all" else (trials, batch, n)}
    for name, arr in (("W_x", W_x), ("b", b), ("x", x), ("y", y)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {arr.shape}")
    y4 = np.ascontiguousarray(y if loss == "all" else y[:, None])
    net = cpu_indrnn.Net(loop(activation, dt.name), a, LOSS_CODES[loss])
    stats = indrnn_stats(trials, steps, bool(jacobian), dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_indrnn.explicit(net, u, W_x, b, x, y4, stats, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    out = {k: np.ascontiguousarray(v) for k, v in indrnn_arrays(stats, bool(jacobian)).items()}
    return Result(out, trials=trials, batch=batch, dtype=dt.name, version=__version__, threads=n_threads,
                  run_seconds=seconds)


def indrnn_trial_arrays(spec: IndRNN, seed: int, trials: int | np.ndarray, batch: int,
                        dtype: str = "float64") -> tuple[np.ndarray, ...]:
    """Draw u (T, n), W_x (T, d, n), b (T, n), x (T, S, B, d) and y of IndRNN trials, as :func:`fastgrad.run` does.

    ``y`` is (T, S, B, n) for ``loss="all"``, else (T, B, n), as :func:`indrnn_backprop` takes it.
    """
    idx, batch, seed, dt = trial_args(seed, trials, batch, dtype)
    t, n, d, steps = idx.size, spec.hidden, spec.inputs, spec.steps
    _, init = indrnn(spec, dt.name)
    u = np.empty((t, n), dtype=dt)
    wx = np.empty((t, d, n), dtype=dt)
    b = np.empty((t, n), dtype=dt)
    x = np.empty((t, steps, batch, d), dtype=dt)
    y = np.empty((t, steps if spec.loss == "all" else 1, batch, n), dtype=dt)
    cpu_indrnn.draw_arrays(init, seed, idx, u, wx, b, x, y)
    return u, wx, b, x, (y if spec.loss == "all" else y[:, 0])


class IndRNNModel(Model):
    """The IndRNN's entry in the model table."""

    name = "indrnn"
    spec = IndRNN
    order = 6
    recurrent = True
    main_metric = "grad_h"
    cpu_only = "no CUDA kernel for the IndRNN yet"
    statistics = 4
    spectrum = True
    trainable = True

    def plan(self, spec: IndRNN, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = indrnn(spec, dt.name)
        stats = indrnn_stats(trials, spec.steps, spec.jacobian, dt)

        def block(lo: int, hi: int) -> None:
            cpu_indrnn.generated(net, init, seed, first, batch, stats, lo, hi)

        return indrnn_arrays(stats, spec.jacobian), block, (cpu_indrnn.generated, dt.name, net.act, init.draw)

    def working(self, spec: IndRNN, batch: int) -> int:
        n, d = spec.hidden, spec.inputs
        return d * n + 3 * n + spec.steps * batch * (d + 4 * n)

    def trial_arrays(self, spec: IndRNN, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return indrnn_trial_arrays(spec, seed, trials, batch, dtype)

    def spectrum_block(self, spec: IndRNN, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        step = step_check(spec, step)
        net, init = indrnn(spec, dtype)
        sv = np.empty((trials, spec.hidden), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_indrnn.spectrum_generated(net, init, seed, first, spec.steps, batch, step, sv, lo, hi)

        return block, sv, (cpu_indrnn.spectrum_generated, dtype, net.act, init.draw)

    def train_setup(self, spec: IndRNN, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        return sequence_training(spec, data, classification, dt, indrnn, 1, 1, cpu_indrnn.train,
                                 recurrent_size=spec.hidden)

    def warmup_specs(self, activation: str) -> list[IndRNN]:
        return [IndRNN(steps=2, hidden=2, inputs=1, activation=activation)]


PUBLIC = ("IndRNN", "indrnn_backprop", "indrnn_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(IndRNNModel())

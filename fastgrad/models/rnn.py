"""The vanilla RNN, unrolled: spec, lowering, runs, given arrays, trial arrays, spectra, training.

Definitions in docs/architecture.md ("RNN"); kernels in ``kernels/cpu_rnn.py`` (and
``kernels/cuda_rnn.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastgrad.activations import NAMES, loop
from fastgrad.codes import FACTORED_KINDS, ORTHOGONAL, RNN_ALL, RNN_LAST, RNN_PROBE
from fastgrad.executor import Block, run_blocks, threads_context
from fastgrad.explicit import check_array
from fastgrad.initializers import BIAS_INITS, RECURRENT_INITS, recurrent_kind
from fastgrad.kernels import cpu_rnn, cpu_spectrum, cpu_train_seq
from fastgrad.kernels.draw import draw_choice
from fastgrad.lowering import activation_code
from fastgrad.models._recurrent import sequence_training
from fastgrad.models.base import Model, Plan, TrainSetup, register
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


@dataclass(frozen=True)
class RNN:
    """A vanilla RNN unrolled over ``steps``: ``z_t = h_{t-1} W_hh + x_t W_xh + b``.

    Parameters
    ----------
    steps : int
        Number of time steps S.
    hidden : int
        Hidden width n.
    inputs : int
        Input width d.
    activation : str
    init : str
        Recurrent init: ``normal`` (N(0, gain^2 / hidden)), ``orthogonal``
        (gain * Q), ``identity`` (gain * I) or ``spectral`` (spectral radius = gain).
    gain : float
        The scale of every recurrent init: gain plays sigma_w (sigma_w^2 = gain^2 on the
        mean-field axis; ``normal`` is ``scaled_normal`` with sigma_w = gain). Default 1.
    input_scale : float
        W_xh ~ N(0, input_scale^2 / inputs).
    bias_init : str, optional
        ``zeros``, ``normal`` or ``constant``; default ``normal`` if ``sigma_b > 0`` else ``zeros``.
    sigma_b : float, optional
        Bias standard deviation under ``normal`` (default 0); or ``sigma_b2``, its variance.
        Refused with ``bias_init="zeros"`` or ``"constant"``.
    bias_value : float, optional
        Every bias under ``bias_init="constant"`` (default 0); refused with any other bias init.
    loss : str
        ``last`` (mse on h_S against N(0, 1) targets), ``all`` (mse summed over
        every step) or ``probe`` (random back-projection of h_S).
    alpha : float, optional
        Activation parameter (leaky slope, ELU alpha).
    jacobian : bool
        Also compute ``jacobian_norm`` (T, S): ``||dh_S / dh_t||_F``, the norm of the
        Jacobian product that the classic analyses bound, for the first sequence
        of each trial's batch. Costs one (n, n) matrix product per step: W-rnn
        (n = 64, batch 16) runs at 0.72x its throughput in float64, 0.64x in float32.
    sigma_b2 : float, optional
        The bias variance, instead of ``sigma_b``.
    """

    steps: int
    hidden: int
    inputs: int
    activation: str = "tanh"
    init: str = "normal"
    gain: float = 1.0
    input_scale: float = 1.0
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    loss: str = "last"
    alpha: float | None = None
    jacobian: bool = False
    sigma_b2: float | None = None
    model: str = field(default="rnn", init=False)

    def __post_init__(self) -> None:
        for name in ("steps", "hidden", "inputs"):
            check_int(name, getattr(self, name))
        check_choice("activation", self.activation, NAMES)
        check_choice("init", self.init, RECURRENT_INITS)
        check_choice("loss", self.loss, RNN_LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "input_scale"):
            check_float(name, getattr(self, name))
        self.bias()  # refuses sigma_b unless normal, bias_value unless constant
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))
        if not isinstance(self.jacobian, (bool, np.bool_)):
            raise ValueError(f"jacobian: expected True or False, got {self.jacobian!r}")

    @property
    def depth(self) -> int:
        """The number of steps (the RNN's depth)."""
        return self.steps

    def bias(self) -> tuple[int, float]:
        """The bias init as ``(kind, scale)``."""
        return recurrent_bias(self.bias_init, self.sigma_b, self.sigma_b2, self.bias_value)


RNN_CODES = {"last": RNN_LAST, "all": RNN_ALL, "probe": RNN_PROBE}
"""The recurrent losses' kernel codes."""


def rnn_net(activation: str, alpha: float | None, loss: str, jacobian: bool, dtype: str = "float64") -> cpu_rnn.Net:
    """The RNN kernels' :class:`~fastgrad.kernels.cpu_rnn.Net`.

    Parameters
    ----------
    activation : str
    alpha : float, optional
    loss : {"last", "all", "probe"}
    jacobian : bool
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_rnn.Net
    """
    _, a = activation_params("activation", activation, alpha)
    return cpu_rnn.Net(loop(activation, dtype), a, RNN_CODES[loss],
                       cpu_rnn.JACOBIAN if jacobian else cpu_rnn.NO_JACOBIAN)


def rnn(spec: RNN, dtype: str = "float64") -> tuple[cpu_rnn.Net, cpu_rnn.Init]:
    """An RNN spec's kernel arguments.

    Parameters
    ----------
    spec : RNN
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_rnn.Net, cpu_rnn.Init)
    """
    w_kind, w_scale = recurrent_kind(spec.init, spec.hidden, spec.gain)
    b_kind, b_scale = spec.bias()
    init = cpu_rnn.Init(draw_choice(w_kind, dtype), spec.hidden, spec.inputs, w_kind, w_scale,
                        spec.input_scale / math.sqrt(spec.inputs), b_kind, b_scale)
    return rnn_net(spec.activation, spec.alpha, spec.loss, spec.jacobian, dtype), init


def rnn_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_rnn.Stats:
    """Empty output rows of the RNN kernels: (trials, steps) statistics, (trials, 3) totals, the Jacobian norms."""
    return cpu_rnn.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                         np.empty((trials, steps), dtype=dtype), np.empty((trials, 3), dtype=dtype),
                         np.empty((trials, steps if jacobian else 0), dtype=dtype))


def rnn_arrays(stats: cpu_rnn.Stats, jacobian: bool) -> dict[str, np.ndarray]:
    """The result arrays of an RNN run: the (T, S) statistics, the three totals as (T,) columns, the Jacobian norms."""
    arrays = {"grad_h": stats.grad_h, "grad_whh_step": stats.grad_whh_step, "q": stats.q}
    if jacobian:
        arrays["jacobian_norm"] = stats.jac
    # Views of the (T, 3) totals: filled as the kernel writes them.
    arrays.update({m: stats.totals[:, i] for i, m in enumerate(("grad_whh", "grad_wxh", "grad_b"))})
    return arrays


def rnn_backprop(
    W_hh: np.ndarray,
    W_xh: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "last",
    alpha: float | None = None,
    threads: int | None = None,
    jacobian: bool = False,
) -> Result:
    """Backpropagation through time for given vanilla RNNs, one per trial.

    ``z_t = h_{t-1} @ W_hh + x_t @ W_xh + b``, ``h_t = phi(z_t)``, ``h_0 = 0``.

    Parameters
    ----------
    W_hh : array (T, n, n)
    W_xh : array (T, d, n)
    b : array (T, n)
    x : array (T, S, B, d)
        Inputs of every step.
    y : array
        ``last``: targets for h_S, (T, B, n); ``all``: targets of every step,
        (T, S, B, n); ``probe``: the back-projection g of h_S, (T, B, n).
    activation : str
    loss : {"last", "all", "probe"}
    alpha : float, optional
    threads : int, optional
    jacobian : bool
        Also return ``jacobian_norm`` (T, S): ``||dh_S / dh_t||_F`` for the first
        sequence of each trial's batch (one extra (n, n) product per step).

    Returns
    -------
    Result
        ``grad_h`` (T, S): ||dLoss/dh_t||_F, the total derivative through all
        later steps; ``grad_whh_step`` (T, S): ||h_{t-1}^T delta_t||_F, step
        t's contribution to dLoss/dW_hh; ``q`` (T, S): mean(z_t^2); the totals
        ``grad_whh``, ``grad_wxh``, ``grad_b`` (T,); ``jacobian_norm`` if asked.
        Index 0 is step 1.
    """
    check_choice("loss", loss, RNN_LOSSES)
    if not isinstance(jacobian, (bool, np.bool_)):
        raise ValueError(f"jacobian: expected True or False, got {jacobian!r}")
    activation_params("activation", activation, alpha)
    check_alpha(alpha, activation)
    W_hh = check_array("W_hh", W_hh, 3)
    dt = W_hh.dtype
    W_xh = check_array("W_xh", W_xh, 3, dt)
    b = check_array("b", b, 2, dt)
    x = check_array("x", x, 4, dt)
    y = check_array("y", y, 4 if loss == "all" else 3, dt)
    trials, n, n2 = W_hh.shape
    if n2 != n:
        raise ValueError(f"W_hh: expected square (T, n, n), got shape {W_hh.shape}")
    _, steps, batch, d = x.shape
    expected = {"W_xh": (trials, d, n), "b": (trials, n), "x": (trials, steps, batch, d),
                "y": (trials, steps, batch, n) if loss == "all" else (trials, batch, n)}
    for name, arr in (("W_xh", W_xh), ("b", b), ("x", x), ("y", y)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {arr.shape}")
    y4 = y if loss == "all" else y[:, None]
    y4 = np.ascontiguousarray(y4)
    net = rnn_net(activation, alpha, loss, bool(jacobian), dt.name)
    stats = rnn_stats(trials, steps, bool(jacobian), dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_rnn.explicit(net, W_hh, W_xh, b, x, y4, stats, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    out = {k: np.ascontiguousarray(v) for k, v in rnn_arrays(stats, bool(jacobian)).items()}
    return Result(out, trials=trials, batch=batch, dtype=dt.name, version=__version__, threads=n_threads,
                  run_seconds=seconds)


def rnn_trial_arrays(
    spec: RNN, seed: int, trials: int | np.ndarray, batch: int, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw W_hh (T, n, n), W_xh (T, d, n), b (T, n), x (T, S, B, d) and y of RNN trials.

    ``y`` is (T, S, B, n) for ``loss="all"``, else (T, B, n), as
    :func:`fastgrad.rnn_backprop` takes it.

    Returns
    -------
    W_hh, W_xh, b, x, y : numpy.ndarray
    """
    idx, batch, seed, dt = trial_args(seed, trials, batch, dtype)
    n_trials = idx.size
    n, d, steps = spec.hidden, spec.inputs, spec.steps
    _, init = rnn(spec, dt.name)
    whh = np.empty((n_trials, n, n), dtype=dt)
    wxh = np.empty((n_trials, d, n), dtype=dt)
    b = np.empty((n_trials, n), dtype=dt)
    x = np.empty((n_trials, steps, batch, d), dtype=dt)
    y_steps = steps if spec.loss == "all" else 1
    y = np.empty((n_trials, y_steps, batch, n), dtype=dt)
    cpu_rnn.draw_arrays(init, seed, idx, whh, wxh, b, x, y)
    return whh, wxh, b, x, (y if spec.loss == "all" else y[:, 0])


def _run_cuda(spec: RNN, trials: int, batch: int, seed: int, dt: np.dtype, chunk: int | None,
              first: int = 0) -> dict[str, np.ndarray]:
    """RNN trials ``first ..`` on the GPU; statistics copied back once per chunk of trials."""
    from numba import cuda

    from fastgrad.gpu import THREADS_PER_BLOCK, chunk_size
    from fastgrad.kernels import cuda_rnn

    if spec.jacobian:
        raise ValueError("jacobian: the Jacobian norms are computed on backend='cpu' only")
    net, init = rnn(spec)
    if init.w_kind in FACTORED_KINDS:
        what = "orthogonal" if init.w_kind == ORTHOGONAL else "spectral"
        raise ValueError(f"init: {what!r} is not available on backend='cuda' (it needs a matrix "
                         "factorisation per trial); use 'normal' or 'identity', or backend='cpu'")
    n, d, s = spec.hidden, spec.inputs, spec.steps
    y_steps = s if spec.loss == "all" else 1
    sizes = (2 * (n * n + d * n + n), s * batch * d, y_steps * batch * n, (s + 1) * batch * n, s * batch * n,
             2 * batch * n)
    m_chunk = chunk_size(sum(sizes) * dt.itemsize, trials, chunk)
    slabs = [cuda.device_array((m_chunk, size), dtype=dt) for size in sizes]
    out = {k: np.empty((trials, s), dtype=dt) for k in ("grad_h", "grad_whh_step", "q")}
    dev = {k: cuda.device_array((m_chunk, s), dtype=dt) for k in out}
    dev_totals = cuda.device_array((m_chunk, 3), dtype=dt)
    totals = np.empty((trials, 3), dtype=dt)
    for lo in range(0, trials, m_chunk):
        m = min(m_chunk, trials - lo)
        cuda_rnn.rnn_generated[m, THREADS_PER_BLOCK](
            seed, first + lo, batch, n, d, init.w_kind, init.w_scale, init.x_scale, init.b_kind, init.b_scale,
            activation_code(net.act), net.alpha, net.loss, *slabs, dev["grad_h"], dev["grad_whh_step"],
            dev["q"], dev_totals)
        for key in out:
            out[key][lo:lo + m] = dev[key][:m].copy_to_host()
        totals[lo:lo + m] = dev_totals[:m].copy_to_host()
    out.update({k: np.ascontiguousarray(totals[:, i]) for i, k in enumerate(("grad_whh", "grad_wxh", "grad_b"))})
    return out


def step_check(spec: Any, step: int) -> int:
    """A recurrent spectrum's ``step``: 1 .. the spec's steps, or ValueError naming ``step``."""
    step = check_int("step", step)
    if step > spec.steps:
        raise ValueError(f"step: must be 1..{spec.steps} (the spec's steps), got {step}")
    return step


class RNNModel(Model):
    """The vanilla RNN's entry in the model table."""

    name = "rnn"
    spec = RNN
    order = 2
    recurrent = True
    main_metric = "grad_h"
    statistics = 4
    spectrum = True
    trainable = True

    def plan(self, spec: RNN, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = rnn(spec, dt.name)
        stats = rnn_stats(trials, spec.steps, spec.jacobian, dt)

        def block(lo: int, hi: int) -> None:
            cpu_rnn.generated(net, init, seed, first, batch, stats, lo, hi)

        return (rnn_arrays(stats, spec.jacobian), block,
                (cpu_rnn.generated, dt.name, net.act, init.draw, spec.jacobian))

    def working(self, spec: RNN, batch: int) -> int:
        n, d = spec.hidden, spec.inputs
        return n * n + d * n + 2 * n + spec.steps * batch * (d + 4 * n)

    def trial_arrays(self, spec: RNN, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return rnn_trial_arrays(spec, seed, trials, batch, dtype)

    def run_cuda(self, spec: RNN, trials: int, batch: int, seed: int, dt: np.dtype, chunk: int | None,
                 first: int) -> dict[str, np.ndarray]:
        return _run_cuda(spec, trials, batch, seed, dt, chunk, first)

    def spectrum_block(self, spec: RNN, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        step = step_check(spec, step)
        net, init = rnn(spec, dtype)
        sv = np.empty((trials, spec.hidden), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_spectrum.rnn_generated(net, init, seed, first, spec.steps, batch, step, sv, lo, hi)

        return block, sv, (cpu_spectrum.rnn_generated, dtype, net.act, init.draw)

    def train_setup(self, spec: RNN, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        return sequence_training(spec, data, classification, dt, rnn, 1, 1, cpu_train_seq.train_rnn)

    def warmup_specs(self, activation: str) -> list[RNN]:
        return [RNN(steps=2, hidden=2, inputs=1, activation=activation)]


PUBLIC = ("RNN", "rnn_backprop", "rnn_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(RNNModel())

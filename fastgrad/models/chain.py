"""The chain of one-neuron layers: spec, lowering, runs, given arrays, trial arrays.

Definitions in docs/architecture.md ("Chain"); kernels in ``kernels/cpu_chain.py`` (and
``kernels/cuda_chain.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fastgrad import codes
from fastgrad.activations import NAMES, loop
from fastgrad.codes import CHAIN_WB, CHAIN_XY
from fastgrad.executor import check_run, run_blocks, threads_context
from fastgrad.explicit import check_array
from fastgrad.kernels import cpu_chain
from fastgrad.lowering import activation_code
from fastgrad.models.base import Model, Plan, register
from fastgrad.rng import normals
from fastgrad.specs import _Scales, activation_params, check_alpha, check_choice, check_float, check_int

CHAIN_INITS = ("normal", "constant")


CHAIN_BIAS_INITS = ("normal", "constant", "centered")


CHAIN_CONSTANT = 100.0
"""Every weight of a chain with ``init="constant"`` unless ``value`` says otherwise (the exploding example)."""


@dataclass(frozen=True)
class Chain(_Scales):
    """The classic chain of one-neuron layers: ``z_l = w_l a_{l-1} + b_l``.

    Parameters
    ----------
    depth : int
        Number of layers L.
    activation : str
        Activation of every neuron.
    init : str
        ``normal`` (w ~ N(0, sigma_w^2)) or ``constant`` (every w = ``value``).
    sigma_w : float, optional
        Weight standard deviation under ``normal`` (default 1); or ``sigma_w2``, its variance.
        Refused under ``constant``.
    value : float, optional
        Every weight under ``constant`` (default 100, the exploding example); refused under
        ``normal``. Under ``constant`` the constructed spec holds the value used.
    bias_init : str
        ``normal`` (b ~ N(0, sigma_b^2)), ``constant`` (``bias_value``) or
        ``centered`` (b_l = -w_l a_{l-1}, so every z_l = 0 and every factor
        ``|w phi'(0)|`` is the same: 25 for sigmoid with w = 100).
    sigma_b : float, optional
        Bias standard deviation under ``normal`` (default 1); or ``sigma_b2``, its variance.
        Refused under ``constant`` and ``centered``.
    bias_value : float, optional
        Every bias under ``constant`` (default 0; the constructed spec holds it); refused otherwise.
    alpha : float, optional
        Activation parameter (leaky slope, ELU alpha).
    sigma_w2, sigma_b2 : float, optional
        The variances, instead of ``sigma_w`` and ``sigma_b``.

    Notes
    -----
    The input x and target y of a trial are N(0, 1); the cost is (a_L - y)^2 / 2.
    """

    depth: int
    activation: str = "sigmoid"
    init: str = "normal"
    sigma_w: float | None = None
    value: float | None = None
    bias_init: str = "normal"
    sigma_b: float | None = None
    bias_value: float | None = None
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    model: str = field(default="chain", init=False)
    BIAS_DEFAULT: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        check_int("depth", self.depth)
        check_choice("activation", self.activation, NAMES)
        check_choice("init", self.init, CHAIN_INITS)
        check_choice("bias_init", self.bias_init, CHAIN_BIAS_INITS)
        for name in ("value", "bias_value"):
            if getattr(self, name) is not None:
                check_float(name, getattr(self, name))
        self.init_scale  # noqa: B018  # refuses sigma_w under constant, value under normal
        self.bias_init_scale  # noqa: B018  # refuses sigma_b unless normal, bias_value unless constant
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))
        # The value used is stored where it applies (and only there: a spec stays valid when rebuilt from
        # its fields), so that every reader of ``value`` and ``bias_value`` sees a number.
        if self.init == "constant" and self.value is None:
            object.__setattr__(self, "value", CHAIN_CONSTANT)
        if self.bias_init == "constant" and self.bias_value is None:
            object.__setattr__(self, "bias_value", 0.0)


CHAIN_BIAS = {"normal": codes.CHAIN_NORMAL, "constant": codes.CHAIN_CONSTANT, "centered": codes.CHAIN_CENTERED}


def chain(spec: Chain, dtype: str = "float64") -> tuple[cpu_chain.Net, cpu_chain.Init]:
    """A chain spec's kernel arguments.

    Parameters
    ----------
    spec : Chain
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_chain.Net, cpu_chain.Init)
    """
    w_const = spec.init == "constant"
    _, b_scale = spec.bias_init_scale  # centered: 0, unused
    init = cpu_chain.Init(w_const, spec.init_scale, CHAIN_BIAS[spec.bias_init], b_scale)
    return chain_net(spec.activation, spec.alpha, dtype), init


def chain_net(activation: str, alpha: float | None, dtype: str = "float64") -> cpu_chain.Net:
    """The chain kernels' :class:`~fastgrad.kernels.cpu_chain.Net`.

    Parameters
    ----------
    activation : str
    alpha : float, optional
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_chain.Net
    """
    _, a = activation_params("activation", activation, alpha)
    return cpu_chain.Net(loop(activation, dtype), a)


def chain_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_chain.Stats:
    """Empty output rows of the chain kernels: four (trials, depth) arrays of ``dtype``."""
    return cpu_chain.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in range(4)))


def chain_backprop(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "sigmoid",
    alpha: float | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Signed bias gradients dC/db_l of one-neuron-per-layer chains.

    Parameters
    ----------
    w, b : array (N, L)
        Weights and biases of N chains; ``z_l = w_l a_{l-1} + b_l``.
    x, y : array (N,)
        Input and target of each chain; the cost is ``(a_L - y)^2 / 2``.
    activation : str
    alpha : float, optional
        Parameter of ``leaky_relu`` or ``elu``.
    threads : int, optional

    Returns
    -------
    numpy.ndarray
        dC/db, shape (N, L), in the input dtype; column 0 is the first layer.
    """
    activation_params("activation", activation, alpha)
    check_alpha(alpha, activation)
    w = check_array("w", w, 2)
    net = chain_net(activation, alpha, w.dtype.name)
    dt = w.dtype
    b = check_array("b", b, 2, dt)
    x = check_array("x", x, 1, dt)
    y = check_array("y", y, 1, dt)
    if b.shape != w.shape:
        raise ValueError(f"b: expected shape {w.shape} (as w), got {b.shape}")
    for name, v in (("x", x), ("y", y)):
        if v.shape != (w.shape[0],):
            raise ValueError(f"{name}: expected shape ({w.shape[0]},), got {v.shape}")
    stats = chain_stats(w.shape[0], w.shape[1], w.dtype)
    with threads_context(threads) as n_threads:
        run_blocks(lambda lo, hi: cpu_chain.explicit(net, w, b, x, y, stats, lo, hi), 0, w.shape[0], n_threads)
    return stats.dc_db


def chain_trial_arrays(
    spec: Chain, seed: int, trials: int, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw w, b (N, L) and x, y (N,) of chain trials 0 .. trials - 1.

    With ``bias_init="centered"`` the biases depend on the forward pass
    (b_l = -w_l a_{l-1}); they are computed here in float64 NumPy.

    Returns
    -------
    w, b : numpy.ndarray
        Shape (N, L).
    x, y : numpy.ndarray
        Shape (N,).
    """
    from fastgrad.activations import evaluate

    depth = spec.depth
    n = check_run(trials, 1, seed, dtype).trials
    w = np.empty((n, depth))
    b = np.empty((n, depth))
    x = np.empty(n)
    y = np.empty(n)
    for k in range(n):
        x[k], y[k] = normals(seed, k, CHAIN_XY, 2)
        g = normals(seed, k, CHAIN_WB, 2 * depth)
        w[k] = spec.value if spec.init == "constant" else spec.weight_std * g[:depth]
        b[k] = spec.bias_std * g[depth:] if spec.bias_init == "normal" else spec.bias_value
    if spec.bias_init == "centered":
        a = x.copy()
        for l in range(depth):
            b[:, l] = -w[:, l] * a
            a, _ = evaluate(spec.activation, w[:, l] * a + b[:, l], spec.alpha)
    dt = np.dtype(dtype)
    return w.astype(dt), b.astype(dt), x.astype(dt), y.astype(dt)


def _run_cuda(spec: Chain, trials: int, seed: int, dt: np.dtype, chunk: int | None,
              first: int = 0) -> dict[str, np.ndarray]:
    """Chain trials ``first ..`` on the GPU; statistics copied back once per chunk of trials."""
    from numba import cuda

    from fastgrad.gpu import THREADS_PER_BLOCK, chunk_size
    from fastgrad.kernels import cuda_chain

    net, init = chain(spec)
    depth = spec.depth
    n = chunk_size(7 * depth * dt.itemsize, trials, chunk)
    scratch = [cuda.device_array((n, depth), dtype=dt) for _ in range(3)]
    dev = {k: cuda.device_array((n, depth), dtype=dt) for k in ("dc_db", "grad_b", "grad_w", "q")}
    out = {k: np.empty((trials, depth), dtype=dt) for k in dev}
    for lo in range(0, trials, n):
        m = min(n, trials - lo)
        blocks = (m + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        cuda_chain.chain_generated[blocks, THREADS_PER_BLOCK](
            seed, first + lo, activation_code(net.act), net.alpha, init.w_const, init.w_scale, init.b_kind,
            init.b_scale, *scratch, dev["dc_db"][:m], dev["grad_b"][:m],
            dev["grad_w"][:m], dev["q"][:m])
        for key in out:
            out[key][lo:lo + m] = dev[key][:m].copy_to_host()
    out["delta"] = out["grad_b"]
    return out


class ChainModel(Model):
    """The chain's entry in the model table."""

    name = "chain"
    spec = Chain
    order = 5
    main_metric = "grad_b"
    statistics = 4
    default_chunk = 65536  # a chain trial takes ~1 us: smaller chunks spend a measurable share handing out blocks
    uses_batch = False
    float64_draws = True

    def plan(self, spec: Chain, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = chain(spec, dt.name)
        stats = chain_stats(trials, spec.depth, dt)

        def block(lo: int, hi: int) -> None:
            cpu_chain.generated(net, init, seed, first, stats, lo, hi)

        arrays = dict(stats._asdict())
        arrays["delta"] = arrays["grad_b"]  # width 1, batch 1: |dC/dz_l| = |dC/db_l|; one array, two names
        return arrays, block, (cpu_chain.generated, dt.name, net.act)

    def working(self, spec: Chain, batch: int) -> int:
        return 8 * spec.depth

    def trial_arrays(self, spec: Chain, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return chain_trial_arrays(spec, seed, int(trials), dtype)  # type: ignore[arg-type]

    def run_cuda(self, spec: Chain, trials: int, batch: int, seed: int, dt: np.dtype, chunk: int | None,
                 first: int) -> dict[str, np.ndarray]:
        return _run_cuda(spec, trials, seed, dt, chunk, first)

    def warmup_specs(self, activation: str) -> list[Chain]:
        return [Chain(depth=2, activation=activation)]


PUBLIC = ("Chain", "chain_backprop", "chain_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(ChainModel())

"""Running generated trials: validation, backend dispatch, chunking, threads, timing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Literal

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from fastgrad import __version__
from fastgrad._numba import max_threads
from fastgrad.initializers import recurrent_kind
from fastgrad.kernels import cpu_chain, cpu_mlp, cpu_rnn
from fastgrad.results import Result
from fastgrad.specs import MLP, RNN, Chain, activation_params, check_choice, check_int

DTYPES = ("float32", "float64")
BACKENDS = ("cpu", "cuda")
DEFAULT_CHUNK = 4096
_warm: set[tuple[str, str]] = set()
Call = Callable[[int, int, dict[str, np.ndarray]], None]


@contextlib.contextmanager
def threads_context(threads: int | None) -> Iterator[int]:
    """Set Numba's thread count (and BLAS to one thread) for the duration.

    Parallelism is over trials; BLAS runs inside each trial's thread, so its own
    pool is limited to one thread to avoid oversubscription. Both are restored
    on exit, even on error.

    Parameters
    ----------
    threads : int or None
        Threads to use; None for all of Numba's (``NUMBA_NUM_THREADS``).

    Yields
    ------
    int
        The number of threads in effect.
    """
    previous = numba.get_num_threads()
    n = max_threads() if threads is None else min(check_int("threads", threads), max_threads())
    try:
        numba.set_num_threads(n)
        with threadpool_limits(limits=1, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)


def check_dtype(dtype: str | type | np.dtype) -> np.dtype:
    """Return the dtype if it is float32 or float64, else raise ValueError naming ``dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}") from err
    if dt.name not in DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, got {dt.name}")
    return dt


def check_backend(backend: str) -> str:
    """Return ``backend`` if it can run here, else raise naming the argument and the reason."""
    check_choice("backend", backend, BACKENDS)
    if backend == "cuda":
        from fastgrad import gpu

        gpu.require()
    return backend


def _mlp_plan(spec: MLP, trials: int, batch: int, seed: int, dt: np.dtype) -> tuple[dict[str, np.ndarray], Call]:
    dims = spec.dims
    act, alpha = spec.layer_activations()
    w_kind, w_scale, b_kind, b_scale = spec.layer_inits()
    loss = cpu_mlp.MSE if spec.loss == "mse" else cpu_mlp.PROBE
    arrays = {m: np.empty((trials, spec.depth), dtype=dt) for m in ("grad_w", "grad_b", "delta", "q")}

    def call(lo: int, hi: int, a: dict[str, np.ndarray]) -> None:
        cpu_mlp.mlp_generated(seed, lo, batch, dims, w_kind, w_scale, b_kind, b_scale, act, alpha, loss,
                              a["grad_w"][lo:hi], a["grad_b"][lo:hi], a["delta"][lo:hi], a["q"][lo:hi],
                              numba.get_num_threads())

    return arrays, call


def _chain_plan(spec: Chain, trials: int, batch: int, seed: int, dt: np.dtype) -> tuple[dict[str, np.ndarray], Call]:
    code, alpha = activation_params("activation", spec.activation, spec.alpha)
    w_const = spec.init == "constant"
    w_scale = spec.value if w_const else spec.sigma_w
    b_kind = {"normal": 0, "constant": 1, "centered": cpu_chain.CENTERED}[spec.bias_init]
    b_scale = spec.sigma_b if spec.bias_init == "normal" else spec.bias_value
    arrays = {m: np.empty((trials, spec.depth), dtype=dt) for m in ("grad_w", "grad_b", "q", "dc_db")}
    arrays["delta"] = arrays["grad_b"]  # width 1, batch 1: |dC/dz_l| = |dC/db_l|; one array, two names

    def call(lo: int, hi: int, a: dict[str, np.ndarray]) -> None:
        cpu_chain.chain_generated(seed, lo, code, alpha, w_const, w_scale, b_kind, b_scale,
                                  a["dc_db"][lo:hi], a["grad_b"][lo:hi], a["grad_w"][lo:hi], a["q"][lo:hi])

    return arrays, call


def _rnn_plan(spec: RNN, trials: int, batch: int, seed: int, dt: np.dtype) -> tuple[dict[str, np.ndarray], Call]:
    code, alpha = activation_params("activation", spec.activation, spec.alpha)
    w_kind, w_scale = recurrent_kind(spec.init, spec.hidden, spec.gain)
    b_kind, b_scale = spec.bias()
    x_scale = spec.input_scale / np.sqrt(spec.inputs)
    loss = {"last": cpu_rnn.LAST, "all": cpu_rnn.ALL, "probe": cpu_rnn.PROBE}[spec.loss]
    arrays = {m: np.empty((trials, spec.steps), dtype=dt) for m in ("grad_h", "grad_whh_step", "q")}
    totals = np.empty((trials, 3), dtype=dt)
    jac = np.empty((trials, spec.steps if spec.jacobian else 0), dtype=dt)
    if spec.jacobian:
        arrays["jacobian_norm"] = jac

    def call(lo: int, hi: int, a: dict[str, np.ndarray]) -> None:
        cpu_rnn.rnn_generated(seed, lo, batch, spec.hidden, spec.inputs, w_kind, w_scale, x_scale, b_kind,
                              b_scale, code, alpha, loss, a["grad_h"][lo:hi], a["grad_whh_step"][lo:hi],
                              a["q"][lo:hi], totals[lo:hi], jac[lo:hi], numba.get_num_threads())
        a["grad_whh"][lo:hi], a["grad_wxh"][lo:hi], a["grad_b"][lo:hi] = totals[lo:hi].T

    arrays.update({m: np.empty(trials, dtype=dt) for m in ("grad_whh", "grad_wxh", "grad_b")})
    return arrays, call


_PLANS = {MLP: _mlp_plan, Chain: _chain_plan, RNN: _rnn_plan}


def run(
    spec: MLP | Chain | RNN,
    trials: int,
    batch: int = 32,
    seed: int = 0,
    dtype: str = "float64",
    backend: Literal["cpu", "cuda"] = "cpu",
    threads: int | None = None,
    chunk: int | None = None,
) -> Result:
    """Draw ``trials`` random networks from ``spec`` and back-propagate through each.

    Trial k of seed s is determined by (s, k) alone: the same whatever the
    number of threads, the chunk size or the total number of trials.

    Parameters
    ----------
    spec : MLP, Chain or RNN
        The model.
    trials : int
        Number of independent trials (>= 1).
    batch : int
        Inputs per trial (the chain has one input per trial and ignores it).
    seed : int
        Seed of the counter-based generator (>= 0).
    dtype : {"float32", "float64"}
        Precision of the whole run, and of the returned arrays.
    backend : {"cpu", "cuda"}
        Where to run.
    threads : int, optional
        CPU threads; default all.
    chunk : int, optional
        Trials per kernel call. Working memory is per thread, not per trial, so
        this bounds only the time between progress points. Does not change results.

    Returns
    -------
    Result
        Per-trial statistics (``grad_w``, ``grad_b``, ``delta``, ``q`` for MLP
        and chain; ``grad_h``, ``grad_whh_step``, ``q``, the totals and, if
        ``spec.jacobian``, ``jacobian_norm`` for RNN), with timings.
    """
    plan = _PLANS.get(type(spec))
    if plan is None:
        raise ValueError(f"spec: expected fastgrad.MLP, Chain or RNN, got {type(spec).__name__}")
    trials = check_int("trials", trials)
    batch = 1 if isinstance(spec, Chain) else check_int("batch", batch)
    seed = check_int("seed", seed, minimum=0)
    dt = check_dtype(dtype)
    check_backend(backend)
    if backend == "cuda":
        return _run_cuda(spec, trials, batch, seed, dt, None if chunk is None else check_int("chunk", chunk))
    chunk = DEFAULT_CHUNK if chunk is None else check_int("chunk", chunk)
    arrays, call = plan(spec, trials, batch, seed, dt)  # type: ignore[operator]

    with threads_context(threads) as n_threads:
        compile_seconds = 0.0
        key = (type(spec).__name__, dt.name)
        if key not in _warm:
            # First call in this process: compile (or load from cache) on one trial.
            scratch, warm_call = plan(spec, 1, batch, seed, dt)  # type: ignore[operator]
            t0 = time.perf_counter()
            warm_call(0, 1, scratch)
            compile_seconds = time.perf_counter() - t0
            _warm.add(key)
        t0 = time.perf_counter()
        for lo in range(0, trials, chunk):
            call(lo, min(lo + chunk, trials), arrays)
        run_seconds = time.perf_counter() - t0

    return Result(arrays, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend=backend,
                  version=__version__, threads=n_threads, compile_seconds=compile_seconds, run_seconds=run_seconds)


def _run_cuda(spec: MLP | Chain | RNN, trials: int, batch: int, seed: int, dt: np.dtype,
              chunk: int | None) -> Result:
    from fastgrad import gpu

    compile_seconds = 0.0
    key = (type(spec).__name__ + "-cuda", dt.name)
    if key not in _warm:
        t0 = time.perf_counter()
        gpu.run_cuda(spec, 1, batch, seed, dt, 1)
        compile_seconds = time.perf_counter() - t0
        _warm.add(key)
    t0 = time.perf_counter()
    arrays = gpu.run_cuda(spec, trials, batch, seed, dt, chunk)
    run_seconds = time.perf_counter() - t0
    return Result(arrays, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend="cuda",
                  version=__version__, threads=1, compile_seconds=compile_seconds, run_seconds=run_seconds)

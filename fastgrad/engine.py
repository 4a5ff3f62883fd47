"""Running trials: validation, backend dispatch, chunking, threads, timing."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Literal

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from fastgrad import __version__
from fastgrad.kernels import cpu_chain, cpu_mlp
from fastgrad.results import Result
from fastgrad.specs import MLP, Chain, activation_params, check_choice, check_int

DTYPES = ("float32", "float64")
BACKENDS = ("cpu", "cuda")
DEFAULT_CHUNK = 4096
_warm: set[tuple[str, str]] = set()


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
    n = numba.config.NUMBA_NUM_THREADS if threads is None else check_int("threads", threads)
    n = min(n, numba.config.NUMBA_NUM_THREADS)
    try:
        numba.set_num_threads(n)
        with threadpool_limits(limits=1, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)


def _check_dtype(dtype: str | type | np.dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}") from err
    if dt.name not in DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, got {dt.name}")
    return dt


def _check_backend(backend: str) -> str:
    check_choice("backend", backend, BACKENDS)
    if backend == "cuda":
        raise RuntimeError(
            "backend='cuda': this version of fastgrad has no CUDA kernels yet; use backend='cpu'"
        )
    return backend


def run(
    spec: MLP | Chain,
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
    spec : MLP or Chain
        The model.
    trials : int
        Number of independent trials (>= 1).
    batch : int
        Inputs per trial (ignored by the chain, which has one input per trial).
    seed : int
        Seed of the counter-based generator (>= 0).
    dtype : {"float32", "float64"}
        Precision of the whole run, and of the returned arrays.
    backend : {"cpu", "cuda"}
        Where to run.
    threads : int, optional
        CPU threads; default all.
    chunk : int, optional
        Trials per kernel call; bounds the memory of one call. Does not change results.

    Returns
    -------
    Result
        Per-trial, per-layer ``grad_w``, ``grad_b``, ``delta``, ``q``, with timings.
    """
    if not isinstance(spec, (MLP, Chain)):
        raise ValueError(f"spec: expected fastgrad.MLP or fastgrad.Chain, got {type(spec).__name__}")
    trials = check_int("trials", trials)
    batch = check_int("batch", batch)
    seed = check_int("seed", seed, minimum=0)
    dt = _check_dtype(dtype)
    _check_backend(backend)
    chunk = DEFAULT_CHUNK if chunk is None else check_int("chunk", chunk)
    depth = spec.depth
    out = {m: np.empty((trials, depth), dtype=dt) for m in ("grad_w", "grad_b", "delta", "q")}
    extra: dict[str, np.ndarray] = {}

    if isinstance(spec, MLP):
        dims = spec.dims
        act, alpha = spec.layer_activations()
        w_kind, w_scale, b_kind, b_scale = spec.layer_inits()
        loss = cpu_mlp.MSE if spec.loss == "mse" else cpu_mlp.PROBE

        def call(lo: int, hi: int, arrays: dict[str, np.ndarray]) -> None:
            cpu_mlp.mlp_generated(seed, lo, batch, dims, w_kind, w_scale, b_kind, b_scale, act, alpha, loss,
                                  arrays["grad_w"][lo:hi], arrays["grad_b"][lo:hi],
                                  arrays["delta"][lo:hi], arrays["q"][lo:hi])
    else:
        code, a = activation_params("activation", spec.activation, spec.alpha)
        w_const = spec.init == "constant"
        w_scale_c = spec.value if w_const else spec.sigma_w
        b_kind_c = {"normal": 0, "constant": 1, "centered": cpu_chain.CENTERED}[spec.bias_init]
        b_scale_c = spec.sigma_b if spec.bias_init == "normal" else spec.bias_value
        extra["dc_db"] = np.empty((trials, depth), dtype=dt)
        batch = 1

        def call(lo: int, hi: int, arrays: dict[str, np.ndarray]) -> None:
            cpu_chain.chain_generated(seed, lo, code, a, w_const, w_scale_c, b_kind_c, b_scale_c,
                                      arrays["dc_db"][lo:hi], arrays["grad_w"][lo:hi], arrays["q"][lo:hi])

    with threads_context(threads) as n_threads:
        compile_seconds = 0.0
        key = (type(spec).__name__, dt.name)
        if key not in _warm:
            # First call in this process: compile (or load from cache) on one trial.
            scratch = {m: np.empty((1, depth), dtype=dt) for m in ("grad_w", "grad_b", "delta", "q", "dc_db")}
            t0 = time.perf_counter()
            call(0, 1, scratch)
            compile_seconds = time.perf_counter() - t0
            _warm.add(key)
        arrays = {**out, **extra}
        t0 = time.perf_counter()
        for lo in range(0, trials, chunk):
            hi = min(lo + chunk, trials)
            call(lo, hi, arrays)
        run_seconds = time.perf_counter() - t0

    if isinstance(spec, Chain):
        # Width 1 and batch 1: |dC/dz_l| = |dC/db_l| = grad_b = delta.
        np.abs(extra["dc_db"], out=out["grad_b"])
        out["delta"][:] = out["grad_b"]
    return Result(**out, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend=backend,
                  version=__version__, threads=n_threads, compile_seconds=compile_seconds,
                  run_seconds=run_seconds, extra=extra)


def check_array(name: str, value: object, ndim: int, dtype: np.dtype | None = None) -> np.ndarray:
    """Validate a user array: float32/float64, ``ndim`` dimensions, all finite.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : array_like
    ndim : int
    dtype : numpy.dtype, optional
        Required dtype (that of the first array of a call); any float if None.

    Returns
    -------
    numpy.ndarray
        C-contiguous, not copied when already so.
    """
    arr = np.asarray(value)
    if arr.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise ValueError(f"{name}: dtype {arr.dtype} differs from the other arrays' {dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name}: empty array, shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains nan or inf")
    return np.ascontiguousarray(arr)


def _pack_layers(name: str, value: np.ndarray | Sequence[np.ndarray], vector: bool) -> list[np.ndarray]:
    """Split W (T, L, n, n) / b (T, L, n) or accept a list of per-layer arrays."""
    ndim = 2 if vector else 3
    if isinstance(value, np.ndarray) and value.ndim == ndim + 1:
        return [value[:, l] for l in range(value.shape[1])]
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence) or len(value) == 0:
        shape = "(T, L, n)" if vector else "(T, L, n, n)"
        raise ValueError(f"{name}: expected an array of shape {shape} or a non-empty list of per-layer arrays")
    return list(value)


def mlp_backprop(
    W: np.ndarray | Sequence[np.ndarray],
    b: np.ndarray | Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "mse",
    last_activation: str | None = None,
    alpha: float | None = None,
    threads: int | None = None,
) -> Result:
    """Per-layer gradient statistics of given MLPs, one per trial.

    Parameters
    ----------
    W : array (T, L, n, n) or list of L arrays (T, n_{l-1}, n_l)
        Weights; ``z_l = h_{l-1} @ W_l + b_l``.
    b : array (T, L, n) or list of L arrays (T, n_l)
        Biases.
    x : array (T, B, n_0)
        Inputs.
    y : array (T, B, n_L)
        Targets (``mse``) or the back-projection g (``probe``).
    activation : str
        Activation of every layer.
    loss : {"mse", "probe"}
    last_activation : str, optional
        Activation of the last layer; default ``activation``.
    alpha : float, optional
        Parameter of ``leaky_relu`` or ``elu``.
    threads : int, optional
        CPU threads; default all.

    Returns
    -------
    Result
        ``grad_w``, ``grad_b``, ``delta``, ``q``, each (T, L), in the input dtype.
    """
    check_choice("loss", loss, ("mse", "probe"))
    code, a = activation_params("activation", activation, alpha)
    last_code, last_a = (code, a) if last_activation is None else activation_params(
        "last_activation", last_activation, alpha)
    x = check_array("x", x, 3)
    dt = x.dtype
    ws = [check_array(f"W[{l}]", w, 3, dt) for l, w in enumerate(_pack_layers("W", W, vector=False))]
    bs = [check_array(f"b[{l}]", v, 2, dt) for l, v in enumerate(_pack_layers("b", b, vector=True))]
    y = check_array("y", y, 3, dt)
    trials, batch, n0 = x.shape
    depth = len(ws)
    if len(bs) != depth:
        raise ValueError(f"b: {len(bs)} layers, but W has {depth}")
    dims = [n0]
    for l, (w, v) in enumerate(zip(ws, bs)):
        if w.shape[0] != trials or v.shape[0] != trials:
            raise ValueError(f"W[{l}], b[{l}]: expected {trials} trials (from x), got {w.shape[0]} and {v.shape[0]}")
        if w.shape[1] != dims[-1]:
            raise ValueError(f"W[{l}]: expected {dims[-1]} rows (the previous width), got shape {w.shape[1:]}")
        if v.shape[1] != w.shape[2]:
            raise ValueError(f"b[{l}]: expected width {w.shape[2]}, got {v.shape[1]}")
        dims.append(w.shape[2])
    if y.shape != (trials, batch, dims[-1]):
        raise ValueError(f"y: expected shape {(trials, batch, dims[-1])}, got {y.shape}")
    w_flat = np.concatenate([w.reshape(trials, -1) for w in ws], axis=1) if depth > 1 else ws[0].reshape(trials, -1)
    b_flat = np.concatenate(bs, axis=1) if depth > 1 else bs[0]
    act = np.full(depth, code, dtype=np.int64)
    act_alpha = np.full(depth, a)
    act[-1], act_alpha[-1] = last_code, last_a
    out = {m: np.empty((trials, depth), dtype=dt) for m in ("grad_w", "grad_b", "delta", "q")}
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        cpu_mlp.mlp_explicit(np.ascontiguousarray(w_flat), np.ascontiguousarray(b_flat), x, y,
                             np.array(dims, dtype=np.int64), act, act_alpha,
                             cpu_mlp.MSE if loss == "mse" else cpu_mlp.PROBE,
                             out["grad_w"], out["grad_b"], out["delta"], out["q"])
        seconds = time.perf_counter() - t0
    return Result(**out, trials=trials, batch=batch, dtype=dt.name, version=__version__,
                  threads=n_threads, run_seconds=seconds)


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
    code, a = activation_params("activation", activation, alpha)
    w = check_array("w", w, 2)
    dt = w.dtype
    b = check_array("b", b, 2, dt)
    x = check_array("x", x, 1, dt)
    y = check_array("y", y, 1, dt)
    if b.shape != w.shape:
        raise ValueError(f"b: expected shape {w.shape} (as w), got {b.shape}")
    for name, v in (("x", x), ("y", y)):
        if v.shape != (w.shape[0],):
            raise ValueError(f"{name}: expected shape ({w.shape[0]},), got {v.shape}")
    db = np.empty_like(w)
    scratch = np.empty_like(w)
    with threads_context(threads):
        cpu_chain.chain_explicit(w, b, x, y, code, a, db, scratch, np.empty_like(w))
    return db

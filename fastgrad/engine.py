"""Running generated trials: validation, backend dispatch, chunking, threads, timing."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

from fastgrad import models
from fastgrad._numba import max_threads
from fastgrad.checks import check_choice, check_int
from fastgrad.executor import available_memory, check_run, run_chunks
from fastgrad.results import Result
from fastgrad.version import __version__

BACKENDS = ("cpu", "cuda")


def check_backend(backend: str) -> str:
    """Return ``backend`` if it can run here, else raise naming the argument and the reason."""
    check_choice("backend", backend, BACKENDS)
    if backend == "cuda":
        from fastgrad import gpu

        gpu.require()
    return backend


def memory_need(spec: Any, trials: int, batch: int, dtype: np.dtype, threads: int | None,
                cells: int = 1) -> tuple[int, int]:
    """Estimated bytes a run needs: ``(results, working)``.

    ``results`` are the per-trial statistics of ``cells`` cells (the output arrays);
    ``working`` is one trial's weights, inputs and activations per thread. Estimates,
    within a small factor: enough to refuse a run that cannot fit before it allocates.
    """
    item = dtype.itemsize
    model = models.of(spec)
    results = cells * trials * model.statistics * spec.depth * item
    per_trial = model.working(spec, batch)
    n_threads = max_threads() if threads is None else threads
    return results, per_trial * item * n_threads * cells


CHECKED_FROM = 256 * 2**20
"""Runs estimated below this many bytes are not checked against the available memory."""


def check_memory(spec: Any, trials: int, batch: int, dtype: np.dtype, threads: int | None, cells: int = 1) -> None:
    """Refuse a run whose estimated memory (:func:`memory_need`) exceeds what is available, naming what to change."""
    results, working = memory_need(spec, trials, batch, dtype, threads, cells)
    if results + working < CHECKED_FROM:  # small runs: not worth reading /proc/meminfo (~0.1 ms) each call
        return
    free = available_memory()
    gib = 2.0**30
    if working > free:
        raise ValueError(f"width: one trial of this {models.of(spec).name} needs about {working / gib:.3g} GiB of "
                         f"working memory over {max_threads() if threads is None else threads} thread(s), and "
                         f"{free / gib:.3g} GiB are available; reduce the width, depth (steps), batch or threads")
    if results + working > free:
        per = results / (trials * cells)
        raise ValueError(f"trials: {trials * cells:,} trials need about {results / gib:.3g} GiB for their statistics "
                         f"({per:,.0f} bytes each) and {free / gib:.3g} GiB are available; run at most "
                         f"{max(int((free - working) // per), 0):,} trials per call, or use fastgrad.sweep, which "
                         "saves its cells in pieces")


def run(
    spec: Any,
    trials: int,
    batch: int = 32,
    seed: int = 0,
    dtype: str = "float64",
    backend: Literal["cpu", "cuda"] = "cpu",
    threads: int | None = None,
    chunk: int | None = None,
    first_trial: int = 0,
) -> Result:
    """Draw ``trials`` random networks from ``spec`` and back-propagate through each.

    Trial k of seed s is determined by (s, k) alone: the same whatever the
    number of threads, the chunk size, the total number of trials or the run
    it belongs to (``first_trial``).

    Parameters
    ----------
    spec : a model spec (fastgrad.MLP, ResMLP, Chain, RNN, LSTM, GRU, ...)
        The model (``backend="cuda"``: the families with a CUDA kernel).
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
    first_trial : int
        The index of the first trial: row i of every statistic is trial ``first_trial + i``.
        ``run(spec, 100, first_trial=400)`` is rows 400 .. 499 of ``run(spec, 500)``, bit for bit,
        which is how a sweep saves and resumes a cell in pieces.

    Returns
    -------
    Result
        Per-trial statistics (``grad_w``, ``grad_b``, ``delta``, ``q`` for MLP
        and chain, the same and ``grad_h`` for ResMLP; ``grad_h``,
        ``grad_whh_step``, ``q``, the totals and, if ``spec.jacobian``,
        ``jacobian_norm`` for RNN; for LSTM and GRU see
        :func:`fastgrad.models._gated.gated_arrays`), with timings.
    """
    model = models.of(spec)
    args = check_run(trials, batch if model.uses_batch else 1, seed, dtype, threads, first_trial)
    trials, batch, seed, dt, first_trial = args.trials, args.batch, args.seed, args.dtype, args.first_trial
    if backend == "cuda" and model.cpu_only is not None:
        raise ValueError(f"backend: {type(spec).__name__} runs on the CPU only ({model.cpu_only}); "
                         "use backend='cpu'")
    check_backend(backend)
    if backend == "cuda":
        return _run_cuda(model, spec, trials, batch, seed, dt, None if chunk is None else check_int("chunk", chunk),
                         first_trial)
    chunk = model.default_chunk if chunk is None else check_int("chunk", chunk)
    check_memory(spec, trials, batch, dt, threads)
    arrays, block, kernel_key = model.plan(spec, trials, batch, seed, dt, first_trial)

    n_threads, compile_seconds, run_seconds = run_chunks(block, kernel_key, trials, chunk, threads)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    return Result(arrays, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name,
                  backend=model.backend_label(kernel_key, backend), version=__version__, threads=n_threads,
                  compile_seconds=compile_seconds, run_seconds=run_seconds)


_cuda_warm: set[tuple[str, str]] = set()


def _run_cuda(model: models.Model, spec: Any, trials: int, batch: int, seed: int, dt: np.dtype,
              chunk: int | None, first_trial: int = 0) -> Result:
    compile_seconds = 0.0
    key = (model.name + "-cuda", dt.name)
    if key not in _cuda_warm:
        t0 = time.perf_counter()
        model.run_cuda(spec, 1, batch, seed, dt, 1, first_trial)
        compile_seconds = time.perf_counter() - t0
        _cuda_warm.add(key)
    t0 = time.perf_counter()
    arrays = model.run_cuda(spec, trials, batch, seed, dt, chunk, first_trial)
    run_seconds = time.perf_counter() - t0
    return Result(arrays, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend="cuda",
                  version=__version__, threads=1, compile_seconds=compile_seconds, run_seconds=run_seconds)


def run_cells(specs: list[Any], trials: int, batch: int = 32, seed: int = 0, dtype: str = "float64",
              threads: int | None = None, chunk: int | None = None, first_trial: int = 0) -> list[Result]:
    """Run cells that differ only in their scales together, over one draw per trial.

    Each result is bitwise the result of :func:`run` of its spec alone; only the time
    differs. The cells' model must share draws between them (MLPs: see
    :func:`fastgrad.models.mlp.run_cells`); otherwise ValueError.

    Parameters
    ----------
    specs : list of specs
        Two or more specs of one model family, equal in every field but its scale fields.
    trials, batch, seed, dtype, threads, chunk, first_trial
        As for :func:`run`.

    Returns
    -------
    list of Result
        One per spec, in order.
    """
    if not specs:
        raise ValueError("specs: expected two or more specs")
    model = models.of(specs[0], "specs")
    if not model.shares_draws(list(specs)):
        raise ValueError(f"specs: these {model.name} cells cannot run over shared draws (they must be two or more "
                         f"specs of one model that differ only in {', '.join(model.scale_fields) or 'scales'}); "
                         "run them one by one with fastgrad.run")
    args = check_run(trials, batch, seed, dtype, threads, first_trial)
    check_memory(specs[0], args.trials, args.batch, args.dtype, args.threads, cells=len(specs))
    chunk = model.default_chunk if chunk is None else check_int("chunk", chunk)
    return model.run_cells(list(specs), args.trials, args.batch, args.seed, args.dtype, args.threads, chunk,
                           args.first_trial)


def trial_arrays(spec: Any, seed: int, trials: int | np.ndarray, batch: int = 32,
                 dtype: str = "float64") -> tuple[Any, ...]:
    """Trial k's arrays exactly as :func:`run` draws them, for any model spec.

    Parameters
    ----------
    spec : a model spec
    seed : int
    trials : int or int array
        How many (trials 0 .. trials - 1), or which.
    batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    tuple
        As the model's own function returns them (:func:`fastgrad.mlp_trial_arrays`, ...), shaped as its
        explicit routine (:func:`fastgrad.mlp_backprop`, ...) takes them.
    """
    return models.of(spec).trial_arrays(spec, seed, trials, batch, dtype)

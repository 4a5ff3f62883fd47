"""Compiling kernels ahead of time: ``fastgrad warmup``, and the demo's first step.

A kernel is compiled for each combination of model, dtype and compile-time
choices (activation, orthogonal or spectral init, Jacobian norms) it is called
with, then cached on disk (docs/architecture.md, "The cache"). Warming up runs
one tiny trial of each such combination, so that later runs of any size, in any
process that finds the same cache (a script, a notebook, each Dask worker of the
machine), start at once. With ``processes > 1`` the compilations run side by side
in fresh worker processes, which write the shared cache; the calling process then
only loads the kernels.

On a Dask cluster whose workers do not share a file system, run it on every
worker: ``client.run(fastgrad.warmup.warmup, dtypes=["float32"])``.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from fastgrad import models as model_table
from fastgrad.activations import NAMES
from fastgrad.checks import check_choice, check_int
from fastgrad.data import Dataset
from fastgrad.engine import run
from fastgrad.executor import DTYPES
from fastgrad.train import train

MODELS = tuple(model_table.REGISTRY)
Job = tuple[str, Any, str]
"""``(kind, spec, dtype)``: ``kind`` is ``"run"`` (statistics of generated trials) or ``"train"``."""


def _tiny_data(spec: Any) -> Dataset:
    """A 4-sample dataset of the shape ``train`` needs for ``spec`` (classification for a dense net)."""
    rng = np.random.default_rng(0)
    if model_table.of(spec).recurrent:
        x = rng.random((4, spec.steps, spec.inputs))
        return Dataset(x, rng.random((4, 1)), x[:0], np.empty((0, 1)), "regression", "warmup")
    n_in = spec.input_width or spec.width
    n_out = spec.output_width or spec.width
    y = np.eye(n_out)[np.arange(4) % n_out]
    x = rng.normal(size=(4, n_in))
    return Dataset(x, y, x[:2], y[:2], "classification", "warmup")


def execute(job: Job) -> float:
    """Compile (or load) the kernels one job needs, by running it on one tiny trial; returns its seconds.

    Parameters
    ----------
    job : (kind, spec, dtype)

    Returns
    -------
    float
    """
    kind, spec, dtype = job
    t0 = time.perf_counter()
    if kind == "run":
        run(spec, trials=1, batch=1, dtype=dtype, threads=1)
    elif kind == "train":
        train(spec, _tiny_data(spec), epochs=1, batch=2, trials=1, dtype=dtype, threads=1)
    else:
        raise ValueError(f"job: unknown kind {kind!r}; choose run or train")
    return time.perf_counter() - t0


def describe(job: Job) -> str:
    """A short label of a job: ``"run MLP float64 tanh"``."""
    kind, spec, dtype = job
    words = [kind, type(spec).__name__, dtype]
    if hasattr(spec, "activation"):  # the gated cells' activations are fixed
        words.append(spec.activation)
    if getattr(spec, "last_activation", None):
        words.append(f"last={spec.last_activation}")
    if getattr(spec, "init", "") in ("orthogonal", "spectral"):
        words.append(spec.init)
    if getattr(spec, "input_init", "") == "orthogonal":
        words.append("orthogonal inputs")
    if getattr(spec, "jacobian", False):
        words.append("jacobian")
    return " ".join(words)


def compile_jobs(jobs: Sequence[Job], processes: int = 1,
                 progress: Callable[[str], None] | None = None) -> list[tuple[str, float]]:
    """Compile the kernels of ``jobs``, in ``processes`` worker processes side by side.

    Parameters
    ----------
    jobs : sequence of (kind, spec, dtype)
    processes : int
        1 to compile in this process; more to spread the jobs over fresh
        processes that write the on-disk cache, after which this process loads
        every kernel from it.
    progress : callable, optional
        Called with one line per finished job.

    Returns
    -------
    list of (label, seconds)
        Per job, the seconds it took where it ran (compiling, or loading from the cache).
    """
    processes = check_int("processes", processes)
    done: list[tuple[str, float]] = []
    if processes > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("spawn")  # no forked copy of a process's threads or locks
        with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=context) as pool:
            for job, seconds in zip(jobs, pool.map(execute, jobs), strict=True):
                done.append((describe(job), seconds))
                if progress:
                    progress(f"{describe(job)}: {seconds:.1f} s")
    for job in jobs:  # load into this process (compiles here only what the workers could not cache)
        seconds = execute(job)
        if processes <= 1 or len(jobs) <= 1:
            done.append((describe(job), seconds))
            if progress:
                progress(f"{describe(job)}: {seconds:.1f} s")
    return done


def standard_jobs(models: Iterable[str] = MODELS, dtypes: Iterable[str] = ("float64",),
                  activations: Iterable[str] = ("tanh", "relu", "sigmoid")) -> list[Job]:
    """The jobs of :func:`warmup`: one small spec per model, dtype and activation.

    Parameters
    ----------
    models, dtypes, activations : iterables of str

    Returns
    -------
    list of (kind, spec, dtype)
    """
    jobs: list[Job] = []
    models, activations = list(models), list(activations)
    for dtype in dtypes:
        check_choice("dtypes", dtype, DTYPES)
        for name in models:
            check_choice("models", name, MODELS)
        for activation in activations:
            check_choice("activations", activation, NAMES)
        for name in models:
            seen = set()
            for activation in activations:  # a model without an activation (the gated cells) gives one job
                for spec in model_table.named(name, "models").warmup_specs(activation):
                    if spec not in seen:
                        seen.add(spec)
                        jobs.append(("run", spec, dtype))
    return jobs


def warmup(dtypes: Sequence[str] = ("float64",), activations: Sequence[str] = ("tanh", "relu", "sigmoid"),
           models: Sequence[str] = MODELS, processes: int = 1, progress: bool = True) -> list[tuple[str, float]]:
    """Compile the statistics kernels of ``models`` for ``dtypes`` and ``activations`` ahead of time.

    Other compile-time choices (orthogonal and spectral inits, the RNN's Jacobian
    norms, training) compile on first use, or through :func:`compile_jobs`.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}
    activations : sequence of str
        Activation names (``fastgrad.activations.NAMES``).
    models : sequence of str
        Model names (``fastgrad.models.REGISTRY``).
    processes : int
        Worker processes compiling side by side (1: in this process).
    progress : bool
        Print one line per kernel to standard error.

    Returns
    -------
    list of (label, seconds)
    """
    jobs = standard_jobs(models, dtypes, activations)

    def say(line: str) -> None:
        print(f"fastgrad warmup: {line}", file=sys.stderr, flush=True)

    return compile_jobs(jobs, processes, say if progress else None)

"""Where every entry point runs its trials: the one check of run arguments, threads, chunks and timing.

:func:`check_run` validates what every run takes (trials, batch, seed, dtype, threads,
first trial) with one message per argument; :func:`run_blocks` splits trials over the
process's threads; :func:`run_chunks` runs a kernel chunk by chunk and times its
compilation apart; :func:`threads_context` limits BLAS to one thread meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from fastgrad._numba import compiled_kernels, max_threads
from fastgrad.checks import check_int

DTYPES = ("float32", "float64")
Block = Callable[[int, int], None]
"""A kernel call over the trials lo .. hi - 1 of a run's output rows."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The process's worker threads (one per core but the calling thread's), all started on first use.

    They are started at once, with SIGINT and SIGTERM held back meanwhile: a ThreadPoolExecutor
    starts a thread inside ``submit``, and a Ctrl-C landing between the thread's start and its
    registration left a worker that nothing wakes at exit, so the interpreter waited for it for ever
    (seen in a sweep interrupted on its second chunk). Holding the signals back in this thread does
    not stop another thread (tqdm's monitor, say) from taking one, and Python then raises it here
    all the same (seen in a sweep sent SIGTERM just before its pool started): if anything is raised
    while the workers start, the pool is shut down, so that every worker started, registered or
    not, exits.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(max_threads() - 1, 1)
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastgrad")
            held = {signal.SIGINT, signal.SIGTERM}
            in_main = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
            before = signal.pthread_sigmask(signal.SIG_BLOCK, held) if in_main else None
            started = threading.Barrier(workers + 1)
            try:
                for _ in range(workers):  # each task holds its thread until all have started
                    pool.submit(started.wait, 60)
                started.wait(60)
            except BaseException:  # KeyboardInterrupt, say: release the started workers, then stop them
                started.abort()
                pool.shutdown(wait=False)  # its None goes round the work queue every worker reads
                raise
            finally:
                if before is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, before)
            _pool = pool
        return _pool


def run_blocks(block: Block, lo: int, hi: int, threads: int) -> None:
    """Run ``block`` over trials ``lo .. hi - 1`` split into ``threads`` runs of consecutive trials.

    Kernels release the GIL, so the runs proceed in parallel on the process's
    worker threads. Trial k's result does not depend on the split.

    Parameters
    ----------
    block : callable ``(lo, hi) -> None``
    lo, hi : int
    threads : int
    """
    n = hi - lo
    blocks = max(1, min(n, threads))
    bounds = [lo + k * n // blocks for k in range(blocks + 1)]
    if blocks == 1:
        block(lo, hi)
        return
    # Blocks 1.. go to the pool; block 0 runs on the calling thread meanwhile.
    futures = [_executor().submit(block, bounds[k], bounds[k + 1]) for k in range(1, blocks)]
    try:
        block(bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()


@contextlib.contextmanager
def threads_context(threads: int | None) -> Iterator[int]:
    """Resolve the thread count, with BLAS limited to one thread for the duration.

    Parallelism is over trials; BLAS runs inside each trial's thread, so its own
    pool is limited to one thread to avoid oversubscription (restored on exit,
    even on error).

    Parameters
    ----------
    threads : int or None
        Threads to use; None for one per core (``NUMBA_NUM_THREADS``).

    Yields
    ------
    int
        The number of threads in effect.
    """
    n = max_threads() if threads is None else check_threads(threads)
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield n


_controller: ThreadpoolController | None = None


def _blas_controller() -> ThreadpoolController:
    """The process's thread-pool controller, found once (finding it reads /proc/self/maps: ~1.6 ms a run)."""
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  # the BLAS Numba's np.dot calls: loaded before the scan

        _controller = ThreadpoolController()
    return _controller


def check_threads(threads: Any) -> int:
    """Return ``threads`` if it is between 1 and the machine's cores, else raise naming the argument."""
    n = check_int("threads", threads)
    if n > max_threads():
        raise ValueError(f"threads: {n} is more than this machine's {max_threads()} cores "
                         f"(NUMBA_NUM_THREADS={max_threads()}, os.cpu_count()={os.cpu_count()})")
    return n


def check_dtype(dtype: str | type | np.dtype) -> np.dtype:
    """Return the dtype if it is float32 or float64, else raise ValueError naming ``dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}") from err
    if dt.name not in DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, got {dt.name}")
    return dt


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux: MemAvailable; else the free physical pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not on this platform: no limit known
        return 2**62


_ready: set[tuple[Any, ...]] = set()
"""Kernels (with their dtype and compiled functions) this process has run: nothing left to compile."""


def run_compiled(block: Block, lo: int, hi: int, threads: int) -> float:
    """Run trials lo .. hi - 1 in ``threads`` blocks; returns the seconds spent compiling (or loading) the kernel.

    The first trial runs alone; if that compiled or loaded any kernel or compiled
    function, its time is reported apart (otherwise it counts as run time).

    Parameters
    ----------
    block : callable ``(lo, hi) -> None``
    lo, hi, threads : int

    Returns
    -------
    float
    """
    before = compiled_kernels()
    t0 = time.perf_counter()
    block(lo, lo + 1)
    elapsed = time.perf_counter() - t0
    if compiled_kernels() == before:  # nothing compiled or loaded: that trial was run time
        run_blocks(block, lo + 1, hi, threads)
        return 0.0
    run_blocks(block, lo + 1, hi, threads)
    return elapsed


def run_chunks(block: Block, key: Any, trials: int, chunk: int, threads: int | None) -> tuple[int, float, float]:
    """Run ``block`` over trials 0 .. trials - 1, chunk by chunk, one block of trials per thread.

    The first chunk of a kernel this process has not run yet (``key`` not in :data:`_ready`)
    goes through :func:`run_compiled`, so that compiling or loading it is timed apart.

    Parameters
    ----------
    block : callable ``(lo, hi) -> None``
    key : hashable
        The kernel with its dtype and compiled functions.
    trials, chunk : int
    threads : int or None

    Returns
    -------
    (int, float, float)
        The threads used, the seconds spent compiling (or loading), the seconds running.
    """
    compile_seconds = 0.0
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        for lo in range(0, trials, chunk):
            hi = min(lo + chunk, trials)
            if lo == 0 and key not in _ready:  # may need compiling or loading: time it apart
                compile_seconds = run_compiled(block, lo, hi, n_threads)
                _ready.add(key)
            else:
                run_blocks(block, lo, hi, n_threads)
        run_seconds = time.perf_counter() - t0 - compile_seconds
    return n_threads, compile_seconds, run_seconds


class RunArgs(NamedTuple):
    """The arguments every run takes, checked (:func:`check_run`)."""

    trials: int
    batch: int
    seed: int
    dtype: np.dtype
    threads: int | None
    first_trial: int


def check_run(trials: Any, batch: Any = 1, seed: Any = 0, dtype: Any = "float64", threads: Any = None,
              first_trial: Any = 0) -> RunArgs:
    """Check the arguments of a run of generated trials, naming the first one that is wrong.

    Parameters
    ----------
    trials : int
        >= 1.
    batch : int
        >= 1.
    seed : int
        >= 0.
    dtype : {"float32", "float64"}
    threads : int, optional
        1 .. the machine's cores; None for all.
    first_trial : int
        >= 0.

    Returns
    -------
    RunArgs
    """
    return RunArgs(check_int("trials", trials), check_int("batch", batch), check_int("seed", seed, minimum=0),
                   check_dtype(dtype), None if threads is None else check_threads(threads),
                   check_int("first_trial", first_trial, minimum=0))

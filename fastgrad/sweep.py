"""Sweeps: grids of configurations run cell by cell into a resumable store.

A *cell* is one configuration of the grid (one model spec); all cells share
the seed, so trial k of every cell uses the same underlying random draws
(common random numbers). Cells run locally one after another (each using all
threads), or as tasks on a Dask cluster whose workers compute while this
process writes the store. Locally, MLP cells that differ only in their scales
(sigma_w, sigma_b and their variances) run together over one draw per trial
(:func:`fastgrad.engine.run_cells`), with the same results bit for bit.
Rerunning the same sweep resumes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from fastgrad import models, rng
from fastgrad import store as store_module
from fastgrad.checks import check_float, check_int
from fastgrad.engine import check_backend, run, run_cells
from fastgrad.executor import check_dtype, check_threads
from fastgrad.version import __version__


@dataclass
class SweepReport:
    """What a sweep did.

    Attributes
    ----------
    store : Path
    cells : int
        Cells in the grid.
    done : int
        Cells computed by this call.
    skipped : int
        Cells already finished in the store.
    recomputed : int
        Cells whose file was truncated or corrupted (moved aside, then recomputed).
    failed : dict of str to str
        Cell id -> error message, for cells that raised.
    seconds : float
    trials_per_second : float
    """

    store: Path
    cells: int = 0
    done: int = 0
    skipped: int = 0
    recomputed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    trials_per_second: float = 0.0

    def __str__(self) -> str:
        return (f"{self.cells} cells: {self.done} done, {self.skipped} skipped (already in the store), "
                f"{self.recomputed} recomputed (bad files set aside), {len(self.failed)} failed; "
                f"{self.trials_per_second:,.0f} trials/s; store: {self.store}")


def _normalise_value(name: str, value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"grid: {name!r} has a non-finite value {value!r}")
        return float(value)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"grid: {name!r} has a value of unsupported type {type(value).__name__}: {value!r}")


def _order(value: Any) -> tuple[int, Any]:
    """Sort key for grid values: None, then numbers by value, then strings."""
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    return (2, json.dumps(value))


def expand_grid(model: str, grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate a grid and list its cells (dicts of parameters), in grid order.

    Parameters
    ----------
    model : str
        A model family's name (``fastgrad.models.REGISTRY``).
    grid : dict
        Parameter name -> a value or a list of values. Names are the fields of the
        model's spec (:class:`fastgrad.MLP`, :class:`fastgrad.RNN`, ...).

    Returns
    -------
    list of dict

    Raises
    ------
    ValueError
        Naming the unknown parameter, the empty range or the bad value.
    """
    family = models.named(model)
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid: expected a non-empty dict of parameter -> values")
    known, required = family.grid_fields()
    axes: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if known is not None and name not in known:
            raise ValueError(f"grid: unknown parameter {name!r} for model {model}; known: {', '.join(known)}")
        vals = list(values) if isinstance(values, (list, tuple, np.ndarray, range)) else [values]
        if not vals:
            raise ValueError(f"grid: {name!r} has no values (empty range)")
        axes[name] = [_normalise_value(name, v) for v in vals]
        if len(set(map(json.dumps, axes[name]))) != len(axes[name]):
            raise ValueError(f"grid: {name!r} lists a value twice")
    missing = [name for name in required if name not in axes]
    if missing:
        raise ValueError(f"grid: model {model} needs {', '.join(missing)} (no default)")
    cells = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    for params in cells:
        try:
            family.spec_of(params)
        except ValueError as err:
            raise ValueError(f"grid: cell {params} is invalid: {err}") from err
    return cells


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: the message says how many cells are saved where, and how to resume."""


SPECTRUM_COLUMNS = ("sv_max", "sv_condition", "lambda_mean", "lambda_var")
"""Per-trial Jacobian-spectrum summaries a sweep with ``spectrum=True`` stores: the largest singular
value, s_max / s_min, and the mean and variance of lambda = s^2 (:class:`fastgrad.spectra.Spectrum`)."""


def compute_cell(model: str, params: dict[str, Any], trials: int, batch: int, seed: int, dtype: str,
                 backend: str, threads: int | None, spectrum: bool = False,
                 first_trial: int = 0) -> dict[str, np.ndarray]:
    """Run trials ``first_trial .. first_trial + trials - 1`` of one cell and return their statistics.

    What a Dask worker computes, and a local sweep cell by cell. With ``spectrum``, also the
    per-trial summaries of the same trials' Jacobian spectra (:data:`SPECTRUM_COLUMNS`;
    recurrent models: dh_S/dh_1).
    """
    return _compute_timed(model, params, trials, batch, seed, dtype, backend, threads, spectrum, first_trial)[0]


def _compute_timed(model: str, params: dict[str, Any], trials: int, batch: int, seed: int, dtype: str,
                   backend: str, threads: int | None, spectrum: bool, first_trial: int) -> tuple[dict[str, np.ndarray],
                                                                                                  float]:
    """:func:`compute_cell` and its run time in seconds (compiling and loading kernels excluded)."""
    spec = models.named(model).spec_of(params)
    res = run(spec, trials=trials, batch=batch, seed=seed, dtype=dtype,
              backend=backend,  # type: ignore[arg-type]
              threads=threads, first_trial=first_trial)
    arrays = dict(res.arrays)
    seconds = res.run_seconds
    if spectrum:
        from fastgrad.spectra import spectrum as jacobian_spectrum

        s = jacobian_spectrum(spec, trials=trials, batch=batch, seed=seed, dtype=dtype, threads=threads,
                              first_trial=first_trial)
        arrays.update(zip(SPECTRUM_COLUMNS, (s.max_singular_value, s.condition, s.mean_squared, s.var_squared),
                          strict=True))
        seconds += s.run_seconds
    return arrays, seconds


SAVE_SECONDS = 5.0
"""Default seconds between saves of a running group's finished trials (``save_every``)."""
CHUNK_SECONDS = 1.0
"""Target seconds of one kernel call in a local sweep: how long Ctrl-C may wait for the call to return."""
GROUP_CELLS = 32
"""The most cells run together over shared draws: one trial of the group must stay short (Ctrl-C), and
sharing draws saves little more beyond (the draws' share of a trial is divided by the group's size)."""


def sweep(
    model: str = "mlp",
    grid: dict[str, Any] | None = None,
    trials: int = 100,
    batch: int = 32,
    seed: int = 0,
    store: str | Path = "runs/sweep",
    dtype: str = "float64",
    backend: Literal["cpu", "cuda"] = "cpu",
    executor: Literal["local", "dask"] = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    max_in_flight: int | None = None,
    spectrum: bool = False,
    save_every: float = SAVE_SECONDS,
    _compute: Callable[..., dict[str, np.ndarray]] | None = None,
) -> SweepReport:
    """Run every cell of a grid into a resumable store, saving finished trials as it goes.

    Locally, cells run one after another on all threads (MLP cells that differ only in
    their scales run together over shared draws), in chunks of about a second of
    compute; the trials finished so far are saved every ``save_every`` seconds, so a
    crash or ``kill -9`` loses at most that much work plus one chunk, and Ctrl-C (or
    SIGTERM) lets the running chunk finish, saves what is finished and stops, within
    about two seconds (a second Ctrl-C or SIGTERM stops at once). Rerunning
    the same sweep resumes it, recomputing nothing that was saved: the store is
    bitwise the one an uninterrupted sweep writes.

    Parameters
    ----------
    model : str
        A model family's name (``fastgrad.models.REGISTRY``: mlp, resmlp, rnn, lstm, gru, chain, ...).
    grid : dict
        Parameter -> value or list of values (see :func:`expand_grid`).
    trials, batch, seed : int
        As for :func:`fastgrad.run`; the same for every cell.
    store : str or Path
        The store's folder, created if missing; default ``runs/sweep`` under the
        current folder (the progress line names it). An existing store of the same
        sweep is resumed; one of another sweep (grid, seed, trials, batch, dtype,
        model) is refused.
    dtype : {"float32", "float64"}
    backend : {"cpu", "cuda"}
    executor : {"local", "dask"}
        ``local`` runs cells in this process; ``dask`` submits pieces of cells (at
        most :data:`DASK_PIECE` trials each) to a cluster and saves each as it returns.
    address : str, optional
        Scheduler address of an existing Dask cluster; default: start a
        ``LocalCluster`` of ``workers`` processes.
    workers : int, optional
        Worker processes of the LocalCluster (default 2).
    threads : int, optional
        Threads per cell (local default: all; LocalCluster default: 1 per worker).
    progress : bool
        Show a progress bar (trials, with throughput and ETA) and print the summary.
    max_in_flight : int, optional
        Pieces submitted to Dask at once (default 2 per worker): bounds memory.
    spectrum : bool
        Also store, per trial, the summaries of its Jacobian's singular values
        (:data:`SPECTRUM_COLUMNS`, from :func:`fastgrad.spectrum` of the same trials;
        MLP, ResMLP, RNN, LSTM and GRU, on the CPU).
    save_every : float
        Seconds between saves of the trials finished in a running cell (>= 0; 0 saves
        after every chunk). Each save writes one small file per running cell.

    Returns
    -------
    SweepReport

    Raises
    ------
    SweepInterrupted
        On Ctrl-C or SIGTERM, after saving what is finished; its message says what is saved.
    """
    cells = expand_grid(model, grid or {})
    trials, batch, seed, dt, save_every = _check_sweep(model, trials, batch, seed, dtype, backend, executor,
                                                       threads, spectrum, save_every)
    family = models.named(model)
    root = store_module.open_store(store, _manifest(model, cells, family, seed, trials, batch, dt, spectrum))
    report = SweepReport(store=root, cells=len(cells))
    todo, saved = _todo(root, cells, trials, report)
    if progress:
        print(f"fastgrad sweep: {len(cells)} cells x {trials} trials into {root} ({report.skipped} cells already "
              f"there); Ctrl-C saves and stops, the same command resumes", file=sys.stderr)
    done_before = report.skipped * trials + sum(int(m.sum()) for m in saved.values())
    bar = tqdm(total=len(cells) * trials, initial=done_before, unit="trial", unit_scale=True,
               desc=f"sweep {root.name}", disable=not progress, smoothing=0.3)
    t0 = time.perf_counter()
    run = _Run(root, trials, saved, report, bar, save_every)
    try:
        with _stop_on_signal() as run.stop:
            if executor == "local":
                _run_local(todo, run, family, model, batch, seed, dt, backend, threads, bool(spectrum), _compute)
            else:
                _run_dask(todo, _compute or compute_cell, run, model, trials, batch, seed, dt, backend, threads,
                          address, workers, max_in_flight, bool(spectrum))
            run.stop.check()  # a signal during the last piece: the sweep is whole, and stops as asked
    except KeyboardInterrupt as err:
        run.save()
        bar.close()
        raise SweepInterrupted(f"interrupted: {report.done + report.skipped} of {len(cells)} cells are saved in "
                               f"{root}{run.in_pieces()}; the same command resumes from there") from err
    except BaseException:
        run.save()
        raise
    bar.close()
    report.seconds = time.perf_counter() - t0
    report.trials_per_second = run.computed / report.seconds if report.seconds > 0 else 0.0
    if progress:
        print(report)
    return report



def _check_sweep(model: str, trials: Any, batch: Any, seed: Any, dtype: Any, backend: Any, executor: Any,
                 threads: Any, spectrum: Any, save_every: Any) -> tuple[int, int, int, str, float]:
    """Step 1 of :func:`sweep`: every argument checked before anything is written or run."""
    trials = check_int("trials", trials)
    batch = check_int("batch", batch)
    seed = check_int("seed", seed, minimum=0)
    dt = check_dtype(dtype).name
    family = models.named(model)
    if backend == "cuda" and family.cpu_only is not None:
        raise ValueError(f"backend: {model} runs on the CPU only ({family.cpu_only}); use backend='cpu'")
    check_backend(backend)
    if executor not in ("local", "dask"):
        raise ValueError(f"executor: unknown {executor!r}; choose local or dask")
    if not isinstance(spectrum, (bool, np.bool_)):
        raise ValueError(f"spectrum: expected True or False, got {spectrum!r}")
    if spectrum and (not family.spectrum or backend != "cpu"):
        known = ", ".join(name for name, m in models.REGISTRY.items() if m.spectrum)
        raise ValueError(f"spectrum: Jacobian spectra are computed for {known}, on the CPU; "
                         f"got model {model!r}, backend {backend!r}")
    save_every = check_float("save_every", save_every)
    if save_every < 0:
        raise ValueError(f"save_every: must be >= 0 seconds, got {save_every}")
    if threads is not None:
        check_threads(threads)
    return trials, batch, seed, dt, save_every


def _manifest(model: str, cells: list[dict[str, Any]], family: models.Model, seed: int, trials: int, batch: int,
              dt: str, spectrum: bool) -> dict[str, Any]:
    """Step 2 of :func:`sweep`: the store's identity (a store of another sweep is refused by it)."""
    # Order-free identity of the grid: each axis's distinct values, sorted.
    canonical_grid = {k: sorted({json.dumps(c[k]): c[k] for c in cells}.values(), key=_order)
                      for k in sorted(cells[0])}
    manifest = {"model": model, "grid": canonical_grid, "seed": seed, "trials": trials, "batch": batch,
                "dtype": dt, "generator": rng.generator("float64" if family.float64_draws else dt),
                "version": __version__}
    if spectrum:  # only when asked: stores written before the option keep their identity
        manifest["spectrum"] = True
    if any(c.get("init") in ("orthogonal", "identity") and (c.get("sigma_w") is not None or c.get("sigma_w2")
                                                             is not None) for c in cells):
        manifest["scales"] = 2  # sigma_w scales orthogonal weights now: older stores of such cells are refused
    return manifest


def _run_local(todo: list[dict[str, Any]], run: _Run, family: models.Model, model: str, batch: int, seed: int,
               dt: str, backend: str, threads: int | None, spectrum: bool,
               compute: Callable[..., dict[str, np.ndarray]] | None) -> None:
    """Step 3 of :func:`sweep`, locally: cells (or groups sharing draws) one after another, in timed chunks."""
    shared = compute is None and family.scale_fields and backend == "cpu" and not spectrum
    groups = _share_draws(family, todo) if shared else [[p] for p in todo]
    pace = _Pace(threads)
    for group in groups:
        run.stop.check()
        run.local_group(group, pace, lambda g, lo, m: _chunk(g, lo, m, model, batch, seed, dt, backend, threads,
                                                             spectrum, compute))

def _todo(root: Path, cells: list[dict[str, Any]], trials: int,
          report: SweepReport) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The cells still to run, and which of their trials are already saved in pieces."""
    todo, saved = [], {}
    for params in cells:
        status = store_module.check_cell(root, params)
        if status == "done":
            store_module.discard_parts(root, params)  # left by a crash after the cell file was written
            report.skipped += 1
            continue
        if status == "corrupt":
            store_module.set_aside(root, params)
            report.recomputed += 1
        todo.append(params)
        saved[store_module.cell_id(params)] = store_module.saved_trials(root, params, trials)
    return todo, saved


def _chunk(group: list[dict[str, Any]], lo: int, m: int, model: str, batch: int, seed: int, dtype: str,
           backend: str, threads: int | None, spectrum: bool,
           custom: Callable[..., dict[str, np.ndarray]] | None) -> tuple[list[dict[str, np.ndarray]], float]:
    """Trials lo .. lo + m - 1 of every cell of a group: their statistics and the run time (compiling excluded)."""
    if len(group) > 1:  # cells that differ only in scales: one draw per trial for all of them
        results = run_cells([models.named(model).spec_of(p) for p in group], trials=m, batch=batch, seed=seed,
                            dtype=dtype, threads=threads, first_trial=lo)
        return [dict(r.arrays) for r in results], sum(r.run_seconds for r in results)
    if custom is not None:
        t0 = time.perf_counter()
        arrays = custom(model, group[0], m, batch, seed, dtype, backend, threads, spectrum, lo)
        return [arrays], time.perf_counter() - t0
    arrays, seconds = _compute_timed(model, group[0], m, batch, seed, dtype, backend, threads, spectrum, lo)
    return [arrays], seconds


class _Pace:
    """Trials per chunk: sized from the last chunk's run time to take about :data:`CHUNK_SECONDS`."""

    def __init__(self, threads: int | None) -> None:
        from fastgrad._numba import max_threads

        self.threads = max_threads() if threads is None else threads
        self.per_trial: float | None = None  # seconds per cell-trial, from the last chunk

    def first(self, cells: int) -> int:
        """The first chunk of a group: a few trials per thread, more when the pace is known."""
        if self.per_trial is None:
            return self.threads
        return max(self.threads, int(CHUNK_SECONDS / (self.per_trial * cells)))

    def next(self, m: int, seconds: float, cells: int) -> int:
        """The next chunk after ``m`` trials took ``seconds`` of run time: at most 4x the last."""
        if seconds <= 0:
            return 4 * m
        self.per_trial = seconds / (m * cells)
        return max(self.threads, min(4 * m, int(CHUNK_SECONDS / (self.per_trial * cells))))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The (lo, hi) runs of True in a bool mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


class _Run:
    """The finished trials of the running cells: buffered, saved as pieces, joined when a cell is whole."""

    def __init__(self, root: Path, trials: int, saved: dict[str, np.ndarray], report: SweepReport, bar: Any,
                 save_every: float) -> None:
        self.root, self.trials, self.saved, self.report, self.bar = root, trials, saved, report, bar
        self.save_every = save_every
        self.pending: dict[str, tuple[dict[str, Any], list[tuple[int, dict[str, np.ndarray]]]]] = {}
        self.last_save = time.monotonic()
        self.computed = 0
        self.pieced = {key for key, mask in saved.items() if mask.any()}  # cells with pieces on disk
        self.stop = _Stop()  # Ctrl-C and SIGTERM, noted by the sweep's signal handlers (_stop_on_signal)

    def add(self, params: dict[str, Any], lo: int, arrays: dict[str, np.ndarray]) -> None:
        """Take trials lo .. of a cell; keep those not saved yet (a resumed group recomputes for its slowest cell)."""
        key = store_module.cell_id(params)
        count = next(iter(arrays.values())).shape[0]
        lacking = ~self.saved[key][lo:lo + count]
        for a, b in _runs(lacking):
            piece = {k: v[a:b] for k, v in arrays.items()}
            self.pending.setdefault(key, (params, []))[1].append((lo + a, piece))
        self.saved[key][lo:lo + count] = True
        new = int(lacking.sum())
        self.computed += new
        self.bar.update(new)

    def save(self) -> None:
        """Write every buffered run of consecutive trials as one piece per cell."""
        while self.pending:
            key, (params, pieces) = next(iter(self.pending.items()))
            pieces.sort(key=lambda p: p[0])
            while pieces:
                lo, first = pieces[0]
                run = [first]
                end = lo + next(iter(first.values())).shape[0]
                while len(run) < len(pieces) and pieces[len(run)][0] == end:
                    nxt = pieces[len(run)][1]
                    run.append(nxt)
                    end += next(iter(nxt.values())).shape[0]
                joined = {k: np.concatenate([p[k] for p in run]) for k in first}
                store_module.write_part(self.root, params, lo, joined)
                self.pieced.add(key)
                del pieces[:len(run)]
            del self.pending[key]
        self.last_save = time.monotonic()

    def maybe_save(self) -> None:
        if time.monotonic() - self.last_save >= self.save_every:
            self.save()

    def finish(self, params: dict[str, Any]) -> None:
        """A cell whose trials are all computed: its cell file, from memory or from its saved pieces."""
        key = store_module.cell_id(params)
        if key not in self.pieced and key in self.pending:  # never saved in pieces: one write, as a whole
            pieces = sorted(self.pending.pop(key)[1], key=lambda p: p[0])
            arrays = {k: np.concatenate([p[1][k] for p in pieces]) for k in pieces[0][1]}
            store_module.write_cell(self.root, params, store_module.cell_table(params, arrays))
        else:
            self.save()
            store_module.finish_cell(self.root, params, self.trials)
        self.report.done += 1
        self.bar.set_postfix(cells=f"{self.report.done + self.report.skipped}/{self.report.cells}", refresh=False)

    def local_group(self, group: list[dict[str, Any]], pace: _Pace,
                    chunk: Callable[[list[dict[str, Any]], int, int], tuple[list[dict[str, np.ndarray]], float]],
                    ) -> None:
        """Run one group (cells sharing draws, or one cell) chunk by chunk over the trials some cell lacks."""
        keys = [store_module.cell_id(p) for p in group]
        missing = np.zeros(self.trials, dtype=bool)
        for key in keys:
            missing |= ~self.saved[key]
        try:
            m = pace.first(len(group))
            for a, b in _runs(missing):
                lo = a
                while lo < b:
                    m = min(m, b - lo)
                    results, seconds = chunk(group, lo, m)
                    for params, arrays in zip(group, results, strict=True):
                        self.add(params, lo, arrays)
                    lo += m
                    m = pace.next(m, seconds, len(group))
                    self.maybe_save()
                    self.stop.check()  # after a chunk (about CHUNK_SECONDS): Ctrl-C or SIGTERM stops here
        except Exception as err:  # a failed cell is reported, the sweep goes on
            if isinstance(err, OSError):  # the store itself failed (disk full, removed): nothing to go on with
                raise
            self.save()
            for params in group:
                self.report.failed[store_module.cell_id(params)] = f"{params}: {err!r}"
            return
        for params in group:
            self.finish(params)

    def in_pieces(self) -> str:
        """Say how many trials of unfinished cells are saved, if any."""
        count = sum(int(mask.sum()) for key, mask in self.saved.items()
                    if not mask.all() or (self.root / store_module.PARTIAL / key).is_dir())
        return f" (and {count:,} trials of unfinished cells)" if count else ""


class _Stop:
    """Ctrl-C and SIGTERM during a sweep: the first is noted, and the sweep stops at its next safe point.

    A handler that raised KeyboardInterrupt at once could raise it inside the thread pool's or the
    store's own code (a lock being taken, a future being waited for, a file being written), and leave
    the process unable to exit; the handler only notes the signal, and :meth:`check`, called between
    pieces of work, raises it. A second signal raises at once: a sweep stuck in one piece still stops.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum: int, frame: Any) -> None:
        """The signal handler: note the first signal, raise KeyboardInterrupt on the second."""
        if self.signum is not None:
            raise self._interrupt(signum)
        self.signum = signum

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came since the sweep began (call it where stopping is safe)."""
        if self.signum is not None:
            raise self._interrupt(self.signum)

    @staticmethod
    def _interrupt(signum: int) -> KeyboardInterrupt:
        return KeyboardInterrupt() if signum == signal.SIGINT else KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[_Stop]:
    """Within the block, Ctrl-C and SIGTERM (a scheduler's preemption, ``kill``) only set a flag (:class:`_Stop`).

    Only in the main thread (the only one a signal handler can be installed from; elsewhere the flag
    is never set). SIGINT is taken only while it raises KeyboardInterrupt (Python's own handler): an
    ignored SIGINT (a background job) or a program's own handler is left alone. The previous handlers
    are restored on leaving.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, stop.handler)}
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, stop.handler)
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: not set from Python


def _share_draws(family: models.Model, todo: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The cells to run, grouped: cells that differ only in scales together (engine.run_cells).

    Groups keep the grid's order of first appearance and hold at most :data:`GROUP_CELLS` cells.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for params in todo:
        key = json.dumps({k: v for k, v in params.items() if k not in family.scale_fields}, sort_keys=True)
        groups.setdefault(key, []).append(params)
    out = []
    for group in groups.values():
        if not family.shares_draws([family.spec_of(p) for p in group]):
            out += [[p] for p in group]
            continue
        out += [group[i:i + GROUP_CELLS] for i in range(0, len(group), GROUP_CELLS)]
    return out


DASK_PIECE = 1024
"""The most trials of one cell in one Dask task: the work a lost task (a killed sweep) costs at most."""


def _run_dask(todo: list[dict[str, Any]], compute: Callable[..., dict[str, np.ndarray]], run: _Run, model: str,
              trials: int, batch: int, seed: int, dtype: str, backend: str, threads: int | None,
              address: str | None, workers: int | None, max_in_flight: int | None, spectrum: bool = False) -> None:
    """Submit the missing pieces of every cell to a Dask cluster; save each piece as it returns."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as err:
        raise RuntimeError("executor='dask' needs dask.distributed: pip install 'fastgrad[dask]'") from err
    pieces = [(params, lo, min(hi, lo + DASK_PIECE)) for params in todo
              for a, hi in _runs(~run.saved[store_module.cell_id(params)]) for lo in range(a, hi, DASK_PIECE)]
    left = {store_module.cell_id(p): 0 for p in todo}
    for params, _, _ in pieces:
        left[store_module.cell_id(params)] += 1
    for params in todo:  # every trial already saved in pieces: only the join is left
        if not left[store_module.cell_id(params)]:
            run.finish(params)
    cluster = None
    if address is None:
        n = check_int("workers", workers) if workers is not None else 2
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
        threads = 1 if threads is None else threads
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
        limit = max_in_flight or 2 * n_workers
        pending: Iterator[tuple[dict[str, Any], int, int]] = iter(pieces)
        by_key: dict[str, tuple[dict[str, Any], int, int]] = {}

        def submit(piece: tuple[dict[str, Any], int, int]) -> Any:
            params, lo, hi = piece
            fut = client.submit(compute, model, params, hi - lo, batch, seed, dtype, backend, threads, spectrum, lo,
                                key=f"fastgrad-cell-{store_module.cell_id(params)}-{lo}", pure=False, retries=3)
            by_key[str(fut.key)] = piece
            return fut

        queue = as_completed([submit(p) for p in itertools.islice(pending, limit)])
        for fut in queue:
            params, lo, hi = by_key.pop(str(fut.key))
            key = store_module.cell_id(params)
            if key not in run.report.failed:
                try:
                    run.add(params, lo, fut.result())
                    run.save()
                    left[key] -= 1
                    if not left[key]:
                        run.finish(params)
                except OSError:
                    raise
                except Exception as err:
                    run.report.failed[key] = f"{params}: {err!r}"
            fut.release()
            run.stop.check()  # after each returned piece: Ctrl-C or SIGTERM stops here
            nxt = next(pending, None)
            if nxt is not None:
                queue.add(submit(nxt))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

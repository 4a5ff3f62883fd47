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

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from fastgrad import rng
from fastgrad import store as store_module
from fastgrad.engine import SCALE_FIELDS, check_backend, check_dtype, run, run_cells, shares_draws
from fastgrad.specs import GRU, LSTM, MLP, RNN, Chain, ResMLP, check_int
from fastgrad.version import __version__

MODELS: dict[str, type] = {"mlp": MLP, "rnn": RNN, "chain": Chain}
MODELS["resmlp"] = ResMLP
MODELS["lstm"] = LSTM
MODELS["gru"] = GRU


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
    model : {"mlp", "resmlp", "rnn", "lstm", "gru", "chain"}
    grid : dict
        Parameter name -> a value or a list of values. Names are the fields of the
        model's spec (:class:`fastgrad.MLP`, :class:`fastgrad.ResMLP`, :class:`fastgrad.RNN`,
        :class:`fastgrad.LSTM`, :class:`fastgrad.GRU` or :class:`fastgrad.Chain`).

    Returns
    -------
    list of dict

    Raises
    ------
    ValueError
        Naming the unknown parameter, the empty range or the bad value.
    """
    if model not in MODELS:
        raise ValueError(f"model: unknown {model!r}; choose one of {', '.join(MODELS)}")
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid: expected a non-empty dict of parameter -> values")
    cls = MODELS[model]
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    axes: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if name not in known:
            raise ValueError(f"grid: unknown parameter {name!r} for model {model}; known: {', '.join(known)}")
        vals = list(values) if isinstance(values, (list, tuple, np.ndarray, range)) else [values]
        if not vals:
            raise ValueError(f"grid: {name!r} has no values (empty range)")
        axes[name] = [_normalise_value(name, v) for v in vals]
        if len(set(map(json.dumps, axes[name]))) != len(axes[name]):
            raise ValueError(f"grid: {name!r} lists a value twice")
    required = [f.name for f in dataclasses.fields(cls)
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in axes]
    if missing:
        raise ValueError(f"grid: model {model} needs {', '.join(missing)} (no default)")
    cells = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    for params in cells:
        try:
            cls(**params)
        except ValueError as err:
            raise ValueError(f"grid: cell {params} is invalid: {err}") from err
    return cells


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: the message says how many cells are saved where, and how to resume."""


SPECTRUM_COLUMNS = ("sv_max", "sv_condition", "lambda_mean", "lambda_var")
"""Per-trial Jacobian-spectrum summaries a sweep with ``spectrum=True`` stores: the largest singular
value, s_max / s_min, and the mean and variance of lambda = s^2 (:class:`fastgrad.spectra.Spectrum`)."""


def compute_cell(model: str, params: dict[str, Any], trials: int, batch: int, seed: int, dtype: str,
                 backend: str, threads: int | None, spectrum: bool = False) -> dict[str, np.ndarray]:
    """Run one cell and return its statistics (what a Dask worker computes).

    With ``spectrum``, also the per-trial summaries of the same trials' Jacobian spectra
    (:data:`SPECTRUM_COLUMNS`; recurrent models: dh_S/dh_1).
    """
    spec = MODELS[model](**params)
    res = run(spec, trials=trials, batch=batch, seed=seed, dtype=dtype,
              backend=backend,  # type: ignore[arg-type]
              threads=threads)
    arrays = dict(res.arrays)
    if spectrum:
        from fastgrad.spectra import spectrum as jacobian_spectrum

        s = jacobian_spectrum(spec, trials=trials, batch=batch, seed=seed, dtype=dtype, threads=threads)
        arrays.update(zip(SPECTRUM_COLUMNS, (s.max_singular_value, s.condition, s.mean_squared, s.var_squared),
                          strict=True))
    return arrays


def sweep(
    model: Literal["mlp", "resmlp", "rnn", "lstm", "gru", "chain"] = "mlp",
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
    _compute: Callable[..., dict[str, np.ndarray]] | None = None,
) -> SweepReport:
    """Run every cell of a grid into a resumable store.

    Parameters
    ----------
    model : {"mlp", "resmlp", "rnn", "lstm", "gru", "chain"}
    grid : dict
        Parameter -> value or list of values (see :func:`expand_grid`).
    trials, batch, seed : int
        As for :func:`fastgrad.run`; the same for every cell.
    store : str or Path
        The store's folder. An existing store of the same sweep is resumed; one
        of another sweep (grid, seed, trials, batch, dtype, model) is refused.
    dtype : {"float32", "float64"}
    backend : {"cpu", "cuda"}
    executor : {"local", "dask"}
        ``local`` runs cells in this process; ``dask`` submits them to a cluster.
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
        Cells submitted to Dask at once (default 2 per worker): bounds memory.
    spectrum : bool
        Also store, per trial, the summaries of its Jacobian's singular values
        (:data:`SPECTRUM_COLUMNS`, from :func:`fastgrad.spectrum` of the same trials;
        MLP, ResMLP, RNN, LSTM and GRU, on the CPU).

    Returns
    -------
    SweepReport
    """
    cells = expand_grid(model, grid or {})
    trials = check_int("trials", trials)
    batch = check_int("batch", batch)
    seed = check_int("seed", seed, minimum=0)
    dt = check_dtype(dtype).name
    from fastgrad.engine import CPU_ONLY

    if backend == "cuda" and MODELS[model] in CPU_ONLY:
        raise ValueError(f"backend: {model} runs on the CPU only ({CPU_ONLY[MODELS[model]]}); use backend='cpu'")
    check_backend(backend)
    if executor not in ("local", "dask"):
        raise ValueError(f"executor: unknown {executor!r}; choose local or dask")
    if not isinstance(spectrum, (bool, np.bool_)):
        raise ValueError(f"spectrum: expected True or False, got {spectrum!r}")
    if spectrum and (model == "chain" or backend != "cpu"):
        raise ValueError(f"spectrum: Jacobian spectra are computed for mlp, resmlp, rnn, lstm and gru, on the CPU; "
                         f"got model {model!r}, backend {backend!r}")
    # Order-free identity of the grid: each axis's distinct values, sorted.
    canonical_grid = {k: sorted({json.dumps(c[k]): c[k] for c in cells}.values(), key=_order)
                      for k in sorted(cells[0])}
    manifest = {"model": model, "grid": canonical_grid, "seed": seed, "trials": trials, "batch": batch,
                "dtype": dt, "generator": rng.generator("float64" if model == "chain" else dt), "version": __version__}
    if spectrum:  # only when asked: stores written before the option keep their identity
        manifest["spectrum"] = True
    root = store_module.open_store(store, manifest)
    report = SweepReport(store=root, cells=len(cells))
    todo = []
    for params in cells:
        status = store_module.check_cell(root, params)
        if status == "done":
            report.skipped += 1
            continue
        if status == "corrupt":
            store_module.set_aside(root, params)
            report.recomputed += 1
        todo.append(params)

    compute = _compute or compute_cell
    bar = tqdm(total=len(cells) * trials, initial=report.skipped * trials, unit="trial", unit_scale=True,
               desc=f"sweep {root.name}", disable=not progress, smoothing=0.1)
    t0 = time.perf_counter()

    def finished(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        store_module.write_cell(root, params, store_module.cell_table(params, arrays))
        report.done += 1
        bar.update(trials)
        bar.set_postfix(cells=f"{report.done + report.skipped}/{len(cells)}", refresh=False)

    try:
        if executor == "local":
            shared = _compute is None and model == "mlp" and backend == "cpu" and not spectrum
            for group in (_share_draws(todo, trials) if shared else [[p] for p in todo]):
                if len(group) > 1:  # cells that differ only in scales: one draw per trial for all of them
                    try:
                        results = run_cells([MLP(**p) for p in group], trials=trials, batch=batch, seed=seed,
                                            dtype=dt, threads=threads)
                    except ValueError:  # not shareable after all: cell by cell below
                        pass
                    else:
                        for params, res in zip(group, results, strict=True):
                            finished(params, dict(res.arrays))
                        continue
                for params in group:
                    try:
                        finished(params, compute(model, params, trials, batch, seed, dt, backend, threads,
                                                 bool(spectrum)))
                    except Exception as err:  # a failed cell is reported, the sweep goes on
                        report.failed[store_module.cell_id(params)] = f"{params}: {err!r}"
        else:
            _run_dask(todo, compute, finished, report, model, trials, batch, seed, dt, backend, threads, address,
                      workers, max_in_flight, bool(spectrum))
    except KeyboardInterrupt as err:
        bar.close()
        raise SweepInterrupted(f"interrupted: {report.done + report.skipped} of {len(cells)} cells are saved in "
                               f"{root}; the same command resumes from there") from err
    bar.close()
    report.seconds = time.perf_counter() - t0
    report.trials_per_second = report.done * trials / report.seconds if report.seconds > 0 else 0.0
    if progress:
        print(report)
    return report


SHARED_BYTES = 256 * 2**20
"""The most result memory one group of cells run over shared draws may hold before it is written."""


def _share_draws(todo: list[dict[str, Any]], trials: int) -> list[list[dict[str, Any]]]:
    """The MLP cells to run, grouped: cells that differ only in scales together (engine.run_cells).

    Groups keep the grid's order of first appearance; each holds at most
    :data:`SHARED_BYTES` of results (4 statistics x trials x depth x 8 bytes per cell).
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for params in todo:
        key = json.dumps({k: v for k, v in params.items() if k not in SCALE_FIELDS}, sort_keys=True)
        groups.setdefault(key, []).append(params)
    out = []
    for group in groups.values():
        if not shares_draws([MLP(**p) for p in group]):
            out += [[p] for p in group]
            continue
        per_cell = 4 * trials * MLP(**group[0]).depth * 8
        size = max(1, SHARED_BYTES // per_cell)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


def _run_dask(todo: list[dict[str, Any]], compute: Callable[..., dict[str, np.ndarray]],
              finished: Callable[[dict[str, Any], dict[str, np.ndarray]], None], report: SweepReport, model: str,
              trials: int, batch: int, seed: int, dtype: str, backend: str, threads: int | None,
              address: str | None, workers: int | None, max_in_flight: int | None, spectrum: bool = False) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as err:
        raise RuntimeError("executor='dask' needs dask.distributed: pip install 'fastgrad[dask]'") from err
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
        pending: Iterator[dict[str, Any]] = iter(todo)
        by_key: dict[str, dict[str, Any]] = {}

        def submit(params: dict[str, Any]) -> Any:
            fut = client.submit(compute, model, params, trials, batch, seed, dtype, backend, threads, spectrum,
                                key=f"fastgrad-cell-{store_module.cell_id(params)}", pure=False, retries=3)
            by_key[str(fut.key)] = params
            return fut

        queue = as_completed([submit(p) for p in itertools.islice(pending, limit)])
        for fut in queue:
            params = by_key.pop(str(fut.key))
            try:
                finished(params, fut.result())
            except Exception as err:
                report.failed[store_module.cell_id(params)] = f"{params}: {err!r}"
            fut.release()
            nxt = next(pending, None)
            if nxt is not None:
                queue.add(submit(nxt))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

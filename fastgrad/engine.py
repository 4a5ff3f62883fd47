"""Running generated trials: validation, backend dispatch, chunking, threads, timing."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

from fastgrad import lowering
from fastgrad._numba import max_threads
from fastgrad.executor import (
    Block,
    available_memory,
    check_dtype,
    check_threads,
    run_chunks,
)
from fastgrad.kernels import cpu_chain, cpu_gru, cpu_lstm, cpu_mlp, cpu_resmlp, cpu_rnn
from fastgrad.results import Result
from fastgrad.specs import GRU, LSTM, MLP, RNN, Chain, ResMLP, check_choice, check_int
from fastgrad.version import __version__

BACKENDS = ("cpu", "cuda")
DEFAULT_CHUNK = 4096
CHAIN_CHUNK = 65536
"""A chain trial takes ~1 us: smaller chunks would spend a measurable share handing blocks to threads."""


def check_backend(backend: str) -> str:
    """Return ``backend`` if it can run here, else raise naming the argument and the reason."""
    check_choice("backend", backend, BACKENDS)
    if backend == "cuda":
        from fastgrad import gpu

        gpu.require()
    return backend


def _mlp_plan(spec: MLP, trials: int, batch: int, seed: int,
              dt: np.dtype, first: int = 0) -> tuple[dict[str, np.ndarray], Block, Any]:
    net, init = lowering.mlp(spec, dt.name)
    stats = lowering.mlp_stats(trials, spec.depth, dt)

    def block(lo: int, hi: int) -> None:
        cpu_mlp.generated(net, init, seed, first, batch, stats, lo, hi)

    return dict(stats._asdict()), block, (cpu_mlp.generated, dt.name, net.hidden, net.last, init.draw)


def _chain_plan(spec: Chain, trials: int, batch: int, seed: int,
                dt: np.dtype, first: int = 0) -> tuple[dict[str, np.ndarray], Block, Any]:
    net, init = lowering.chain(spec, dt.name)
    stats = lowering.chain_stats(trials, spec.depth, dt)

    def block(lo: int, hi: int) -> None:
        cpu_chain.generated(net, init, seed, first, stats, lo, hi)

    arrays = dict(stats._asdict())
    arrays["delta"] = arrays["grad_b"]  # width 1, batch 1: |dC/dz_l| = |dC/db_l|; one array, two names
    return arrays, block, (cpu_chain.generated, dt.name, net.act)


def _rnn_plan(spec: RNN, trials: int, batch: int, seed: int,
              dt: np.dtype, first: int = 0) -> tuple[dict[str, np.ndarray], Block, Any]:
    net, init = lowering.rnn(spec, dt.name)
    stats = lowering.rnn_stats(trials, spec.steps, spec.jacobian, dt)

    def block(lo: int, hi: int) -> None:
        cpu_rnn.generated(net, init, seed, first, batch, stats, lo, hi)

    return rnn_arrays(stats, spec.jacobian), block, (cpu_rnn.generated, dt.name, net.act, init.draw, spec.jacobian)


def rnn_arrays(stats: cpu_rnn.Stats, jacobian: bool) -> dict[str, np.ndarray]:
    """The result arrays of an RNN run: the (T, S) statistics, the three totals as (T,) columns, the Jacobian norms."""
    arrays = {"grad_h": stats.grad_h, "grad_whh_step": stats.grad_whh_step, "q": stats.q}
    if jacobian:
        arrays["jacobian_norm"] = stats.jac
    # Views of the (T, 3) totals: filled as the kernel writes them.
    arrays.update({m: stats.totals[:, i] for i, m in enumerate(("grad_whh", "grad_wxh", "grad_b"))})
    return arrays


_PLANS = {MLP: _mlp_plan, Chain: _chain_plan, RNN: _rnn_plan}


def _resmlp_plan(spec: ResMLP, trials: int, batch: int, seed: int,
                 dt: np.dtype, first: int = 0) -> tuple[dict[str, np.ndarray], Block, Any]:
    net, init = lowering.resmlp(spec, dt.name)
    stats = lowering.resmlp_stats(trials, spec.depth, dt)

    def block(lo: int, hi: int) -> None:
        cpu_resmlp.generated(net, init, seed, first, batch, stats, lo, hi)

    return dict(stats._asdict()), block, (cpu_resmlp.generated, dt.name, net.hidden, net.last, init.draw)


_PLANS[ResMLP] = _resmlp_plan


LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")


def gated_arrays(stats: cpu_lstm.Stats | cpu_gru.Stats, gates: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The result arrays of an LSTM or GRU run, as views of the kernel's outputs.

    (T, S): ``grad_h`` (and the LSTM's ``grad_c``), ``q``, ``grad_whh_step`` and
    ``grad_whh_<gate>_step`` per gate; (T,): ``grad_whh``, ``grad_whh_<gate>``,
    ``grad_wxh`` and the biases' ``grad_b`` (LSTM) or ``grad_b_ih``, ``grad_b_hh`` (GRU); with the
    Jacobian norms, (T, S) ``jacobian_norm`` = ||dh_S/dh_t||_F and the LSTM's ``jacobian_c_norm`` =
    ||dc_S/dc_t||_F of the batch's first sequence.
    """
    arrays = {"grad_h": stats.grad_h}
    if isinstance(stats, cpu_lstm.Stats):
        arrays["grad_c"] = stats.grad_c
    arrays["q"] = stats.q
    names = ["grad_whh"] + [f"grad_whh_{g}" for g in gates]
    arrays.update({name + "_step": stats.step[:, :, k] for k, name in enumerate(names)})
    biases = ["grad_b"] if len(gates) == 4 else ["grad_b_ih", "grad_b_hh"]
    arrays.update({name: stats.totals[:, k] for k, name in enumerate(names + ["grad_wxh"] + biases)})
    if stats.jac.shape[1]:
        arrays["jacobian_norm"] = stats.jac
        if isinstance(stats, cpu_lstm.Stats):
            arrays["jacobian_c_norm"] = stats.jac_c
    return arrays


def _lstm_plan(spec: LSTM, trials: int, batch: int, seed: int,
               dt: np.dtype, first: int = 0) -> tuple[dict[str, np.ndarray], Block, Any]:
    net, init = lowering.gated(spec, dt.name)
    stats = lowering.lstm_stats(trials, spec.steps, spec.jacobian, dt)

    def block(lo: int, hi: int) -> None:
        cpu_lstm.generated(net, init, seed, first, batch, stats, lo, hi)

    return gated_arrays(stats, LSTM_GATES), block, (cpu_lstm.generated, dt.name, init.draw, spec.jacobian)


def _gru_plan(spec: GRU, trials: int, batch: int, seed: int,
              dt: np.dtype, first: int = 0) -> tuple[dict[str, np.ndarray], Block, Any]:
    net, init = lowering.gated(spec, dt.name)
    stats = lowering.gru_stats(trials, spec.steps, spec.jacobian, dt)

    def block(lo: int, hi: int) -> None:
        cpu_gru.generated(net, init, seed, first, batch, stats, lo, hi)

    return gated_arrays(stats, GRU_GATES), block, (cpu_gru.generated, dt.name, init.draw, spec.jacobian)


_PLANS[LSTM] = _lstm_plan
_PLANS[GRU] = _gru_plan
CPU_ONLY: dict[type, str] = {
    ResMLP: "no CUDA kernel has residual blocks or LayerNorm",
    LSTM: "the gated cells have CPU kernels only so far",
    GRU: "the gated cells have CPU kernels only so far",
}
"""Models without a CUDA kernel, and why: refused by name before anything runs."""


_STATISTICS: dict[type, int] = {MLP: 4, ResMLP: 5, Chain: 4, RNN: 4, LSTM: 10, GRU: 8}
"""Output arrays of one layer (step) of a trial, per model, counting the opt-in Jacobian norms."""


def memory_need(spec: Any, trials: int, batch: int, dtype: np.dtype, threads: int | None,
                cells: int = 1) -> tuple[int, int]:
    """Estimated bytes a run needs: ``(results, working)``.

    ``results`` are the per-trial statistics of ``cells`` cells (the output arrays);
    ``working`` is one trial's weights, inputs and activations per thread. Estimates,
    within a small factor: enough to refuse a run that cannot fit before it allocates.
    """
    item = dtype.itemsize
    depth = spec.depth
    results = cells * trials * _STATISTICS.get(type(spec), 4) * depth * item
    if isinstance(spec, Chain):
        per_trial = 8 * depth
    elif isinstance(spec, (MLP, ResMLP)):
        dims = [int(d) for d in spec.dims]
        per_trial = sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True)) + 4 * batch * sum(dims)
    else:  # recurrent cells: G gate blocks of (n + d) x n weights, every step's activations kept for BPTT
        gates = {LSTM: 4, GRU: 3}.get(type(spec), 1)
        n, d = spec.hidden, spec.inputs
        per_trial = gates * (n * n + d * n + 2 * n) + spec.steps * batch * (d + (2 * gates + 2) * n)
    n_threads = max_threads() if threads is None else threads
    return results, per_trial * item * n_threads * cells


def check_memory(spec: Any, trials: int, batch: int, dtype: np.dtype, threads: int | None, cells: int = 1) -> None:
    """Refuse a run whose estimated memory (:func:`memory_need`) exceeds what is available, naming what to change."""
    results, working = memory_need(spec, trials, batch, dtype, threads, cells)
    free = available_memory()
    gib = 2.0**30
    if working > free:
        raise ValueError(f"width: one trial of this {type(spec).__name__} needs about {working / gib:.3g} GiB of "
                         f"working memory over {max_threads() if threads is None else threads} thread(s), and "
                         f"{free / gib:.3g} GiB are available; reduce the width, depth (steps), batch or threads")
    if results + working > free:
        per = results / (trials * cells)
        raise ValueError(f"trials: {trials * cells:,} trials need about {results / gib:.3g} GiB for their statistics "
                         f"({per:,.0f} bytes each) and {free / gib:.3g} GiB are available; run at most "
                         f"{max(int((free - working) // per), 0):,} trials per call, or use fastgrad.sweep, which "
                         "saves its cells in pieces")


def run(
    spec: MLP | ResMLP | Chain | RNN | LSTM | GRU,
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
    spec : MLP, ResMLP, Chain, RNN, LSTM or GRU
        The model (ResMLP, LSTM and GRU: CPU only).
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
        ``jacobian_norm`` for RNN; for LSTM and GRU see :func:`gated_arrays`), with timings.
    """
    plan = _PLANS.get(type(spec))
    if plan is None:
        raise ValueError(f"spec: expected fastgrad.MLP, ResMLP, Chain, RNN, LSTM or GRU, got {type(spec).__name__}")
    trials = check_int("trials", trials)
    batch = 1 if isinstance(spec, Chain) else check_int("batch", batch)
    seed = check_int("seed", seed, minimum=0)
    first_trial = check_int("first_trial", first_trial, minimum=0)
    dt = check_dtype(dtype)
    if backend == "cuda" and type(spec) in CPU_ONLY:
        raise ValueError(f"backend: {type(spec).__name__} runs on the CPU only ({CPU_ONLY[type(spec)]}); "
                         "use backend='cpu'")
    check_backend(backend)
    if threads is not None:
        check_threads(threads)
    if backend == "cuda" and not isinstance(spec, (ResMLP, LSTM, GRU)):  # (refused above: narrows the type)
        return _run_cuda(spec, trials, batch, seed, dt, None if chunk is None else check_int("chunk", chunk),
                         first_trial)
    default = CHAIN_CHUNK if isinstance(spec, Chain) else DEFAULT_CHUNK
    chunk = default if chunk is None else check_int("chunk", chunk)
    check_memory(spec, trials, batch, dt, threads)
    arrays, block, kernel_key = plan(spec, trials, batch, seed, dt, first_trial)  # type: ignore[operator]

    n_threads, compile_seconds, run_seconds = run_chunks(block, kernel_key, trials, chunk, threads)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    return Result(arrays, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend=backend,
                  version=__version__, threads=n_threads, compile_seconds=compile_seconds, run_seconds=run_seconds)


_cuda_warm: set[tuple[str, str]] = set()


def _run_cuda(spec: MLP | Chain | RNN, trials: int, batch: int, seed: int, dt: np.dtype,
              chunk: int | None, first_trial: int = 0) -> Result:
    from fastgrad import gpu

    compile_seconds = 0.0
    key = (type(spec).__name__ + "-cuda", dt.name)
    if key not in _cuda_warm:
        t0 = time.perf_counter()
        gpu.run_cuda(spec, 1, batch, seed, dt, 1, first_trial)
        compile_seconds = time.perf_counter() - t0
        _cuda_warm.add(key)
    t0 = time.perf_counter()
    arrays = gpu.run_cuda(spec, trials, batch, seed, dt, chunk, first_trial)
    run_seconds = time.perf_counter() - t0
    return Result(arrays, spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend="cuda",
                  version=__version__, threads=1, compile_seconds=compile_seconds, run_seconds=run_seconds)


SCALE_FIELDS = ("sigma_w", "sigma_w2", "sigma_b", "sigma_b2")
"""The MLP fields that set only the scales of the draws: cells differing in nothing else share them."""


def shares_draws(specs: list[Any]) -> bool:
    """Whether ``specs`` can run together over one draw per trial (:func:`run_cells`).

    They must be MLPs equal in every field but :data:`SCALE_FIELDS`, whose weights and
    biases are all drawn as NORMAL (``normal``, ``scaled_normal``, the Xavier, He and
    LeCun normals) or CONSTANT (zero biases) tensors.

    Parameters
    ----------
    specs : list of specs

    Returns
    -------
    bool
    """
    import dataclasses

    from fastgrad.codes import CONSTANT, NORMAL

    if len(specs) < 2 or not all(type(s) is MLP for s in specs):
        return False
    rest = [{k: v for k, v in dataclasses.asdict(s).items() if k not in SCALE_FIELDS} for s in specs]
    if any(r != rest[0] for r in rest[1:]):
        return False
    for s in specs:
        w_kind, _, b_kind, _ = s.layer_inits()
        if not (np.isin(w_kind, (NORMAL, CONSTANT)).all() and np.isin(b_kind, (NORMAL, CONSTANT)).all()):
            return False
    return True


def run_cells(specs: list[MLP], trials: int, batch: int = 32, seed: int = 0, dtype: str = "float64",
              threads: int | None = None, chunk: int | None = None, first_trial: int = 0) -> list[Result]:
    """Run MLPs that differ only in their scales together, over one draw per trial.

    Trial k's standard normals, inputs and targets are drawn once and scaled for every
    spec (a sweep over sigma_w^2 x sigma_b^2 draws the same numbers in every cell:
    common random numbers). Each result is bitwise the result of :func:`run` of its spec
    alone; only the time differs. Working memory is one trial's draws and activations
    per thread; the results are K (trials, L) arrays of each statistic.

    Parameters
    ----------
    specs : list of MLP
        At least two, equal in every field but ``sigma_w``, ``sigma_w2``, ``sigma_b``,
        ``sigma_b2``, drawn with normal or constant tensors (:func:`shares_draws`).
    trials, batch, seed, dtype, threads, chunk, first_trial
        As for :func:`run`.

    Returns
    -------
    list of Result
        One per spec, in order.
    """
    if not shares_draws(specs):
        raise ValueError("specs: run_cells takes two or more fastgrad.MLP specs that differ only in sigma_w, "
                         "sigma_w2, sigma_b, sigma_b2, with normal (or Xavier, He, LeCun normal) weights and normal "
                         "or zero biases; run the others one by one with fastgrad.run")
    trials = check_int("trials", trials)
    batch = check_int("batch", batch)
    seed = check_int("seed", seed, minimum=0)
    first_trial = check_int("first_trial", first_trial, minimum=0)
    dt = check_dtype(dtype)
    if threads is not None:
        check_threads(threads)
    chunk = DEFAULT_CHUNK if chunk is None else check_int("chunk", chunk)
    check_memory(specs[0], trials, batch, dt, threads, cells=len(specs))
    net, init = lowering.mlp(specs[0], dt.name)
    inits = [s.layer_inits() for s in specs]
    w_kind, w_scale, b_kind, b_scale = (np.ascontiguousarray(np.stack([i[k] for i in inits])) for k in range(4))
    depth = specs[0].depth
    out = [np.empty((len(specs), trials, depth), dtype=dt) for _ in range(4)]

    def block(lo: int, hi: int) -> None:
        cpu_mlp.generated_cells(net, init, w_kind, w_scale, b_kind, b_scale, seed, first_trial, batch, *out, lo, hi)

    key = (cpu_mlp.generated_cells, dt.name, net.hidden, net.last, init.draw)
    n_threads, compile_seconds, run_seconds = run_chunks(block, key, trials, chunk, threads)
    names = ("grad_w", "grad_b", "delta", "q")
    return [Result({name: np.ascontiguousarray(arr[c]) for name, arr in zip(names, out, strict=True)}, spec=spec,
                   seed=seed, trials=trials, batch=batch, dtype=dt.name, backend="cpu", version=__version__,
                   threads=n_threads, compile_seconds=compile_seconds / len(specs),
                   run_seconds=run_seconds / len(specs))
            for c, spec in enumerate(specs)]

"""fastgrad side by side with NumPy, PyTorch and JAX, on identical arrays.

Usage: python scripts/compare_peers.py [--repeats 5] [--out results/peers] [--quick]

Every implementation runs in its own subprocess (thread pools of different
libraries slow each other down on 2 cores when they share a process), on the
same arrays, saved once by this script. For each it reports the median
trials/s over the repeats (min-max), the first call (compile) separately,
GFLOP/s, the fraction of the machine's same-shape matmul throughput (MLP),
its largest relative difference from fastgrad, and fastgrad / best peer.
torch and jax are optional (``pip install 'fastgrad[peers]'``); absent ones
are skipped and said so. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fastgrad as fg  # noqa: E402
from benchmarks import peers  # noqa: E402
from benchmarks.workloads import (  # noqa: E402
    W_MLP_BATCH,
    W_MLP_VARIANTS,
    W_RNN,
    W_RNN_BATCH,
    W_TRANSFORMER,
    W_TRANSFORMER_BATCH,
    matmul_peak,
    mlp_flops,
    rnn_flops,
    transformer_flops,
)

MLPS = {f"W-mlp {name}": spec for name, spec in W_MLP_VARIANTS.items()}
RNNS = {f"W-rnn g={g}": spec for g, spec in W_RNN.items()}
CHAIN = ("chain", fg.Chain(depth=30, activation="sigmoid"))
IMPLS = {
    "mlp": ["fastgrad", "fastgrad generated", "numpy batched", "torch loop", "torch batched", "torch compile",
            "jax vmap"],
    "rnn": ["fastgrad", "fastgrad generated", "numpy batched", "torch batched", "torch compile", "jax vmap"],
    "chain": ["fastgrad", "fastgrad generated", "numpy batched", "torch batched", "jax vmap"],
    "transformer": ["fastgrad", "fastgrad generated", "torch batched", "torch compile", "jax vmap"],
}
TRANSFORMER = ("W-transformer", W_TRANSFORMER)
TRANSFORMER_ARRAYS = ("W_q", "W_k", "W_v", "W_o", "W_1", "W_2", "x", "y")


def _spec(workload: str) -> tuple[str, object]:
    if workload in MLPS:
        return "mlp", MLPS[workload]
    if workload in RNNS:
        return "rnn", RNNS[workload]
    if workload == TRANSFORMER[0]:
        return "transformer", TRANSFORMER[1]
    return "chain", CHAIN[1]


def _save_arrays(workload: str, trials: int, dtype: str, path: Path) -> None:
    kind, spec = _spec(workload)
    if kind == "mlp":
        W, b, x, y = fg.mlp_trial_arrays(spec, 0, trials, W_MLP_BATCH, dtype)
        arrays = {**{f"W{l}": w for l, w in enumerate(W)}, **{f"b{l}": v for l, v in enumerate(b)}, "x": x, "y": y}
    elif kind == "transformer":
        arrays = dict(zip(TRANSFORMER_ARRAYS, fg.transformer_trial_arrays(spec, 0, trials, W_TRANSFORMER_BATCH, dtype),
                          strict=True))
    elif kind == "rnn":
        whh, wxh, bias, x, y = fg.rnn_trial_arrays(spec, 0, trials, W_RNN_BATCH, dtype)
        arrays = {"W_hh": whh, "W_xh": wxh, "b": bias, "x": x, "y": y}
    else:
        w, b, x, y = fg.chain_trial_arrays(spec, 0, trials, dtype)
        arrays = {"w": w, "b": b, "x": x, "y": y}
    np.savez(path, **arrays)


def _load_arrays(path: str) -> dict[str, object]:
    data = dict(np.load(path))
    if "W0" in data:
        depth = sum(1 for k in data if k.startswith("W"))
        return {"W": [data[f"W{l}"] for l in range(depth)], "b": [data[f"b{l}"] for l in range(depth)],
                "x": data["x"], "y": data["y"]}
    return data


def _implementation(impl: str, workload: str, dtype: str):  # type: ignore[no-untyped-def]
    kind, spec = _spec(workload)
    act = spec.activation
    if impl == "fastgrad":
        if kind == "mlp":  # equal widths: the layers as one (T, L, n, n) array, which fastgrad takes without a copy
            return lambda a: fg.mlp_backprop(a["W_stacked"], a["b_stacked"], a["x"], a["y"], activation=act).arrays
        if kind == "rnn":
            return lambda a: fg.rnn_backprop(a["W_hh"], a["W_xh"], a["b"], a["x"], a["y"], activation=act).arrays
        if kind == "transformer":
            return lambda a: fg.transformer_backprop(*(a[k] for k in TRANSFORMER_ARRAYS), heads=spec.heads).arrays
        return lambda a: {"dc_db": fg.chain_backprop(a["w"], a["b"], a["x"], a["y"], activation=act)}
    if impl == "fastgrad generated":
        batch = {"mlp": W_MLP_BATCH, "transformer": W_TRANSFORMER_BATCH}.get(kind, W_RNN_BATCH)
        return lambda a: fg.run(spec, trials=_trials(a), batch=batch, dtype=dtype).arrays
    if impl == "numpy batched":
        return lambda a: getattr(peers, f"numpy_{kind}")(a, act)
    if impl == "torch loop":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        return lambda a: peers.torch_mlp_loop(a, act)
    if impl == "torch batched":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        if kind == "transformer":
            return lambda a: peers.torch_transformer_batched(a, spec.heads)
        fn = {"mlp": peers.torch_mlp_batched, "rnn": peers.torch_rnn_batched, "chain": peers.torch_chain}[kind]
        return lambda a: fn(a, act)
    if impl == "torch compile":  # the first call compiles: the worker times it apart
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        if kind == "transformer":
            return peers.torch_compiled_transformer(spec.heads)
        return peers.torch_compiled_mlp(act) if kind == "mlp" else peers.torch_compiled_rnn(act)
    if impl == "jax vmap":
        import jax

        jax.config.update("jax_enable_x64", dtype == "float64")
        import jax.numpy as jnp

        fn = (peers.jax_transformer(spec.heads) if kind == "transformer" else
              {"mlp": peers.jax_mlp, "rnn": peers.jax_rnn, "chain": peers.jax_chain}[kind](act))

        def run(a):  # type: ignore[no-untyped-def]
            dev = {k: ([jnp.asarray(v) for v in a[k]] if isinstance(a[k], list) else jnp.asarray(a[k])) for k in a}
            out = fn(dev)
            return {k: np.asarray(jax.block_until_ready(v)) for k, v in out.items()}

        return run
    raise ValueError(f"impl: unknown {impl!r}")


def _trials(a: dict[str, object]) -> int:
    x = a["x"]
    return int(x.shape[0])  # type: ignore[attr-defined]


def worker(args: argparse.Namespace) -> None:
    """Time one implementation on one workload's arrays; write its statistics and timings."""
    arrays = _load_arrays(args.data)
    if args.impl == "fastgrad" and "W" in arrays:
        arrays["W_stacked"] = np.stack(arrays["W"], axis=1)  # type: ignore[arg-type]
        arrays["b_stacked"] = np.stack(arrays["b"], axis=1)  # type: ignore[arg-type]
    fn = _implementation(args.impl, args.workload, args.dtype)
    t0 = time.perf_counter()
    out = fn(arrays)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = fn(arrays)
        times.append(time.perf_counter() - t0)
    np.savez(args.result + ".npz", **{k: np.asarray(v) for k, v in out.items()})
    Path(args.result + ".json").write_text(json.dumps({"first": first, "times": times, "trials": _trials(arrays)}))


def _available(impl: str) -> bool:
    mod = {"torch loop": "torch", "torch batched": "torch", "torch compile": "torch", "jax vmap": "jax"}.get(impl)
    if mod is None:
        return True
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def _max_rel_error(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for k, v in got.items():
        if k not in ref:
            continue
        r = np.asarray(ref[k], dtype=np.float64)
        g = np.asarray(v, dtype=np.float64).reshape(r.shape)
        mask = np.isfinite(r) & (np.abs(r) > 1e-300)
        if mask.any():
            worst = max(worst, float(np.max(np.abs(g[mask] - r[mask]) / np.abs(r[mask]))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "results" / "peers"))
    parser.add_argument("--quick", action="store_true", help="fewer trials and workloads (a smoke run)")
    parser.add_argument("--only", help="run only this workload (e.g. W-transformer)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    workloads = [*MLPS, *RNNS, CHAIN[0], TRANSFORMER[0]]
    trials = {"mlp": 128, "rnn": 64, "chain": 200_000, "transformer": 64}
    if args.quick:
        workloads = ["W-mlp tanh", "W-rnn g=1.0", "chain", TRANSFORMER[0]]
        trials = {"mlp": 16, "rnn": 8, "chain": 10_000, "transformer": 4}
    if args.only:
        workloads = [args.only]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    peaks = {dt: matmul_peak(dt, args.repeats, 128) for dt in ("float64", "float32")}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in workloads:
            kind, spec = _spec(workload)
            for dtype in ("float64", "float32"):
                data = Path(tmp) / f"{workload}-{dtype}.npz".replace(" ", "_").replace("=", "")
                _save_arrays(workload, trials[kind], dtype, data)
                results = {}
                for impl in IMPLS[kind]:
                    if not _available(impl):
                        print(f"skip {impl}: not installed", file=sys.stderr)
                        continue
                    stem = str(Path(tmp) / f"r-{len(rows)}-{impl.replace(' ', '_')}")
                    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--workload", workload,
                           "--dtype", dtype, "--data", str(data), "--result", stem, "--repeats", str(args.repeats)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(f"{impl} on {workload} {dtype} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                        continue
                    timing = json.loads(Path(stem + ".json").read_text())
                    stats = dict(np.load(stem + ".npz"))
                    results[impl] = (timing, stats)
                ref = results.get("fastgrad", (None, {}))[1]
                for impl, (timing, stats) in results.items():
                    rates = [timing["trials"] / t for t in timing["times"]]
                    flops = (mlp_flops(spec, W_MLP_BATCH) if kind == "mlp" else  # type: ignore[arg-type]
                             rnn_flops(spec, W_RNN_BATCH) if kind == "rnn" else  # type: ignore[arg-type]
                             transformer_flops(spec, W_TRANSFORMER_BATCH) if kind == "transformer"  # type: ignore[arg-type]
                             else 0.0)
                    med = float(np.median(rates))
                    rows.append({
                        "workload": workload, "dtype": dtype, "impl": impl, "trials": timing["trials"],
                        "trials_per_s": med, "min": min(rates), "max": max(rates), "first_call_s": timing["first"],
                        "gflops": med * flops / 1e9 if flops else None,
                        "matmul_fraction": med * flops / 1e9 / peaks[dtype] if kind == "mlp" else None,
                        "max_rel_error": _max_rel_error(ref, stats) if impl != "fastgrad" else 0.0,
                    })
                    print(json.dumps(rows[-1]), flush=True)
    import importlib.metadata as metadata

    versions = []
    for pkg in ("numpy", "numba", "torch", "jax"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} absent")
    machine = (f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, fastgrad {fg.__version__}, "
               + ", ".join(versions))
    (out / "peers.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": machine,
                                                "matmul_gflops": peaks, "rows": rows}, indent=2))
    (out / "peers.md").write_text(markdown(rows, machine, peaks))
    print(markdown(rows, machine, peaks))


def markdown(rows: list[dict[str, object]], machine: str, peaks: dict[str, float]) -> str:
    """The comparison as a Markdown table, with fastgrad / best peer per workload."""
    lines = [f"{time.strftime('%Y-%m-%d')}, {machine}; same-shape matmul throughput (W-mlp products, Numba+BLAS): "
             f"{peaks['float64']:.0f} GFLOP/s float64, {peaks['float32']:.0f} float32.", "",
             "| workload | dtype | implementation | trials/s median [min-max] | first call s | GFLOP/s | "
             "of matmul peak | max rel. diff. from fastgrad | fastgrad / this |",
             "|---|---|---|---|---|---|---|---|---|"]
    by_case: dict[tuple[object, object], list[dict[str, object]]] = {}
    for r in rows:
        by_case.setdefault((r["workload"], r["dtype"]), []).append(r)
    for case, group in by_case.items():
        fast = next((r for r in group if r["impl"] == "fastgrad"), None)
        peer_rates = [float(r["trials_per_s"]) for r in group if not str(r["impl"]).startswith("fastgrad")]
        for r in group:
            ratio = (f"{float(fast['trials_per_s']) / float(r['trials_per_s']):.1f}x"
                     if fast and not str(r["impl"]).startswith("fastgrad") else "")
            gf = f"{r['gflops']:.1f}" if r["gflops"] is not None else "-"
            frac = f"{r['matmul_fraction']:.0%}" if r["matmul_fraction"] is not None else "-"
            lines.append(f"| {case[0]} | {case[1]} | {r['impl']} | {r['trials_per_s']:,.0f} "
                         f"[{r['min']:,.0f}-{r['max']:,.0f}] | {r['first_call_s']:.2f} | {gf} | {frac} | "
                         f"{r['max_rel_error']:.1e} | {ratio} |")
        generated = next((r for r in group if r["impl"] == "fastgrad generated"), None)
        if fast and peer_rates:
            lines.append(f"| {case[0]} | {case[1]} | **fastgrad / best peer** | "
                         f"**{float(fast['trials_per_s']) / max(peer_rates):.2f}x** | | | | | |")
        if generated and peer_rates:  # fastgrad drawing its own trials, the peers given theirs
            lines.append(f"| {case[0]} | {case[1]} | **fastgrad generated / best peer** | "
                         f"**{float(generated['trials_per_s']) / max(peer_rates):.2f}x** | | | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Jacobian spectra: fastgrad against PyTorch and JAX, interleaved in one process.

Usage: python scripts/compare_spectra.py [--trials 64] [--repeats 3] [--out results/peers]

Per trial: J = dh_L/dh_0 of a tanh MLP (scaled-normal weights, sigma_w^2 = 1) at one input, and all its
singular values. fastgrad: :func:`fastgrad.spectrum` (drawing its own weights) and, on the same
arrays as the peers, :func:`fastgrad.mlp_jacobian` + NumPy's batched SVD; "torch": vmap(jacrev) over
trials + torch.linalg.svdvals; "jax": jit(vmap(jacfwd)) + jnp.linalg.svd. Widths 64 and 256, depths 32
and 128. Medians of trials/s over the interleaved repeats; first calls (compilation) apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import fastgrad as fg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/peers")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
    except ImportError:
        jax = None
    rows = []
    for width, depth in ((64, 32), (64, 128), (256, 32), (256, 128)):
        trials = max(args.trials // (4 if width == 256 else 1), 4)
        spec = fg.MLP(depth=depth, width=width, activation="tanh", init="scaled_normal", sigma_w2=1.0)
        W, b, x, _ = fg.mlp_trial_arrays(spec, 0, trials, 1)
        tw = [torch.from_numpy(w) for w in W]
        tb = [torch.from_numpy(v) for v in b]
        tx = torch.from_numpy(x[:, 0])

        def f_torch(h, Ws, bs):  # type: ignore[no-untyped-def]
            for w, v in zip(Ws, bs, strict=True):
                h = torch.tanh(h @ w + v)
            return h

        jac_t = torch.func.vmap(torch.func.jacrev(f_torch), in_dims=(0, 0, 0))
        impls = {
            "fastgrad spectrum": lambda: fg.spectrum(spec, trials=trials, batch=1).singular_values,  # noqa: B023
            "fastgrad mlp_jacobian + numpy svd": lambda: np.linalg.svd(
                fg.mlp_jacobian(W, b, x, activation="tanh"), compute_uv=False),  # noqa: B023
            "torch vmap(jacrev) + svdvals": lambda: torch.linalg.svdvals(jac_t(tx, tw, tb)).numpy(),  # noqa: B023
        }
        if jax is not None:
            def f_jax(h, Ws, bs):  # type: ignore[no-untyped-def]
                for w, v in zip(Ws, bs, strict=True):
                    h = jnp.tanh(h @ w + v)
                return h

            jac_j = jax.jit(jax.vmap(lambda h, Ws, bs: jnp.linalg.svd(jax.jacfwd(f_jax)(h, Ws, bs),  # noqa: B023
                                                                        compute_uv=False)))
            jw, jb, jx = [jnp.asarray(w) for w in W], [jnp.asarray(v) for v in b], jnp.asarray(x[:, 0])
            impls["jax jit(vmap(jacfwd)) + svd"] = lambda: np.asarray(jac_j(jx, jw, jb))  # noqa: B023
        first, times, outs = {}, {k: [] for k in impls}, {}
        for name, fn in impls.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            first[name] = time.perf_counter() - t0
        for _ in range(args.repeats):
            for name, fn in impls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        ref = outs["fastgrad spectrum"]
        top = ref[:, :1]
        for name in impls:
            err = float(np.max(np.abs(np.sort(outs[name], axis=1)[:, ::-1] - ref) / top))
            rate = statistics.median(trials / t for t in times[name])
            rows.append({"width": width, "depth": depth, "trials": trials, "implementation": name,
                         "trials_per_s": rate, "first_call_s": first[name], "max_diff_over_smax": err})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spectra.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# Jacobian spectra: fastgrad, PyTorch {torch.__version__}" + (f", JAX {jax.__version__}" if jax else "")
             + f", float64, median of {args.repeats} interleaved repeats", "",
             "| width | depth | trials | implementation | trials/s | first call s | max diff / s_max "
             "| fastgrad / this |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fast = next(q["trials_per_s"] for q in rows if (q["width"], q["depth"]) == (r["width"], r["depth"])
                    and q["implementation"] == "fastgrad spectrum")
        lines.append(f"| {r['width']} | {r['depth']} | {r['trials']} | {r['implementation']} | {r['trials_per_s']:.1f} "
                     f"| {r['first_call_s']:.2f} | {r['max_diff_over_smax']:.1e} | {fast / r['trials_per_s']:.2f} |")
    (out / "spectra.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

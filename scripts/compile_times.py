"""How long a new user waits: compile seconds of every kernel, first-call time of every entry point.

Usage: python scripts/compile_times.py [--only NAME ...] [--root CHECKOUT]

Each entry point runs in a fresh process whose kernel cache is an empty folder
(``FASTGRAD_CACHE_DIR``), as on a fresh install. Per entry point it prints the
wall time of the first call (compiling included, import excluded), then the same
call in a second fresh process that finds the cache the first one left (a new
process on a machine that has compiled before), and the kernels Numba compiled,
from its compile events (``numba.core.event``, ``"numba:compile"``), with their
inclusive seconds. ``--root`` measures another checkout of fastgrad instead (e.g.
``git worktree add /tmp/old COMMIT``), with ``NUMBA_CACHE_DIR`` also pointing at
the empty folder, for before/after tables measured in one session.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ENTRY_POINTS = {
    "run MLP float64": "fg.run(fg.MLP(depth=10, width=16, activation='tanh', init='xavier_normal'), trials=8, batch=4)",
    "run MLP float32": "fg.run(fg.MLP(depth=10, width=16, activation='tanh', init='xavier_normal'), trials=8, "
                       "batch=4, dtype='float32')",
    "run RNN float64": "fg.run(fg.RNN(steps=10, hidden=16, inputs=4), trials=8, batch=4)",
    "run RNN float32": "fg.run(fg.RNN(steps=10, hidden=16, inputs=4), trials=8, batch=4, dtype='float32')",
    "run Chain float64": "fg.run(fg.Chain(depth=10), trials=100)",
    "run Chain float32": "fg.run(fg.Chain(depth=10), trials=100, dtype='float32')",
    "mlp_backprop": "fg.mlp_backprop(*ARR['mlp'], activation='tanh')",
    "rnn_backprop": "fg.rnn_backprop(*ARR['rnn'])",
    "chain_backprop": "fg.chain_backprop(*ARR['chain'])",
    "run MLP orthogonal": "fg.run(fg.MLP(depth=10, width=16, init='orthogonal'), trials=8, batch=4)",
    "run RNN jacobian": "fg.run(fg.RNN(steps=10, hidden=16, inputs=4, jacobian=True), trials=8, batch=4)",
    "run ResMLP": "fg.run(fg.ResMLP(depth=10, width=16, norm='layer'), trials=8, batch=4)",
    "run LSTM": "fg.run(fg.LSTM(steps=10, hidden=16, inputs=4), trials=8, batch=4)",
    "run GRU": "fg.run(fg.GRU(steps=10, hidden=16, inputs=4), trials=8, batch=4)",
    "run IndRNN": "fg.run(fg.IndRNN(steps=10, hidden=16, inputs=4), trials=8, batch=4)",
    "train IndRNN": "fg.train(fg.IndRNN(steps=10, hidden=8, inputs=2), fg.data.adding(samples=64, steps=10), epochs=1, "
                    "batch=8, trials=2)",
    "train RNN": "fg.train(fg.RNN(steps=10, hidden=8, inputs=2), fg.data.adding(samples=64, steps=10), epochs=1, "
                 "batch=8, trials=2)",
    "train LSTM": "fg.train(fg.LSTM(steps=10, hidden=8, inputs=2), fg.data.adding(samples=64, steps=10), epochs=1, "
                  "batch=8, trials=2)",
    "train GRU": "fg.train(fg.GRU(steps=10, hidden=8, inputs=2), fg.data.adding(samples=64, steps=10), epochs=1, "
                 "batch=8, trials=2)",
    "spectrum RNN": "fg.spectrum(fg.RNN(steps=10, hidden=8, inputs=2), trials=4, batch=2)",
    "spectrum LSTM": "fg.spectrum(fg.LSTM(steps=10, hidden=8, inputs=2), trials=4, batch=2)",
    "train MLP": "fg.train(fg.MLP(depth=3, width=8), fg.data.teacher(samples=64, features=4, outputs=3), epochs=1, "
                 "batch=8, trials=2)",
    "run Transformer": "fg.run(fg.Transformer(depth=3, tokens=5, width=8, heads=2), trials=4, batch=3)",
    "train Transformer": "fg.train(fg.Transformer(depth=2, tokens=4, width=8, heads=2), "
                         "fg.data.sort_digits(samples=40, tokens=4, digits=4, width=8), epochs=1, batch=8, trials=2)",
}

# Explicit arrays are made with NumPy, so that making them compiles nothing.
SETUP = r"""
import numpy as np
rng = np.random.default_rng(0)
T, B, n, L = 4, 3, 8, 5
ARR = {
    "mlp": (rng.normal(size=(T, L, n, n)) / 3, rng.normal(size=(T, L, n)), rng.normal(size=(T, B, n)),
            rng.normal(size=(T, B, n))),
    "rnn": (rng.normal(size=(T, n, n)) / 3, rng.normal(size=(T, 2, n)), rng.normal(size=(T, n)),
            rng.normal(size=(T, 6, B, 2)), rng.normal(size=(T, B, n))),
    "chain": (rng.normal(size=(T, L)), rng.normal(size=(T, L)), rng.normal(size=T), rng.normal(size=T)),
}
"""

CHILD = r"""
import json, sys, time
from numba.core import event
t0 = time.perf_counter()
import fastgrad as fg
import_seconds = time.perf_counter() - t0
exec(SETUP)

class Recorder(event.Listener):
    def __init__(self):
        self.starts, self.top = [], []
    def on_start(self, ev):
        self.starts.append(time.perf_counter())
    def on_end(self, ev):
        seconds = time.perf_counter() - self.starts.pop()
        if not self.starts:  # a kernel Python called: its seconds include everything compiled inside it
            d = ev.data["dispatcher"]
            self.top.append([f"{d.py_func.__module__}.{d.py_func.__qualname__}", str(ev.data["args"]), seconds])

rec = Recorder()
event.register("numba:compile", rec)
t0 = time.perf_counter()
exec(STATEMENT)
wall = time.perf_counter() - t0
print(json.dumps({"import": import_seconds, "wall": wall, "kernels": rec.top}))
"""


def measure(statement: str, cache: str, root: str | None = None) -> dict:
    """Run ``statement`` in a fresh process with the kernel cache at ``cache`` (and fastgrad from ``root``)."""
    env = dict(os.environ, FASTGRAD_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache)
    if root:
        env["PYTHONPATH"] = root
    code = f"SETUP = {SETUP!r}\nSTATEMENT = {statement!r}\n" + CHILD
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root)
    if out.returncode:
        sys.exit(f"{statement} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="entry points to measure (default: all)")
    parser.add_argument("--root", help="measure the fastgrad of this checkout instead")
    args = parser.parse_args()
    names = args.only or list(ENTRY_POINTS)
    print("| first call (empty cache) | wall s | compile s (kernels) | cached, new process s | import s |")
    print("|---|---:|---:|---:|---:|")
    details = []
    for name in names:
        with tempfile.TemporaryDirectory() as cache:
            cold = measure(ENTRY_POINTS[name], cache, args.root)
            warm = measure(ENTRY_POINTS[name], cache, args.root)
        compiled = sum(k[2] for k in cold["kernels"])
        print(f"| `{name}` | {cold['wall']:.1f} | {compiled:.1f} | {warm['wall']:.2f} | {cold['import']:.1f} |",
              flush=True)
        details.append((name, cold["kernels"]))
    print("\nKernels compiled per entry point (inclusive seconds):")
    for name, kernels in details:
        print(f"- {name}: " + ", ".join(f"{k[0].removeprefix('fastgrad.')} {k[2]:.1f} s" for k in kernels))


if __name__ == "__main__":
    main()

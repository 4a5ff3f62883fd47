"""How often a sweep sent SIGTERM (or SIGINT) at a random moment fails to exit: the interrupt tests' hang.

Starts the grouped sweep of ``tests/test_sweep_interrupt.py`` in a subprocess (with a CPU hog
beside it, as under a loaded CI machine), waits for its first saved piece plus a random delay,
sends the signal, and counts the runs that saved and exited, exited otherwise, or hung (no exit
within 30 s: the child's threads are then dumped by faulthandler into ``--dumps``).
``--slow-start`` makes every thread start take 0.5 s longer, so that the signal often lands
while the sweep's thread pool starts (its second chunk), where the hang was found.

    python scripts/signal_stress.py --runs 40 --max-delay 3
    python scripts/signal_stress.py --runs 10 --max-delay 0.6 --slow-start
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = {"depth": 12, "width": 48, "init": "scaled_normal", "activation": "tanh",
        "sigma_w2": [0.6, 1.0, 1.4, 1.8, 2.2, 2.6], "sigma_b2": [0.0, 0.05]}
SLOW_START = ("import threading, time\n_start = threading.Thread.start\n"
              "def _slow(self):\n    _start(self)\n    time.sleep(0.5)\n"
              "threading.Thread.start = _slow\n")


def once(store: str, sig: int, delay: float, slow: bool) -> tuple[str, str]:
    """One sweep, signalled ``delay`` s after its first saved piece: (saved | rc<N> | HUNG, its stderr)."""
    code = (SLOW_START if slow else "") + (
        f"import fastgrad; fastgrad.sweep('mlp', {GRID!r}, trials=3000, batch=8, seed=5, store={store!r}, "
        "progress=False, save_every=0)")
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", code], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None and not os.path.isdir(store + "/partial"):
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(sig)
    try:
        err = proc.communicate(timeout=30)[1]
        return ("saved" if "SweepInterrupted" in err else f"rc{proc.returncode}"), err
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler dumps every thread
        return "HUNG", proc.communicate()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--signal", choices=["TERM", "INT"], default="TERM")
    parser.add_argument("--max-delay", type=float, default=3.0, help="seconds after the first piece, at most")
    parser.add_argument("--slow-start", action="store_true", help="every thread start 0.5 s longer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dumps", default=tempfile.gettempdir())
    args = parser.parse_args()
    sig = signal.SIGTERM if args.signal == "TERM" else signal.SIGINT
    rnd = random.Random(args.seed)
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    counts: collections.Counter[str] = collections.Counter()
    try:
        for i in range(args.runs):
            delay = rnd.uniform(0, args.max_delay)
            kind, err = once(tempfile.mkdtemp(prefix="signal-stress") + "/s", sig, delay, args.slow_start)
            if kind == "HUNG":
                Path(args.dumps, f"signal-stress-hang-{i}.txt").write_text(err)
            counts[kind] += 1
            print(i, kind, f"delay {delay:.2f} s", flush=True)
    finally:
        hog.kill()
    print(dict(counts))


if __name__ == "__main__":
    main()

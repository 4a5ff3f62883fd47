"""What a grouped sweep keeps when it is killed or interrupted part-way, measured on the command line.

Runs ``fastgrad sweep`` over a sigma_w^2 x sigma_b^2 grid (24 cells that differ only in scales: run
over shared draws) in a subprocess, stops it after ``--after`` seconds with SIGKILL or SIGINT, and
reports: when the first trials reached the disk, how long the process took to exit after the
signal, how many trials were saved, and how long the resumed sweep took. A last run without a
signal gives the uninterrupted time and the check that the resumed store is bitwise the same.

    python scripts/interrupt_check.py --signal KILL --after 70
    python scripts/interrupt_check.py --signal INT --after 45
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import fastgrad as fg

FLAGS = ["--depth", "50", "--width", "128", "--activation", "tanh", "--init", "scaled_normal",
         "--sigma-w2", "1.0:2.1:0.1", "--sigma-b2", "0.0,0.05", "--batch", "32"]


def saved_trials(store: Path) -> int:
    """Trials saved: whole cells, and the pieces of unfinished ones."""
    total = 0
    for path in (store / "cells").glob("*.parquet"):
        total += int(json.loads(pq.read_schema(path).metadata[b"fastgrad.cell"])["rows"]) // 50
    for path in (store / "partial").glob("*/*.parquet"):
        lo, hi = json.loads(pq.read_schema(path).metadata[b"fastgrad.cell"])["trials"]
        total += hi - lo
    return total


def first_on_disk(store: Path) -> bool:
    return any((store / "partial").glob("*/*.parquet")) or any((store / "cells").glob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=["KILL", "INT", "TERM"], default="KILL")
    parser.add_argument("--after", type=float, default=70.0, help="seconds after the start")
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--reference", action="store_true", help="also run the sweep uninterrupted and compare")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    store = tmp / "s"
    cmd = [sys.executable, "-m", "fastgrad.cli", "sweep", "--store", str(store), "--trials", str(args.trials),
           "--quiet", *FLAGS]
    t0 = time.perf_counter()
    # SIGINT back to its default in the child: a background job starts with it ignored, and Python then
    # installs no KeyboardInterrupt for it (Ctrl-C in a terminal reaches a foreground sweep as this does).
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = None
    while proc.poll() is None and time.perf_counter() - t0 < args.after:
        if first is None and first_on_disk(store):
            first = time.perf_counter() - t0
        time.sleep(0.05)
    if proc.poll() is not None:
        print("the sweep ended before the signal", proc.returncode)
        return
    at = time.perf_counter()
    wall = time.time()
    proc.send_signal(getattr(signal, f"SIG{args.signal}"))
    _, err = proc.communicate()
    exit_seconds = time.perf_counter() - at
    total = 24 * args.trials
    saved = saved_trials(store)
    print(f"24 cells x {args.trials} trials, depth 50, width 128, tanh, batch 32 (fastgrad sweep {' '.join(FLAGS)})")
    print(f"first trials on disk after {first:.1f} s" if first is not None else "nothing on disk before the signal")
    print(f"SIG{args.signal} at {args.after:.0f} s: exit after {exit_seconds:.2f} s, status {proc.returncode}; "
          f"saved {saved} of {total} trials ({saved / total:.0%})")
    files = [*(store / "partial").glob("*/*.parquet"), *(store / "cells").glob("*.parquet")]
    if files:
        newest = max(p.stat().st_mtime for p in files)
        print(f"the last save before the signal was {wall - newest:.1f} s before it" if newest <= wall
              else f"the process saved {newest - wall:.2f} s after the signal (Ctrl-C and SIGTERM save, then stop)")
    if err.strip():
        print("its last line:", err.strip().splitlines()[-1])
    t1 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"resumed in {time.perf_counter() - t1:.1f} s")
    if args.reference:
        whole = tmp / "whole"
        t2 = time.perf_counter()
        subprocess.run([*cmd[:5], str(whole), *cmd[6:]], check=True)
        print(f"uninterrupted: {time.perf_counter() - t2:.1f} s")
        pd.testing.assert_frame_equal(fg.load(store), fg.load(whole))
        print("the resumed store is bitwise the uninterrupted one")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

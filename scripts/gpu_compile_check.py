"""Compile the CUDA kernels for a real GPU architecture, on a machine without a GPU.

Usage: python scripts/gpu_compile_check.py [--cc 9.0]

The CUDA simulator runs the kernels as Python: it checks their arithmetic and
their synchronisation, not that Numba can type and lower them for the device.
This script does the device half without a device: each kernel of the CUDA
backend (MLP, RNN, chain; float64 and float32), with the argument types that
``fastgrad.gpu`` launches it with, goes through Numba's CUDA compiler and NVVM
to PTX for compute capability ``--cc``, then through ``ptxas`` to machine code,
whose registers, spills and shared memory are printed. It fails if a kernel does
not compile, spills, or needs more registers than a block of
``fastgrad.gpu.THREADS_PER_BLOCK`` threads can have (the launch would fail).

Needs numba-cuda, NVVM and NVRTC (``pip install nvidia-cuda-nvcc-cu12
nvidia-cuda-nvrtc-cu12``; part of the ``test`` extra on Linux). Prints a
Markdown table; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

REGISTERS_PER_BLOCK = 65536  # every architecture from compute capability 5.0 to 9.x


def ptxas_path() -> str | None:
    """ptxas from the nvidia-cuda-nvcc wheel, else from PATH."""
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    if spec is not None and spec.submodule_search_locations:
        candidate = os.path.join(list(spec.submodule_search_locations)[0], "bin", "ptxas")
        if os.path.exists(candidate):
            return candidate
    return shutil.which("ptxas")


def kernels(dtype_name: str) -> dict[str, tuple[object, tuple[object, ...]]]:
    """Each kernel with the argument types ``fastgrad.gpu`` launches it with."""
    from numba import types as t

    from fastgrad.kernels import cuda_chain, cuda_mlp, cuda_rnn

    i64, f64 = t.int64, t.float64
    ints, floats = t.int64[::1], t.float64[::1]
    slab = getattr(t, dtype_name)[:, ::1]  # per-trial slabs and outputs: 2-D, C order
    return {
        "mlp_generated": (cuda_mlp.mlp_generated,
                          (i64, i64, i64, ints, ints, ints, ints, ints, floats, ints, floats, ints, floats, i64)
                          + (slab,) * 9),
        "rnn_generated": (cuda_rnn.rnn_generated,
                          (i64,) * 5 + (i64, f64, f64, i64, f64, i64, f64, i64) + (slab,) * 10),
        "chain_generated": (cuda_chain.chain_generated,
                            (i64, i64, i64, f64, t.boolean, f64, i64, f64) + (slab,) * 7),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 (H100/H200) or 8.0 (A100)")
    args = parser.parse_args()
    cc = tuple(int(p) for p in args.cc.split("."))

    from numba import cuda
    from numba.cuda import dispatcher

    from fastgrad.gpu import THREADS_PER_BLOCK

    # Device functions ask the current device for its compute capability; there is none
    # here, so answer for the target architecture (this process only ever compiles).
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)  # type: ignore[attr-defined]
    ptxas = ptxas_path()
    arch = f"sm_{cc[0]}{cc[1]}"
    print(f"| kernel | dtype | PTX kB | registers | spill bytes | shared bytes | fits {THREADS_PER_BLOCK} threads |")
    print("|---|---|---|---|---|---|---|")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for dtype_name in ("float64", "float32"):
            for name, (kernel, sig) in kernels(dtype_name).items():
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)  # type: ignore[attr-defined]
                except Exception as err:  # report every kernel, then fail
                    why = " ".join(str(err).split())[:200]
                    print(f"| {name} | {dtype_name} | FAILED: {type(err).__name__}: {why} | | | | |")
                    failed = True
                    continue
                if ptxas is None:
                    print(f"| {name} | {dtype_name} | {len(ptx) // 1024} | (no ptxas) | | | |")
                    continue
                path = os.path.join(tmp, f"{name}_{dtype_name}.ptx")
                with open(path, "w") as f:
                    f.write(ptx)
                proc = subprocess.run([ptxas, f"-arch={arch}", "-v", path, "-o", path + ".cubin"],
                                      capture_output=True, text=True)
                info = proc.stderr
                regs = [int(r) for r in re.findall(r"Used (\d+) registers", info)]
                spills = sum(int(s) for s in re.findall(r"(\d+) bytes spill stores", info))
                smem = max([int(s) for s in re.findall(r"(\d+) bytes smem", info)] or [0])
                fits = bool(regs) and max(regs) * THREADS_PER_BLOCK <= REGISTERS_PER_BLOCK
                ok = proc.returncode == 0 and fits and spills == 0
                failed |= not ok
                tail = "" if proc.returncode == 0 else f" ptxas: {info[-300:]}"
                print(f"| {name} | {dtype_name} | {len(ptx) // 1024} | {max(regs) if regs else '?'} | {spills} | "
                      f"{smem} | {'yes' if fits else 'NO'} |{tail}")
    print(f"target {arch}, NVVM PTX then {'ptxas' if ptxas else 'no ptxas found'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

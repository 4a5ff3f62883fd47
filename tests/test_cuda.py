"""The CUDA backend: simulator tests in a subprocess, clear errors without a GPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastgrad as fg
from fastgrad import gpu

ROOT = Path(__file__).resolve().parent.parent


def test_cuda_kernels_under_the_simulator():
    pytest.importorskip("numba_cuda", reason="numba-cuda is in the test extra")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cuda_sim"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]


def test_cuda_kernels_compile_for_a_real_gpu():
    # The simulator runs the kernels as Python; this compiles them (NVVM, then ptxas)
    # for compute capability 9.0 with the argument types fastgrad.gpu launches them with.
    pytest.importorskip("numba_cuda", reason="numba-cuda is in the test extra")
    for wheel in ("nvidia.cuda_nvcc", "nvidia.cuda_nvrtc"):
        pytest.importorskip(wheel, reason="NVVM and NVRTC come with the test extra on Linux")
    proc = subprocess.run([sys.executable, "scripts/gpu_compile_check.py", "--cc", "9.0"], cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "generated" in line]
    assert len(rows) == 6 and all(row.rstrip().endswith("| yes |") for row in rows), proc.stdout


@pytest.mark.skipif(gpu.status()[0], reason="a GPU is usable here")
def test_without_a_gpu_cuda_fails_clearly():
    ok, why = gpu.status()
    assert not ok and why
    with pytest.raises(RuntimeError, match="backend='cuda' is not usable"):
        fg.run(fg.MLP(depth=2, width=3), trials=1, backend="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not gpu.status()[0], reason="needs a CUDA GPU")
def test_real_gpu_matches_cpu():
    import numpy as np

    spec = fg.MLP(depth=10, width=32, init="scaled_normal", sigma_b=0.1)
    cpu = fg.run(spec, trials=64, batch=8)
    dev = fg.run(spec, trials=64, batch=8, backend="cuda")
    np.testing.assert_allclose(dev.grad_w, cpu.grad_w, rtol=1e-10)

"""The optional CUDA backend: whether it can run here, and how many trials one launch takes.

``import fastgrad`` imports nothing of numba.cuda; a model's ``run_cuda``
(``fastgrad/models/<model>.py``) imports it on use. Kernels live in ``kernels/cuda_*.py``.
"""

from __future__ import annotations

import os

THREADS_PER_BLOCK = 128  # a power of two <= kernels.cuda_device.MAX_THREADS; tests under the simulator lower it


def status() -> tuple[bool, str]:
    """Whether ``backend="cuda"`` can run here, and a line saying why (or which device).

    Returns
    -------
    (bool, str)
    """
    try:
        from numba import cuda
    except ImportError as err:  # pragma: no cover - numba always has numba.cuda or numba-cuda
        return False, f"numba.cuda cannot be imported ({err}); pip install 'fastgrad[cuda]'"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but slow, for tests"
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        return False, "the numba-cuda package is not installed: pip install 'fastgrad[cuda]'"
    try:
        if not cuda.is_available():
            return False, "no usable CUDA driver or GPU found (numba.cuda.is_available() is False)"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        return True, f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})"
    except Exception as err:  # driver errors surface here
        return False, f"CUDA error: {err}"


def require() -> None:
    """Raise RuntimeError saying why, if the CUDA backend cannot run."""
    ok, why = status()
    if not ok:
        raise RuntimeError(f"backend='cuda' is not usable: {why}")


def chunk_size(per_trial_bytes: int, trials: int, chunk: int | None) -> int:
    """Trials per launch: ``chunk``, or as many as a quarter of the device's free memory holds."""
    if chunk is not None:
        return chunk
    from numba import cuda

    try:
        free, _ = cuda.current_context().get_memory_info()
    except Exception:  # the simulator has no memory info
        free = 1 << 30
    return int(max(1, min(trials, 0.25 * free // max(per_trial_bytes, 1))))

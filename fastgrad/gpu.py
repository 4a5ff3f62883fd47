"""The optional CUDA backend: availability, and running generated trials on a GPU.

Nothing here is imported by ``import fastgrad``; ``run(..., backend="cuda")``
imports it on use. Kernels live in ``kernels/cuda_*.py``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastgrad import lowering
from fastgrad.codes import FACTORED_KINDS, ORTHOGONAL
from fastgrad.specs import MLP, RNN, Chain

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


def _chunk(per_trial_bytes: int, trials: int, chunk: int | None) -> int:
    if chunk is not None:
        return chunk
    from numba import cuda

    try:
        free, _ = cuda.current_context().get_memory_info()
    except Exception:  # the simulator has no memory info
        free = 1 << 30
    return int(max(1, min(trials, 0.25 * free // max(per_trial_bytes, 1))))


def run_cuda(spec: MLP | Chain | RNN, trials: int, batch: int, seed: int, dt: np.dtype,
             chunk: int | None, first_trial: int = 0) -> dict[str, np.ndarray]:
    """Run trials ``first_trial ..`` on the GPU; statistics are copied back once per chunk.

    Memory on the device is the chunk's working slabs (default: a quarter of
    the free memory), not the number of trials.
    """
    from numba import cuda

    if isinstance(spec, MLP):
        return _mlp(cuda, spec, trials, batch, seed, dt, chunk, first_trial)
    if isinstance(spec, RNN):
        return _rnn(cuda, spec, trials, batch, seed, dt, chunk, first_trial)
    return _chain(cuda, spec, trials, seed, dt, chunk, first_trial)


def _mlp(cuda: Any, spec: MLP, trials: int, batch: int, seed: int, dt: np.dtype,
         chunk: int | None, first: int = 0) -> dict[str, np.ndarray]:
    from fastgrad.kernels import cuda_mlp

    net, init = lowering.mlp(spec)
    w_kind, w_scale, b_kind, b_scale = init.w_kind, init.w_scale, init.b_kind, init.b_scale
    if np.any(np.isin(w_kind, FACTORED_KINDS)):
        raise ValueError("init: 'orthogonal' is not available on backend='cuda' (it needs a QR per layer); "
                         "use backend='cpu'")
    dims = net.dims
    alpha = net.alpha
    act = np.full(spec.depth, lowering.activation_code(net.hidden), dtype=np.int64)
    act[-1] = lowering.activation_code(net.last)
    woff = np.concatenate([[0], np.cumsum(dims[:-1] * dims[1:])]).astype(np.int64)
    boff = np.concatenate([[0], np.cumsum(dims[1:])]).astype(np.int64)
    hoff = np.concatenate([[0], np.cumsum(batch * dims)]).astype(np.int64)
    half = batch * int(dims.max())
    sizes = (int(woff[-1]), int(boff[-1]), int(hoff[-1]), int(hoff[-1] - hoff[1]), 2 * half)
    n = _chunk(sum(sizes) * dt.itemsize, trials, chunk)
    consts = [cuda.to_device(a) for a in (dims, woff, boff, hoff, w_kind, w_scale, b_kind, b_scale, act, alpha)]
    slabs = [cuda.device_array((n, s), dtype=dt) for s in sizes]
    out = {m: np.empty((trials, spec.depth), dtype=dt) for m in ("grad_w", "grad_b", "delta", "q")}
    dev_out = {m: cuda.device_array((n, spec.depth), dtype=dt) for m in out}
    loss = net.loss
    for lo in range(0, trials, n):
        m = min(n, trials - lo)
        cuda_mlp.mlp_generated[m, THREADS_PER_BLOCK](
            seed, first + lo, batch, *consts, loss, *slabs, dev_out["grad_w"], dev_out["grad_b"], dev_out["delta"],
            dev_out["q"])
        for key in out:
            out[key][lo:lo + m] = dev_out[key][:m].copy_to_host()
    return out


def _rnn(cuda: Any, spec: RNN, trials: int, batch: int, seed: int, dt: np.dtype,
         chunk: int | None, first: int = 0) -> dict[str, np.ndarray]:
    from fastgrad.kernels import cuda_rnn

    if spec.jacobian:
        raise ValueError("jacobian: the Jacobian norms are computed on backend='cpu' only")
    net, init = lowering.rnn(spec)
    if init.w_kind in FACTORED_KINDS:
        what = "orthogonal" if init.w_kind == ORTHOGONAL else "spectral"
        raise ValueError(f"init: {what!r} is not available on backend='cuda' (it needs a matrix "
                         "factorisation per trial); use 'normal' or 'identity', or backend='cpu'")
    n, d, s = spec.hidden, spec.inputs, spec.steps
    y_steps = s if spec.loss == "all" else 1
    sizes = (2 * (n * n + d * n + n), s * batch * d, y_steps * batch * n, (s + 1) * batch * n, s * batch * n,
             2 * batch * n)
    m_chunk = _chunk(sum(sizes) * dt.itemsize, trials, chunk)
    slabs = [cuda.device_array((m_chunk, size), dtype=dt) for size in sizes]
    out = {k: np.empty((trials, s), dtype=dt) for k in ("grad_h", "grad_whh_step", "q")}
    dev = {k: cuda.device_array((m_chunk, s), dtype=dt) for k in out}
    dev_totals = cuda.device_array((m_chunk, 3), dtype=dt)
    totals = np.empty((trials, 3), dtype=dt)
    for lo in range(0, trials, m_chunk):
        m = min(m_chunk, trials - lo)
        cuda_rnn.rnn_generated[m, THREADS_PER_BLOCK](
            seed, first + lo, batch, n, d, init.w_kind, init.w_scale, init.x_scale, init.b_kind, init.b_scale,
            lowering.activation_code(net.act), net.alpha, net.loss, *slabs, dev["grad_h"], dev["grad_whh_step"],
            dev["q"], dev_totals)
        for key in out:
            out[key][lo:lo + m] = dev[key][:m].copy_to_host()
        totals[lo:lo + m] = dev_totals[:m].copy_to_host()
    out.update({k: np.ascontiguousarray(totals[:, i]) for i, k in enumerate(("grad_whh", "grad_wxh", "grad_b"))})
    return out


def _chain(cuda: Any, spec: Chain, trials: int, seed: int, dt: np.dtype, chunk: int | None,
           first: int = 0) -> dict[str, np.ndarray]:
    from fastgrad.kernels import cuda_chain

    net, init = lowering.chain(spec)
    depth = spec.depth
    n = _chunk(7 * depth * dt.itemsize, trials, chunk)
    scratch = [cuda.device_array((n, depth), dtype=dt) for _ in range(3)]
    dev = {k: cuda.device_array((n, depth), dtype=dt) for k in ("dc_db", "grad_b", "grad_w", "q")}
    out = {k: np.empty((trials, depth), dtype=dt) for k in dev}
    for lo in range(0, trials, n):
        m = min(n, trials - lo)
        blocks = (m + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        cuda_chain.chain_generated[blocks, THREADS_PER_BLOCK](
            seed, first + lo, lowering.activation_code(net.act), net.alpha, init.w_const, init.w_scale, init.b_kind,
            init.b_scale, *scratch, dev["dc_db"][:m], dev["grad_b"][:m],
            dev["grad_w"][:m], dev["q"][:m])
        for key in out:
            out[key][lo:lo + m] = dev[key][:m].copy_to_host()
    out["delta"] = out["grad_b"]
    return out

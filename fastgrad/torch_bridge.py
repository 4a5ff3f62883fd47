"""Gradient statistics of any PyTorch network: :func:`torch_run`, :func:`fastgrad.run` of a :class:`fastgrad.TorchNet`.

PyTorch is an optional extra (``fastgrad[torch]``), imported only when a TorchNet runs.
"""

from __future__ import annotations

from typing import Any

from fastgrad.engine import run
from fastgrad.executor import check_dtype
from fastgrad.models.torchnet import TorchNet
from fastgrad.results import Result


def torch_run(factory: Any, trials: int, batch: int = 32, inputs: Any = None, loss: Any = "mse", seed: int = 0,
              dtype: str = "float64", vectorize: bool | None = None, chunk: int | None = None,
              first_trial: int = 0, init: Any = None, **params: Any) -> Result:
    """Gradient statistics of any PyTorch network over ``trials`` seeded trials.

    ``fastgrad.run(fastgrad.TorchNet(factory, inputs, loss, params), ...)``: see :class:`TorchNet`.

    Parameters
    ----------
    factory : callable or str
        ``factory(generator, **params) -> torch.nn.Module``, drawing its weights from ``generator``.
    trials, batch, seed : int
        As for :func:`fastgrad.run`: trial k is the same whatever ``trials``, ``chunk`` and ``first_trial``.
    inputs : int, tuple of int, str or callable
        One input's shape (x ~ N(0, 1)), or ``inputs(generator, batch)``.
    loss : {"mse", "probe"} or callable
    dtype : {"float32", "float64"}
        The modules are built under this default dtype and converted to it.
    vectorize : bool, optional
        None: ``torch.func.vmap`` over trials, falling back to a loop (with a warning) if the module fails
        under it; True: no fallback; False: loop.
    chunk : int, optional
        Trials per vectorised call (default 64): bounds memory.
    first_trial : int
    init : callable or str, optional
        ``init(module, generator, **params)`` drawing a trial's parameters in place on one module built by
        ``factory(generator)``: no module built per trial (see :class:`TorchNet`).
    **params
        Keyword arguments of ``factory`` (of ``init`` if given).

    Returns
    -------
    Result
        (trials, modules): ``grad_out`` ||dLoss/d out_m||_F, ``q`` mean(out_m^2), ``grad_w``, ``grad_b``
        (module m's ``weight*`` and ``bias*`` parameters' gradient norms, 0 where it has none); (trials,):
        ``grad_norm`` (all parameters), ``loss``. ``backend`` says ``torch-vmap`` or ``torch-loop (why)``;
        ``spec.modules()`` names the modules.
    """
    if inputs is None:
        raise ValueError("inputs: give one input's shape (16, (3, 8, 8)) or inputs(generator, batch)")
    check_dtype(dtype)
    spec = TorchNet(factory, inputs, loss, tuple(sorted(params.items())), vectorize, init)
    return run(spec, trials, batch=batch, seed=seed, dtype=dtype, threads=1, chunk=chunk, first_trial=first_trial)

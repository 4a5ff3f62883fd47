"""Any PyTorch network as a model family: :class:`TorchNet`; and :func:`to_torch`, :func:`from_torch`.

A :class:`TorchNet` is a factory of ``torch.nn.Module``s: trial k is ``factory(g)`` with a
``torch.Generator`` g seeded from fastgrad's counter-based stream, measured on a batch drawn
from g. It is registered like every family, so :func:`fastgrad.run`, :func:`fastgrad.sweep`
(grid parameters passed to the factory), the store, ``fastgrad analyze`` and ``fastgrad plot``
take it unchanged (:func:`fastgrad.torch_run` is ``run`` of a TorchNet). The statistics are per
leaf module, in module order (``_torch_run.py``).

PyTorch is an optional extra (``pip install fastgrad[torch]``): nothing here imports it until
a TorchNet runs or a module is converted, so ``import fastgrad`` never does.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from fastgrad.executor import check_dtype
from fastgrad.models.base import Model, Plan, register

TORCH_LOSSES = ("mse", "probe")


def _torch() -> Any:
    """PyTorch, or a ValueError saying how to install it."""
    try:
        import torch
    except ImportError as err:  # pragma: no cover - the test environment has torch
        raise ValueError("torch: PyTorch is not installed; pip install 'fastgrad[torch]'") from err
    return torch


def resolve(factory: Any, what: str = "factory") -> Callable[..., Any]:
    """A factory given as a callable, or by name, ``"module.function"`` or ``"module:function"`` (what a sweep's grid,
    the command line and Dask workers take)."""
    if callable(factory):
        return factory  # type: ignore[no-any-return]
    if not isinstance(factory, str) or not re.fullmatch(r"\w[\w.]*[.:]\w[\w.]*", factory):
        raise ValueError(f"{what}: expected a function, or its name 'module.function', got {factory!r}")
    module, _, name = factory.partition(":") if ":" in factory else factory.rpartition(".")
    try:
        obj: Any = _import(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{what}: cannot import {factory!r}: {err}") from err
    if not callable(obj):
        raise ValueError(f"{what}: {factory!r} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def _import(module: str) -> Any:
    """Import ``module`` as ``python`` run in the current folder would (the ``fastgrad`` command's path lacks it)."""
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module)
    finally:
        if added:
            sys.path.remove(here)


@dataclass(frozen=True)
class TorchNet:
    """Any PyTorch network, drawn afresh for every trial by a factory.

    Parameters
    ----------
    factory : callable or str
        ``factory(generator, **params) -> torch.nn.Module``: builds trial k's module, drawing its
        weights from ``generator`` (a seeded ``torch.Generator``: pass it to ``nn.init`` functions,
        ``torch.randn``, ...). PyTorch's global generator, which default initialisers (``nn.Linear``'s)
        draw from, is seeded per trial meanwhile too, and restored after. A sweep takes it by name,
        ``"module.function"`` (importable by its workers).
    inputs : int, tuple of int, str or callable
        The shape of one input (``16``, ``(3, 8, 8)``, or ``"3x8x8"`` in a grid): x ~ N(0, 1) of shape
        ``(batch, *inputs)``, drawn after the module from the same generator. Or ``inputs(generator, batch)``
        returning the batch.
    loss : {"mse", "probe"} or callable
        ``mse``: ``(1/B) sum_b 0.5 ||out[b] - y[b]||^2`` against N(0, 1) targets y; ``probe``:
        ``(1/B) sum_b <y[b], out[b]>``, y ~ N(0, 1) (a random back-projection); or ``loss(out, y)`` with
        y ~ N(0, 1) of the output's shape. ``out`` is the module's output, or the first element of a tuple.
    params : tuple of (str, value) pairs
        Keyword arguments of the factory, or of ``init`` if given (a sweep's grid parameters that are not
        fields go here).
    vectorize : bool, optional
        None (default): run trials vectorised with ``torch.func.vmap`` and fall back, with a warning, to
        one trial at a time if the module fails under it; True: refuse the fallback; False: never vmap.
    init : callable or str, optional
        ``init(module, generator, **params)``: draws a trial's parameters in place (``nn.init.normal_(...,
        generator=generator)``). Then ``factory(generator)`` (without ``params``) is called once and its module
        reused: trial k is that module, reset to what the factory built, with ``init``'s draws from trial k's
        generator. Building a module per trial in Python is most of a W-mlp trial's time; this skips it.

    Notes
    -----
    A run of dtype float32 builds its modules and draws its batches with PyTorch's default dtype set to
    float32 (restored after): PyTorch's float32 draws, not the float64 trial rounded.
    The depth axis is the module's leaf modules (modules with no children) that its forward calls,
    in registration order: :meth:`modules` names them.
    """

    factory: Any
    inputs: Any
    loss: Any = "mse"
    params: tuple[tuple[str, Any], ...] = ()
    vectorize: bool | None = None
    init: Any = None
    model: str = field(default="torchnet", init=False)

    def __post_init__(self) -> None:
        resolve(self.factory)
        if self.init is not None:
            resolve(self.init, "init")
        self.input_shape  # noqa: B018  # validates inputs
        if not callable(self.loss) and self.loss not in TORCH_LOSSES:
            raise ValueError(f"loss: unknown {self.loss!r}; choose one of {', '.join(TORCH_LOSSES)} or pass "
                             "loss(out, y)")
        if self.vectorize not in (None, True, False):
            raise ValueError(f"vectorize: expected None, True or False, got {self.vectorize!r}")
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", tuple(sorted(self.params.items())))
        if not isinstance(self.params, tuple) or not all(isinstance(p, tuple) and len(p) == 2
                                                         and isinstance(p[0], str) for p in self.params):
            raise ValueError(f"params: expected a dict or (name, value) pairs, got {self.params!r}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape (empty for a callable ``inputs``)."""
        if callable(self.inputs):
            return ()
        shape = self.inputs
        if isinstance(shape, str) and re.fullmatch(r"\d+(x\d+)*", shape):
            shape = tuple(int(s) for s in shape.split("x"))
        shape = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else shape
        if (not isinstance(shape, tuple) or not shape
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape)):
            raise ValueError(f"inputs: expected an input shape (16, (3, 8, 8) or '3x8x8') or inputs(generator, "
                             f"batch), got {self.inputs!r}")
        return tuple(int(s) for s in shape)

    def make(self, generator: Any, with_params: bool = True) -> Any:
        """A trial's module: ``factory(generator, **params)`` (without ``params``: the template ``init`` draws on),
        refused unless it is a ``torch.nn.Module``."""
        module = resolve(self.factory)(generator, **(dict(self.params) if with_params else {}))
        if not isinstance(module, _torch().nn.Module):
            raise ValueError(f"factory: expected a function returning a torch.nn.Module, got a "
                             f"{type(module).__name__}")
        return module

    def init_function(self, module: Any, generator: Any) -> None:
        """``init(module, generator, **params)``: draw a trial's parameters in place."""
        resolve(self.init, "init")(module, generator, **dict(self.params))

    def trial(self, trial: int, seed: int = 0, batch: int = 32, dtype: str = "float64") -> Any:
        """Trial ``trial`` of a run of this net, as :func:`torch_run` measures it.

        Returns
        -------
        TorchTrial
            ``(module, x, y, loss)``: the trial's module and batch, its targets (or probe) and the loss function,
            as :func:`fastgrad.to_torch` returns them.
        """
        from fastgrad.checks import check_int
        from fastgrad.models._torch_nets import TorchTrial
        from fastgrad.models._torch_run import Runner

        trial = check_int("trial", trial, minimum=0)
        runner = Runner(self, check_int("batch", batch), check_int("seed", seed, minimum=0), check_dtype(dtype),
                        trial)
        return TorchTrial(*runner.trial(trial), runner.loss)

    def modules(self, dtype: str = "float64") -> list[str]:
        """The names of the modules on the depth axis (column m - 1 is module m), in module order."""
        return _probe(self, dtype).modules

    @property
    def depth(self) -> int:
        """The number of modules measured (the depth axis)."""
        return len(self.modules())


_PROBES: dict[tuple[TorchNet, str], Any] = {}


def _probe(spec: TorchNet, dtype: str) -> Any:
    """One forward pass of trial 0 (batch 2): the modules, shapes and sizes (cached per spec)."""
    key = (spec, dtype)
    if key not in _PROBES:
        from fastgrad.models._torch_run import Runner

        _PROBES[key] = Runner(spec, 2, 0, np.dtype(dtype)).probe
    return _PROBES[key]


class _Key:
    """A TorchNet run's kernel key: equal for every run of a dtype (nothing compiles), carrying its runner."""

    def __init__(self, runner: Any, dtype: str) -> None:
        self.runner, self.dtype = runner, dtype

    def __hash__(self) -> int:
        return hash(("torchnet", self.dtype))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.dtype == self.dtype


class TorchNetModel(Model):
    """A PyTorch network's entry in the model table."""

    name = "torchnet"
    spec = TorchNet
    order = 50
    main_metric = "grad_out"
    cpu_only = "PyTorch on the CPU: fastgrad's CUDA kernels are its own families'"
    statistics = 4
    default_chunk = 64

    def plan(self, spec: TorchNet, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        from fastgrad.models._torch_run import STATISTICS, TOTALS, Runner

        runner = Runner(spec, batch, seed, dt, first)
        m = len(runner.probe.modules)
        stats = {k: np.empty((trials, m), dtype=dt) for k in STATISTICS}
        stats.update({k: np.empty(trials, dtype=dt) for k in TOTALS})

        def block(lo: int, hi: int) -> None:
            runner.fill(stats, lo, hi)

        return stats, block, _Key(runner, dt.name)

    def working(self, spec: TorchNet, batch: int) -> int:
        probe = _probe(spec, "float64")
        return probe.n_params * 2 + probe.numel // 2 * batch * 3

    def backend_label(self, key: Any, backend: str) -> str:
        runner = key.runner
        return "torch-vmap" if runner.mode == "vmap" else f"torch-loop ({runner.why or 'vectorize=False'})"

    def grid_fields(self) -> tuple[list[str] | None, list[str]]:
        return None, ["factory", "inputs"]

    def spec_of(self, params: dict[str, Any]) -> TorchNet:
        names = {f.name for f in fields(TorchNet) if f.init}
        own = {k: v for k, v in params.items() if k in names}
        own["params"] = tuple(sorted((k, v) for k, v in params.items() if k not in names)) + tuple(
            own.get("params", ()))
        return TorchNet(**own)


def to_torch(spec: Any, seed: int = 0, trial: int = 0, batch: int = 32, dtype: str = "float64") -> Any:
    """Trial ``trial`` of ``fastgrad.run(spec, seed=seed, batch=batch)`` as a PyTorch module and its batch.

    Parameters
    ----------
    spec : MLP, ResMLP, RNN, LSTM, GRU, IndRNN, CNN or Transformer
        An RNN's activation must be tanh or relu (``torch.nn.RNN``'s); an IndRNN becomes a small PyTorch
        cell of fastgrad's (``weight_ih``, ``u``, ``bias``), PyTorch having none. A CNN becomes an
        ``nn.Sequential`` of ``nn.Conv1d``/``nn.Conv2d`` (``padding_mode`` circular or zeros) and its
        activation; a Transformer a ``TransformerNet`` of fastgrad's (``torch.nn.functional`` ops, its blocks'
        matrices ``nn.Linear`` without bias, ``blocks[l]``'s output the stream x_l).
    seed, trial, batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    TorchTrial
        ``(module, x, y, loss)``: the module holds exactly the trial's arrays (``*_trial_arrays``); x is its
        batch ((B, n_0); (B, S, d) batch first; (B, c_0, N[, N]) for a CNN; (B, T, d) for a Transformer); y its
        targets or probe; ``loss(module(x), y)`` is the
        scalar fastgrad back-propagates. Recurrent cells are wrapped to return h_S (or every step for
        ``loss="all"``).
    """
    _torch()
    from fastgrad.models._torch_nets import to_torch as convert

    return convert(spec, seed, trial, batch, dtype)


def from_torch(module: Any, loss: str | None = None, steps: int | None = None, size: int | None = None) -> Any:
    """A PyTorch module a fastgrad family covers, as that family's spec and explicit arrays.

    Parameters
    ----------
    module : torch.nn.Module
        ``nn.Sequential`` of ``nn.Linear`` and activation modules (one hidden width and activation: an
        MLP; with :func:`to_torch`'s residual blocks: a ResMLP); ``nn.RNN`` (tanh, relu), ``nn.LSTM``,
        ``nn.GRU`` (one layer, ``batch_first`` either way); :func:`to_torch`'s IndRNN cell; ``nn.Sequential`` of
        ``nn.Conv1d`` or ``nn.Conv2d`` (stride 1, odd square kernels, ``"same"`` circular or zero padding, one
        channel count) and one activation: a CNN; :func:`to_torch`'s ``TransformerNet``. Anything else is
        refused, naming the first module no family covers.
    loss : str, optional
        The spec's loss (default ``mse``; recurrent ``last``).
    steps : int, optional
        The recurrent cells' number of steps (required for them).
    size : int, optional
        A CNN's spatial size N (required for it); a ``TransformerNet``'s tokens T (default: those it was
        made for).

    Returns
    -------
    FromTorch
        ``(spec, arrays, backprop)``: ``backprop(x, y)`` runs the family's explicit routine on the module's
        weights and one batch in the module's layout.
    """
    _torch()
    from fastgrad.models._torch_nets import from_torch as convert

    return convert(module, loss, steps, size)


PUBLIC = ("TorchNet", "to_torch", "from_torch")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(TorchNetModel())

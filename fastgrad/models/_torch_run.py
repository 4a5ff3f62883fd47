"""The statistics of any PyTorch module over trials: what :class:`fastgrad.TorchNet` runs.

Imported only when a TorchNet runs: PyTorch is an optional extra (``fastgrad[torch]``).

Trial k builds its module with ``factory(g)`` from a ``torch.Generator`` g seeded with the key of
fastgrad's counter-based stream ``stream_key(seed, k, TORCH_GENERATOR)`` (PyTorch's global generator,
which default initialisers draw from, seeded from it too meanwhile), then draws its batch x and its
targets (or probe) y from the same generator: trial k is the same whatever the number of trials, the
chunking or the run it belongs to. With ``init``, one module is built once and trial k's parameters
are ``init(module, g)``'s draws on it, its state reset to the factory's first. A zero perturbation is
added to the output of every leaf module (forward hooks), so dLoss/d(output of module m) is the
gradient of the loss with respect to that perturbation.

Trials run vectorised with ``torch.func`` (``stack_module_state``, ``functional_call``, ``vmap`` of
``grad``) when the module allows it, else one by one with autograd; :attr:`Runner.mode` says which.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fastgrad.codes import TORCH_GENERATOR
from fastgrad.models._torch_nets import LOSSES
from fastgrad.rng import stream_key

STATISTICS = ("grad_out", "q", "grad_w", "grad_b")
"""Per-module statistics, (trials, modules): ||dLoss/d out_m||_F over the batch; mean(out_m^2); the
gradient norms of module m's own weights (parameters named ``weight*``) and biases (``bias*``), 0 if none."""
TOTALS = ("grad_norm", "loss")
"""Per-trial totals: the norm of the gradient of all parameters, and the loss."""


def generator(seed: int, trial: int) -> torch.Generator:
    """Trial ``trial``'s generator: seeded with the key of fastgrad's stream (seed, trial, TORCH_GENERATOR)."""
    return torch.Generator().manual_seed(int(stream_key(seed, trial, TORCH_GENERATOR)))


@contextlib.contextmanager
def seeded_global(seed: int, trial: int) -> Iterator[None]:
    """PyTorch's global CPU generator seeded for trial ``trial`` meanwhile, its state restored after.

    (``torch.random.fork_rng`` does the same at 1.4 ms a call, a tenth of building a W-mlp trial.)
    """
    gen = torch.default_generator
    state = gen.get_state()
    gen.manual_seed(int(stream_key(seed, trial, TORCH_GENERATOR)) >> 1)
    try:
        yield
    finally:
        gen.set_state(state)


@contextlib.contextmanager
def default_dtype(dt: torch.dtype) -> Iterator[None]:
    """PyTorch's default dtype set to ``dt`` meanwhile (initialisers then draw in it), restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dt)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def first_tensor(out: Any) -> Any:
    """A module's output tensor: itself, or the first element of a tuple (``nn.LSTM``'s ``output``); else None."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


class Recorder:
    """Forward hooks on leaf modules: add a perturbation to each output, record its sum of squares."""

    def __init__(self) -> None:
        self.eps: list[torch.Tensor] | None = None
        self.squares: list[torch.Tensor] = []
        self.calls: list[tuple[str, tuple[int, ...]]] = []  # (module, output shape) of each call: the probe's

    def start(self, eps: list[torch.Tensor] | None) -> None:
        self.eps, self.squares, self.calls = eps, [], []

    def hook(self, name: str) -> Any:
        def add(module: nn.Module, inputs: Any, out: Any) -> Any:
            t = first_tensor(out)
            if t is None:
                return None
            i = len(self.calls)
            self.calls.append((name, tuple(t.shape)))
            if self.eps is not None:
                t = t + self.eps[i]
            # off the graph (an in-place op after it stays legal), in float64 (a float32 1e-20 squares to 0)
            self.squares.append(t.detach().to(torch.float64).pow(2).sum())
            if isinstance(out, torch.Tensor):
                return t
            return type(out)([t, *out[1:]]) if isinstance(out, list) else (t, *out[1:])

        return add

    def attach(self, module: nn.Module) -> list[Any]:
        return [m.register_forward_hook(self.hook(name)) for name, m in leaves(module)]


def leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules (no children) in registration order; the module itself if it has no children."""
    found = [(name, m) for name, m in module.named_modules() if not any(True for _ in m.children())]
    return found or [("", module)]


@dataclass
class Probe:
    """What one forward pass of a trial tells about every trial: the modules measured and the shapes."""

    calls: list[tuple[str, tuple[int, ...]]]
    modules: list[str]
    out_shape: tuple[int, ...]
    n_params: int
    numel: int


class Runner:
    """The trials of one TorchNet run: builds modules, draws batches, measures, fills the output rows.

    Parameters
    ----------
    spec : fastgrad.TorchNet
    batch, seed : int
    dtype : numpy.dtype
    first : int
        The trial of output row 0.
    """

    def __init__(self, spec: Any, batch: int, seed: int, dtype: np.dtype, first: int = 0) -> None:
        self.spec, self.batch, self.seed, self.first = spec, batch, seed, first
        self.dt = torch.float64 if dtype == np.float64 else torch.float32
        self.loss = LOSSES[spec.loss] if isinstance(spec.loss, str) else spec.loss
        self.mode = "vmap" if spec.vectorize is not False else "loop"
        self.why = ""  # why the vectorised path was left
        self.lock = threading.Lock()
        self.template: nn.Module | None = None
        if spec.init is not None:  # one module, its parameters drawn afresh by init for every trial
            self.template = self._made(0, with_params=False)
            self.pristine = {k: v.detach().clone() for k, v in self.template.state_dict(keep_vars=True).items()}
        self.probe = self._probe()

    def _made(self, trial: int, with_params: bool = True) -> nn.Module:
        """``factory(g, **params)`` of trial ``trial``'s generator, in the run's dtype."""
        g = generator(self.seed, trial)
        # PyTorch's global generator too (nn.Linear's default init draws from it), restored after
        with default_dtype(self.dt), seeded_global(self.seed, trial):
            module = self.spec.make(g, with_params)
        if any(t.dtype != self.dt for t in itertools.chain(module.parameters(), module.buffers())
               if t.is_floating_point()):
            module = module.to(self.dt)  # 1.8 ms a trial of W-mlp even when nothing changes: only when needed
        return module

    def _initialised(self, module: nn.Module, trial: int, g: torch.Generator,
                     state: list[torch.Tensor] | None = None) -> None:
        """``init(module, g, **params)`` of trial ``trial``, on the template's state (restored first).

        ``state``: the module's state tensors in ``pristine``'s order, if known (``state_dict`` walks every
        module: 1.5 ms a call on W-mlp's 100).
        """
        if state is None:
            state = list(module.state_dict(keep_vars=True).values())
        with torch.no_grad():
            torch._foreach_copy_(state, list(self.pristine.values()))
            with default_dtype(self.dt), seeded_global(self.seed, trial):
                self.spec.init_function(module, g)

    def build(self, trial: int) -> tuple[nn.Module, torch.Tensor, torch.Generator]:
        """Trial ``trial``'s module and batch x, and its generator (to draw y next)."""
        g = generator(self.seed, trial)
        if self.template is None:
            module = self._made(trial)
        else:
            module = copy.deepcopy(self.template)
            self._initialised(module, trial, g)
        return module, self._inputs(g), g

    def _inputs(self, g: torch.Generator) -> torch.Tensor:
        if callable(self.spec.inputs):
            x = torch.as_tensor(self.spec.inputs(g, self.batch))
            x = x.to(self.dt) if x.is_floating_point() else x  # token ids stay integers
        else:
            x = torch.randn((self.batch, *self.spec.input_shape), generator=g, dtype=self.dt)
        return x

    def _probe(self) -> Probe:
        module, x, _ = self.build(self.first)
        rec = Recorder()
        handles = rec.attach(module)
        try:
            with torch.no_grad():
                out = first_tensor(module(x))
        finally:
            for h in handles:
                h.remove()
        if out is None:
            raise ValueError(f"factory: the module's output is a {type(out).__name__}, not a tensor (or a tuple "
                             "starting with one)")
        called = {name for name, _ in rec.calls}
        modules = [name for name, _ in leaves(module) if name in called]
        return Probe(rec.calls, modules, tuple(out.shape), sum(p.numel() for p in module.parameters()),
                     sum(int(np.prod(s)) for _, s in rec.calls))

    def trial(self, trial: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        module, x, g = self.build(trial)
        return module, x, torch.randn(self.probe.out_shape, generator=g, dtype=self.dt)

    def trials(self, lo: int, hi: int) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
        """Trials ``first + lo .. first + hi - 1``: modules, batches, targets."""
        return [self.trial(self.first + k) for k in range(lo, hi)]

    def fill(self, stats: dict[str, np.ndarray], lo: int, hi: int) -> None:
        """Measure trials ``first + lo .. first + hi - 1`` into rows lo .. hi - 1 of ``stats``."""
        # Building the next trials on another thread meanwhile was no faster here (2 busy cores: 19-20 against
        # 21-33 trials/s on W-mlp), and both would set PyTorch's global dtype and generator: not done.
        with self.lock, default_dtype(self.dt):  # PyTorch parallelises each call itself: one block at a time
            if self.template is not None and self.mode == "vmap":
                measured = self._vmapped_or_none(self._states(lo, hi))
                if measured is not None:
                    self._store(stats, lo, hi, *measured)
                    return
            built = self.trials(lo, hi)
            measured = self._vmapped_or_none(built) if self.mode == "vmap" else None
            if measured is None:
                measured = self._looped(built, lo)
            self._store(stats, lo, hi, *measured)

    def _states(self, lo: int, hi: int) -> tuple[Any, ...]:
        """With ``init``: trials' parameters and buffers drawn on the template, no module built (stacked)."""
        assert self.template is not None
        names = list(self.pristine)
        state = list(self.template.state_dict(keep_vars=True).values())
        stacked = [torch.empty((hi - lo, *t.shape), dtype=t.dtype) for t in state]
        xs, ys = [], []
        for k in range(lo, hi):
            g = generator(self.seed, self.first + k)
            self._initialised(self.template, self.first + k, g, state)
            with torch.no_grad():
                torch._foreach_copy_([t[k - lo] for t in stacked], state)
            xs.append(self._inputs(g))
            ys.append(torch.randn(self.probe.out_shape, generator=g, dtype=self.dt))
        by_name = dict(zip(names, stacked, strict=True))
        params = {n: by_name[n] for n, _ in self.template.named_parameters()}
        buffers = {n: by_name[n] if n in by_name else b.detach().expand(hi - lo, *b.shape)  # non-persistent
                   for n, b in self.template.named_buffers()}
        return self.template, params, buffers, torch.stack(xs), torch.stack(ys)

    def _vmapped_or_none(self, trials: Any) -> tuple[Any, ...] | None:
        """The vectorised measurement, or None (and the mode set to ``loop``, with a warning) if vmap fails."""
        try:
            if isinstance(trials, tuple):
                return self._stacked(*trials)
            return self._vmapped(trials)
        except Exception as err:  # noqa: BLE001  # any failure under vmap: say it, then loop
            if self.spec.vectorize:
                raise ValueError(f"vectorize: the module does not run under torch.func.vmap: "
                                 f"{_first_line(err)}") from err
            self.mode, self.why = "loop", _first_line(err)
            warnings.warn(f"fastgrad.torch_run: the module does not run under torch.func.vmap "
                          f"({self.why}); measuring its trials one by one", RuntimeWarning, stacklevel=3)
            return None

    def _eps(self, lead: tuple[int, ...]) -> list[torch.Tensor]:
        return [torch.zeros((*lead, *shape), dtype=self.dt) for _, shape in self.probe.calls]

    def _vmapped(self, trials: list[tuple[nn.Module, torch.Tensor, torch.Tensor]]) -> tuple[Any, ...]:
        from torch.func import stack_module_state

        params, buffers = stack_module_state([m for m, _, _ in trials])
        return self._stacked(trials[0][0], params, buffers, torch.stack([t[1] for t in trials]),
                             torch.stack([t[2] for t in trials]))

    def _stacked(self, module: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 x: torch.Tensor, y: torch.Tensor) -> tuple[Any, ...]:
        """``vmap`` of ``grad`` over the trials' stacked parameters, buffers, batches and targets."""
        from torch.func import functional_call, grad, vmap

        base = copy.deepcopy(module).to("meta")  # the trials' modules stay usable for a fallback
        rec = Recorder()
        rec.attach(base)
        loss_fn = self.loss

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], eps: list[torch.Tensor], x: torch.Tensor,
                y: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
            rec.start(eps)
            out = first_tensor(functional_call(base, (p, b), (x,)))
            loss = loss_fn(out, y)
            return loss, (torch.stack(rec.squares), loss.detach())

        (g_params, g_eps), (squares, losses) = vmap(grad(one, argnums=(0, 2), has_aux=True))(
            params, buffers, self._eps((x.shape[0],)), x, y)
        return g_params, g_eps, squares, losses

    def _looped(self, trials: list[tuple[nn.Module, torch.Tensor, torch.Tensor]], lo: int) -> tuple[Any, ...]:
        grads: dict[str, list[torch.Tensor]] = {}
        eps_grads: list[list[torch.Tensor]] = [[] for _ in self.probe.calls]
        squares, losses = [], []
        for k, (module, x, y) in enumerate(trials):
            rec = Recorder()
            handles = rec.attach(module)
            eps = [e.requires_grad_() for e in self._eps(())]
            rec.start(eps)
            try:
                with seeded_global(self.seed, self.first + lo + k):  # dropout and other global draws: trial k's
                    loss = self.loss(first_tensor(module(x)), y)
            finally:
                for h in handles:
                    h.remove()
            if len(rec.calls) != len(eps):
                raise ValueError("factory: the trials' modules differ in the modules their forward calls; "
                                 "every trial must be the same architecture")
            names = [n for n, _ in module.named_parameters()]
            params = [p for _, p in module.named_parameters()]
            got = torch.autograd.grad(loss, params + eps, allow_unused=True)
            for name, p, gp in zip(names, params, got[:len(params)], strict=True):
                grads.setdefault(name, []).append(torch.zeros_like(p) if gp is None else gp)
            for i, ge in enumerate(got[len(params):]):
                eps_grads[i].append(torch.zeros_like(eps[i]) if ge is None else ge)
            squares.append(torch.stack(rec.squares).detach())
            losses.append(loss.detach())
        return ({k: torch.stack(v) for k, v in grads.items()}, [torch.stack(v) for v in eps_grads],
                torch.stack(squares), torch.stack(losses))

    def _store(self, stats: dict[str, np.ndarray], lo: int, hi: int, grads: dict[str, torch.Tensor],
               eps_grads: list[torch.Tensor], squares: torch.Tensor, losses: torch.Tensor) -> None:
        """Sums of squares in float64 (a float32 entry of 1e-20 has a float32 square of 0), per module."""
        index = {name: i for i, name in enumerate(self.probe.modules)}
        m = len(index)
        rows = hi - lo

        def sq(t: torch.Tensor) -> np.ndarray:
            return t.detach().to(torch.float64).pow(2).reshape(rows, -1).sum(dim=1).numpy()

        out_sq, q_sum, q_n = np.zeros((rows, m)), np.zeros((rows, m)), np.zeros(m)
        squares64 = squares.detach().to(torch.float64).numpy()
        for i, (name, shape) in enumerate(self.probe.calls):
            out_sq[:, index[name]] += sq(eps_grads[i])
            q_sum[:, index[name]] += squares64[:, i]
            q_n[index[name]] += float(np.prod(shape))
        w_sq, b_sq, total = np.zeros((rows, m)), np.zeros((rows, m)), np.zeros(rows)
        for full, g in grads.items():
            owner, _, local = full.rpartition(".")
            s = sq(g)
            total += s
            if owner in index and local.startswith("weight"):
                w_sq[:, index[owner]] += s
            elif owner in index and local.startswith("bias"):
                b_sq[:, index[owner]] += s
        for key, value in (("grad_out", np.sqrt(out_sq)), ("q", q_sum / q_n), ("grad_w", np.sqrt(w_sq)),
                           ("grad_b", np.sqrt(b_sq)), ("grad_norm", np.sqrt(total)),
                           ("loss", losses.detach().to(torch.float64).numpy())):
            stats[key][lo:hi] = value


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"

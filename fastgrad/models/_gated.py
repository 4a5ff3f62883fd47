"""What the LSTM and GRU share: the spec's fields and checks, the lowering, the outputs, given arrays, trial arrays.

Not a model family itself (the leading underscore keeps it out of the registry's discovery).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from fastgrad.activations import loop
from fastgrad.codes import MEMORY_CHRONO, MEMORY_CONSTANT, NORMAL, ORTHOGONAL
from fastgrad.executor import run_blocks, threads_context
from fastgrad.explicit import check_array
from fastgrad.initializers import BIAS_INITS, RECURRENT_INITS, recurrent_kind
from fastgrad.kernels import cpu_rnn, gates
from fastgrad.kernels.draw import draw_choice
from fastgrad.models.base import Plan
from fastgrad.models.rnn import RNN_CODES
from fastgrad.results import Result
from fastgrad.specs import INPUT_INITS, RNN_LOSSES, _memory_bias, check_choice, check_float, check_int, recurrent_bias
from fastgrad.trials import trial_args
from fastgrad.version import __version__


@dataclass(frozen=True)
class _Gated:
    """The fields and checks the LSTM and GRU specs share (see :class:`LSTM`)."""

    steps: int
    hidden: int
    inputs: int
    init: str = "normal"
    gain: float = 1.0
    input_init: str = "normal"
    input_scale: float = 1.0
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    loss: str = "last"
    chrono_max: int | None = None
    sigma_b2: float | None = None
    jacobian: bool = False

    GATES: ClassVar[int] = 0
    MEMORY: ClassVar[str] = ""

    def _check(self) -> None:
        for name in ("steps", "hidden", "inputs"):
            check_int(name, getattr(self, name))
        check_choice("init", self.init, RECURRENT_INITS)
        check_choice("input_init", self.input_init, INPUT_INITS)
        check_choice("loss", self.loss, RNN_LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "input_scale"):
            check_float(name, getattr(self, name))
        self.bias()  # refuses sigma_b unless normal, bias_value unless constant
        memory = _memory_bias(self.MEMORY, getattr(self, self.MEMORY))
        if self.chrono_max is not None:
            check_int("chrono_max", self.chrono_max, minimum=3)
            if memory != "chrono":
                raise ValueError(f"chrono_max: applies only with {self.MEMORY}='chrono'")
        if not isinstance(self.jacobian, (bool, np.bool_)):
            raise ValueError(f"jacobian: expected True or False, got {self.jacobian!r}")

    @property
    def depth(self) -> int:
        """The number of steps (the network's depth in time)."""
        return self.steps

    def bias(self) -> tuple[int, float]:
        """The init of every bias entry, before the memory gate's is set, as ``(kind, scale)``."""
        return recurrent_bias(self.bias_init, self.sigma_b, self.sigma_b2, self.bias_value)

    def input_kind(self) -> tuple[int, float]:
        """Each gate's input block (d, n) as ``(kind, scale)``."""
        if self.input_init == "orthogonal":
            return ORTHOGONAL, self.input_scale
        if self.input_init == "xavier_normal":
            return NORMAL, self.input_scale * math.sqrt(2.0 / (self.inputs + self.hidden))
        return NORMAL, self.input_scale / math.sqrt(self.inputs)

    def memory(self) -> tuple[bool, float]:
        """``(chrono, value)``: the memory gate's constant bias, or chrono's T_max (default ``steps``)."""
        value = getattr(self, self.MEMORY)
        if value == "chrono":
            return True, float(self.chrono_max or max(self.steps, 3))
        return False, float(value)


class Cell(NamedTuple):
    """What differs between the LSTM and the GRU in the code they share: set by each cell's module."""

    name: str
    """``"lstm"`` or ``"gru"``."""
    net: Any
    """The kernel file's ``Net`` type."""
    gates: tuple[str, ...]
    """The gates' names, in their column blocks' order."""
    biases: tuple[str, ...]
    """The bias arguments of the explicit routine (``b``; or ``b_ih``, ``b_hh``)."""
    memory: bool
    """Whether the cell has a memory state c (the LSTM's ``grad_c``, ``jacobian_c_norm``)."""
    stats: Callable[[int, int, bool, np.dtype], Any]
    """``stats(trials, steps, jacobian, dtype)``: the kernels' empty output rows."""
    explicit: Callable[..., None]
    """``explicit(net, W_h, W_x, *biases, x, y, stats, lo, hi)``: the kernel over given arrays."""
    draw_arrays: Callable[..., None]
    """``draw_arrays(init, seed, idx, W_h, W_x, *biases, x, y)``: the kernel that draws trial arrays."""


def gated(spec: Any, cell: Cell, dtype: str = "float64") -> tuple[Any, gates.Init]:
    """An LSTM or GRU spec's kernel arguments: the cell's ``Net`` and the blocked gate draws' ``Init``.

    Parameters
    ----------
    spec : LSTM or GRU
    cell : Cell
    dtype : {"float32", "float64"}

    Returns
    -------
    (Net, gates.Init)
    """
    w_kind, w_scale = recurrent_kind(spec.init, spec.hidden, spec.gain)
    x_kind, x_scale = spec.input_kind()
    b_kind, b_scale = spec.bias()
    chrono, memory = spec.memory()
    init = gates.Init(draw_choice([w_kind, x_kind], dtype), spec.hidden, spec.inputs, spec.GATES, w_kind, w_scale,
                      x_kind, x_scale, b_kind, b_scale, 1, MEMORY_CHRONO if chrono else MEMORY_CONSTANT, memory)
    return gated_net(cell, spec.loss, spec.jacobian, dtype), init


def gated_net(cell: Cell, loss: str, jacobian: bool = False, dtype: str = "float64") -> Any:
    """The cell's kernel ``Net``: the sigmoid and tanh loops and the loss code.

    Parameters
    ----------
    cell : Cell
    loss : {"last", "all", "probe"}
    jacobian : bool
    dtype : {"float32", "float64"}

    Returns
    -------
    Net
    """
    return cell.net(loop("sigmoid", dtype), loop("tanh", dtype), RNN_CODES[loss],
                    cpu_rnn.JACOBIAN if jacobian else cpu_rnn.NO_JACOBIAN)


def gated_arrays(stats: Any, cell: Cell) -> dict[str, np.ndarray]:
    """The result arrays of an LSTM or GRU run, as views of the kernel's outputs.

    (T, S): ``grad_h`` (and the LSTM's ``grad_c``), ``q``, ``grad_whh_step`` and
    ``grad_whh_<gate>_step`` per gate; (T,): ``grad_whh``, ``grad_whh_<gate>``,
    ``grad_wxh`` and the biases' ``grad_b`` (LSTM) or ``grad_b_ih``, ``grad_b_hh`` (GRU); with the
    Jacobian norms, (T, S) ``jacobian_norm`` = ||dh_S/dh_t||_F and the LSTM's ``jacobian_c_norm`` =
    ||dc_S/dc_t||_F of the batch's first sequence.
    """
    arrays = {"grad_h": stats.grad_h}
    if cell.memory:
        arrays["grad_c"] = stats.grad_c
    arrays["q"] = stats.q
    names = ["grad_whh"] + [f"grad_whh_{g}" for g in cell.gates]
    arrays.update({name + "_step": stats.step[:, :, k] for k, name in enumerate(names)})
    biases = ["grad_b"] if len(cell.biases) == 1 else [f"grad_{b}" for b in cell.biases]
    arrays.update({name: stats.totals[:, k] for k, name in enumerate(names + ["grad_wxh"] + biases)})
    if stats.jac.shape[1]:
        arrays["jacobian_norm"] = stats.jac
        if cell.memory:
            arrays["jacobian_c_norm"] = stats.jac_c
    return arrays


def gated_plan(spec: Any, cell: Cell, trials: int, batch: int, seed: int, dt: np.dtype, first: int,
               generated: Callable[..., None]) -> Plan:
    """A generated run of an LSTM or GRU: its output arrays, kernel call and kernel key."""
    net, init = gated(spec, cell, dt.name)
    stats = cell.stats(trials, spec.steps, spec.jacobian, dt)

    def block(lo: int, hi: int) -> None:
        generated(net, init, seed, first, batch, stats, lo, hi)

    return gated_arrays(stats, cell), block, (generated, dt.name, init.draw, spec.jacobian)


def gated_backprop(cell: Cell, W_h: np.ndarray, W_x: np.ndarray, biases: dict[str, np.ndarray], x: np.ndarray,
                   y: np.ndarray, loss: str, threads: int | None, jacobian: bool) -> Result:
    """The checks and the run of :func:`fastgrad.lstm_backprop` and :func:`fastgrad.gru_backprop`."""
    check_choice("loss", loss, RNN_LOSSES)
    if not isinstance(jacobian, (bool, np.bool_)):
        raise ValueError(f"jacobian: expected True or False, got {jacobian!r}")
    jacobian = bool(jacobian)
    n_gates = len(cell.gates)
    W_h = check_array("W_h", W_h, 3)
    dt = W_h.dtype
    W_x = check_array("W_x", W_x, 3, dt)
    checked = {name: check_array(name, v, 2, dt) for name, v in biases.items()}
    x = check_array("x", x, 4, dt)
    y = check_array("y", y, 4 if loss == "all" else 3, dt)
    trials, n, g = W_h.shape
    if g != n_gates * n:
        raise ValueError(f"W_h: expected (T, n, {n_gates} n) for the {cell.name.upper()}'s {n_gates} gates, "
                         f"got {W_h.shape}")
    _, steps, batch, d = x.shape
    expected = {"W_x": (trials, d, g), **{name: (trials, g) for name in checked}, "x": (trials, steps, batch, d),
                "y": (trials, steps, batch, n) if loss == "all" else (trials, batch, n)}
    for name, arr in (("W_x", W_x), *checked.items(), ("x", x), ("y", y)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {arr.shape}")
    y4 = np.ascontiguousarray(y if loss == "all" else y[:, None])
    net = gated_net(cell, loss, jacobian, dt.name)
    b = list(checked.values())
    stats = cell.stats(trials, steps, jacobian, dt)

    def block(lo: int, hi: int) -> None:
        cell.explicit(net, W_h, W_x, *b, x, y4, stats, lo, hi)

    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(block, 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    out = {k: np.ascontiguousarray(v) for k, v in gated_arrays(stats, cell).items()}
    return Result(out, trials=trials, batch=batch, dtype=dt.name, version=__version__, threads=n_threads,
                  run_seconds=seconds)


def gated_draws(spec: Any, cell: Cell, seed: int, trials: int | np.ndarray, batch: int,
                dtype: str = "float64") -> tuple[np.ndarray, ...]:
    """The arrays of LSTM or GRU trials, exactly as :func:`fastgrad.run` draws them.

    Returns
    -------
    tuple of numpy.ndarray
        ``(W_h, W_x, *biases, x, y)``, shaped as the cell's explicit routine takes them.
    """
    idx, batch, seed, dt = trial_args(seed, trials, batch, dtype)
    t = idx.size
    n, d, steps, g = spec.hidden, spec.inputs, spec.steps, spec.GATES * spec.hidden
    _, init = gated(spec, cell, dt.name)
    wh, wx = np.empty((t, n, g), dtype=dt), np.empty((t, d, g), dtype=dt)
    biases = [np.empty((t, g), dtype=dt) for _ in cell.biases]
    x = np.empty((t, steps, batch, d), dtype=dt)
    y = np.empty((t, steps if spec.loss == "all" else 1, batch, n), dtype=dt)
    cell.draw_arrays(init, seed, idx, wh, wx, *biases, x, y)
    return (wh, wx, *biases, x, y if spec.loss == "all" else y[:, 0])


def gated_working(spec: Any, batch: int) -> int:
    """Elements of one LSTM or GRU trial's working memory: G gate blocks, every step's activations (BPTT)."""
    n, d, g = spec.hidden, spec.inputs, spec.GATES
    return g * (n * n + d * n + 2 * n) + spec.steps * batch * (d + (2 * g + 2) * n)

"""What the rest of fastgrad knows about a model family: one :class:`Model` per family, in one registry.

A model module (``fastgrad/models/<name>.py``) holds its spec, its lowering to kernel
arguments, its output names, its kernel entry points (generated runs, given arrays, trial
arrays, spectra, training) and its capabilities, and registers one :class:`Model`.
Everything else (``engine``, ``spectra``, ``train``, ``sweep``, ``warmup``, ``cli``,
``analysis``, ``plot``) asks the registry: :func:`of` a spec, :func:`named` a name.
No module outside a model's own switches on its type or name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from fastgrad.executor import Block

Plan = tuple[dict[str, np.ndarray], Block, Any]
"""A generated run's output arrays (views the kernel fills), its kernel call over trials lo .. hi - 1,
and the key of the compiled kernel (with its dtype and compiled functions) for compile timing."""


@dataclass(frozen=True)
class TrainSetup:
    """What :func:`fastgrad.train` needs of a model to train it on a dataset.

    Attributes
    ----------
    spec : object
        The spec with the data's sizes (widths, steps, inputs).
    arrays : tuple of numpy.ndarray
        x, y, x_test, y_test as the training kernel takes them.
    n_params : int
        Parameters per trial (the length of the packed vector).
    layers : (int, int)
        How many weight and bias norms one epoch records.
    steps : int
        The per-layer or per-step ``grad_h`` recorded each epoch (0: none).
    call : callable
        ``call(seed, arrays, opt, epochs, batch, record, lo, hi)``: the training kernel over trials lo .. hi - 1.
    """

    spec: Any
    arrays: tuple[np.ndarray, ...]
    n_params: int
    layers: tuple[int, int]
    steps: int
    call: Callable[..., None]


class Model:
    """One model family: its spec class, capabilities and entry points.

    Subclasses set the class attributes and override the methods their family supports;
    the defaults refuse with a message naming the model.
    """

    name: ClassVar[str] = ""
    """The family's name in sweeps, stores, the command line (``--model``) and figures."""
    spec: ClassVar[type] = object
    """The spec class."""
    order: ClassVar[int] = 100
    """Where the family is listed (help texts, tables)."""
    recurrent: ClassVar[bool] = False
    """True if the depth axis is time steps (``steps``), False for layers (``depth``)."""
    main_metric: ClassVar[str] = "delta"
    """The statistic analysis and figures use by default."""
    cpu_only: ClassVar[str | None] = None
    """Why the family has no CUDA kernel (None: it has one)."""
    statistics: ClassVar[int] = 4
    """Output arrays of one layer (step) of a trial, counting opt-in ones: for memory estimates."""
    default_chunk: ClassVar[int] = 4096
    """Trials per kernel call of :func:`fastgrad.run` when no ``chunk`` is given."""
    uses_batch: ClassVar[bool] = True
    """False if a trial has one input whatever ``batch`` says (the chain)."""
    spectrum: ClassVar[bool] = False
    """Whether :func:`fastgrad.spectrum` computes its Jacobian spectra."""
    trainable: ClassVar[bool] = False
    """Whether :func:`fastgrad.train` trains it."""
    mean_field: ClassVar[bool] = False
    """Whether the fully connected mean-field theory (chi_1, the edge of chaos) describes it."""
    float64_draws: ClassVar[bool] = False
    """True if its trials draw in float64 arithmetic whatever the run's dtype (the chain)."""
    scale_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that set only the scales of the draws: cells differing in nothing else may share draws."""

    def plan(self, spec: Any, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        """The output arrays, kernel call and kernel key of a generated run (:func:`fastgrad.run`)."""
        raise NotImplementedError(self.name)

    def working(self, spec: Any, batch: int) -> int:
        """Elements of one trial's working memory (weights, inputs, activations): for memory estimates."""
        raise NotImplementedError(self.name)

    def trial_arrays(self, spec: Any, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        """Trial k's arrays exactly as a generated run draws them, shaped as the explicit routine takes them."""
        raise ValueError(f"spec: {self.name} has no trial arrays")

    def run_cuda(self, spec: Any, trials: int, batch: int, seed: int, dt: np.dtype, chunk: int | None,
                 first: int) -> dict[str, np.ndarray]:
        """Trials ``first ..`` on the GPU (only where :attr:`cpu_only` is None)."""
        raise ValueError(f"backend: {self.name} runs on the CPU only ({self.cpu_only}); use backend='cpu'")

    def spectrum_block(self, spec: Any, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        """The spectrum kernel call over trials lo .. hi - 1, its output rows (trials, k) and its kernel key."""
        raise ValueError(f"spec: Jacobian spectra are not computed for {self.name}")

    def train_setup(self, spec: Any, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        """The training kernel and its arrays for ``data`` (a :class:`fastgrad.data.Dataset`)."""
        raise ValueError(f"spec: fastgrad.train does not train {self.name}")

    def warmup_specs(self, activation: str) -> list[Any]:
        """Small specs whose runs compile this family's kernels (``fastgrad warmup``)."""
        return []

    def shares_draws(self, specs: list[Any]) -> bool:
        """Whether ``specs`` can run together over one draw per trial (:meth:`run_cells`)."""
        return False

    def backend_label(self, key: Any, backend: str) -> str:
        """What ran a generated run, as its :class:`~fastgrad.results.Result` names it (``key``: the plan's)."""
        return backend

    def grid_fields(self) -> tuple[list[str] | None, list[str]]:
        """The parameters a sweep's grid may name (None: any) and those it must name."""
        known = [f.name for f in dataclasses.fields(self.spec) if f.init]
        required = [f.name for f in dataclasses.fields(self.spec) if f.init and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        return known, required

    def spec_of(self, params: dict[str, Any]) -> Any:
        """The spec of a sweep cell's parameters."""
        return self.spec(**params)

    def run_cells(self, specs: list[Any], trials: int, batch: int, seed: int, dt: np.dtype, threads: int | None,
                  chunk: int, first_trial: int) -> list[Any]:
        """Run cells that differ only in scales over one draw per trial (where :meth:`shares_draws`)."""
        raise ValueError(f"specs: {self.name} cells do not share draws; run them one by one")


REGISTRY: dict[str, Model] = {}
"""Every model family, by name, in :attr:`Model.order`."""
_BY_SPEC: dict[type, Model] = {}


def register(model: Model) -> Model:
    """Add a model family to the registry (its module calls this once); returns it."""
    if model.name in REGISTRY and type(REGISTRY[model.name]) is not type(model):
        raise ValueError(f"model: {model.name!r} is registered twice")
    REGISTRY[model.name] = model
    _BY_SPEC[model.spec] = model
    for name in sorted(REGISTRY, key=lambda n: REGISTRY[n].order):  # keep the listing order
        REGISTRY[name] = REGISTRY.pop(name)
    return model


def of(spec: Any, what: str = "spec") -> Model:
    """The model family of a spec, or ValueError naming ``what`` and the families there are."""
    model = _BY_SPEC.get(type(spec))
    if model is None:
        known = ", ".join(m.spec.__name__ for m in REGISTRY.values())
        raise ValueError(f"{what}: expected a fastgrad model spec ({known}), got {type(spec).__name__}")
    return model


def named(name: Any, what: str = "model") -> Model:
    """The model family called ``name``, or ValueError naming ``what`` and the names there are."""
    model = REGISTRY.get(name) if isinstance(name, str) else None
    if model is None:
        raise ValueError(f"{what}: unknown {name!r}; choose one of {', '.join(REGISTRY)}")
    return model

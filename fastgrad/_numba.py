"""Numba defaults shared by every compiled loop in fastgrad.

One place decides how kernels are compiled:

* :func:`kernel` marks an entry point (a function Python calls): it is cached on
  disk (:mod:`fastgrad._cache`), so it compiles once per machine and version of
  its sources, not once per process. :func:`jit` marks a building block (called
  only from compiled code): never cached on its own, since its code is compiled
  into, and cached with, each kernel that calls it;
* every kernel is ``nogil``: threads of the engine run blocks of trials at once
  (no ``parallel=True``: its parfor pipeline compiled for ~16 s per kernel);
* ``error_model="numpy"`` so divisions do not carry a zero check, which lets
  LLVM vectorise loops that divide;
* no ``fastmath``: overflow to ``inf`` and ``nan`` is a measurement here, and
  the fast-math flags ``nnan``/``ninf`` would let LLVM assume it never happens.
  Only ``contract`` (fused multiply-add) is enabled; it keeps inf/nan semantics.

It also holds compile-time choices (:class:`Choice`), which let one kernel be
compiled for just the activation or draw it is called with, and two tiny LLVM
intrinsics, bit casts between integers and floats, that the vectorisable ``exp``
and the random generator need.

Kernels must not assign an array into a slice (``a[i:j] = b``): Numba's error
path for a shape mismatch formats strings and cost ~5 s of compilation; use
:func:`copy` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba as nb
import numba.experimental.function_type  # noqa: F401  # registers the typing of first-class functions
import numpy as np
from numba import types
from numba.core.imputils import lower_constant
from numba.core.types import WrapperAddressProtocol
from numba.extending import NativeValue, intrinsic, models, overload, register_model, typeof_impl, unbox

from fastgrad._cache import attach

FASTMATH = {"contract"}
REDUCE_FASTMATH = {"contract", "reassoc"}
"""For sums: ``reassoc`` lets LLVM split a reduction into vector lanes (a serial
sum of squares cost ~1.3 ns/element here) and keeps inf/nan semantics."""

JIT_OPTIONS: dict[str, Any] = {
    "error_model": "numpy",
    "fastmath": FASTMATH,
    "nogil": True,
}


def jit(func: Callable[..., Any] | None = None, **overrides: Any) -> Any:
    """Compile a building block with fastgrad's defaults (``numba.njit``, not cached).

    Parameters
    ----------
    func : callable, optional
        The Python function to compile. When omitted, a decorator is returned.
    **overrides
        Options that replace the defaults, e.g. ``inline="always"``.

    Returns
    -------
    numba dispatcher or decorator
    """
    options = {**JIT_OPTIONS, **overrides}
    if func is None:
        return nb.njit(**options)
    return nb.njit(**options)(func)


def kernel(func: Callable[..., Any]) -> Any:
    """Compile an entry point with fastgrad's defaults, cached on disk (see :mod:`fastgrad._cache`).

    Parameters
    ----------
    func : callable
        The Python function to compile.

    Returns
    -------
    numba dispatcher
    """
    dispatcher = attach(nb.njit(**JIT_OPTIONS)(func))
    _KERNELS.append(dispatcher)
    return dispatcher


_KERNELS: list[Any] = []


def compiled_kernels() -> int:
    """How many (kernel, signature) pairs this process has compiled or loaded from the cache so far."""
    return sum(len(d.overloads) for d in _KERNELS)


class Choice:
    """A compile-time choice passed to a kernel: an activation, a way of drawing weights.

    A kernel receives it like any argument, but its Numba type carries the choice
    (``activation[tanh]``), so the kernel is compiled, and cached, once per choice
    it is called with, and code that branches on it compiles one branch. At run
    time it is an empty value.

    Parameters
    ----------
    kind : str
        What is chosen (``"activation"``, ``"draw"``, ``"jacobian"``).
    name : str
        The choice.
    """

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name

    def __repr__(self) -> str:
        return f"Choice({self.kind!r}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


class ChoiceType(types.Type):
    """The Numba type of a :class:`Choice`: ``kind[name]``."""

    def __init__(self, kind: str, choice: str) -> None:
        self.kind = kind
        self.choice = choice
        super().__init__(name=f"{kind}[{choice}]")


register_model(ChoiceType)(models.OpaqueModel)


@typeof_impl.register(Choice)
def _typeof_choice(value: Choice, context: Any) -> ChoiceType:
    return ChoiceType(value.kind, value.name)


@unbox(ChoiceType)
def _unbox_choice(typ: ChoiceType, obj: Any, c: Any) -> NativeValue:
    return NativeValue(c.context.get_dummy_value())


@lower_constant(ChoiceType)
def _constant_choice(context: Any, builder: Any, ty: ChoiceType, value: Any) -> Any:
    return context.get_dummy_value()


def chosen(choice: Any, kind: str) -> str | None:
    """In an ``@overload``: the name of ``choice`` if it is a Numba ``kind[name]`` type, else None.

    Parameters
    ----------
    choice : numba type
    kind : str

    Returns
    -------
    str or None
    """
    if isinstance(choice, ChoiceType) and choice.kind == kind:
        return choice.choice
    return None


class FirstClass(WrapperAddressProtocol):
    """A cached kernel compiled for one signature, passed to other kernels as a function pointer.

    Kernels receive it like any argument (its Numba type is ``FunctionType(signature)``)
    and call it. A kernel is then compiled once for every function of that
    signature, and each function once (and cached): the activation loops and the
    weight draws are passed this way, so a new activation costs its own loop
    (~1-2 s to compile), not a new kernel (~6-9 s). The function is compiled, or
    loaded from the cache, the first time a kernel call asks for its address.

    Parameters
    ----------
    dispatcher : numba dispatcher
        From :func:`kernel`.
    signature : numba signature
        The one signature it is compiled for.
    name : str
        What it is (an activation name, a kind of draw).
    """

    def __init__(self, dispatcher: Any, signature: Any, name: str) -> None:
        self.dispatcher = dispatcher
        self.name = name
        self._sig = signature
        self._address: int | None = None

    def signature(self) -> Any:
        """The Numba signature."""
        return self._sig

    def __wrapper_address__(self) -> int:
        """The address of the compiled function's C wrapper (compiling or loading it on first use)."""
        if self._address is None:
            self.dispatcher.compile(self._sig.args)
            cres = self.dispatcher.get_compile_result(self._sig)
            self._address = int(cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name))
        return self._address

    def __repr__(self) -> str:
        return f"FirstClass({self.name!r}, {self._sig})"


@nb.njit(**JIT_OPTIONS)
def call(function: Any, a: Any, b: Any, c: Any, d: Any) -> None:
    """``function(a, b, c, d)`` for a :class:`FirstClass` function: kernels call them only through this.

    Numba compiles, at every call site of a first-class function, a fallback that
    fetches its address through the Python API; one call site per signature keeps
    that code out of the kernels (~0.8 s of an MLP kernel's compilation).
    """
    function(a, b, c, d)


@nb.njit(**JIT_OPTIONS)
def copy(dst: Any, src: Any) -> None:
    """``dst[i] = src[i]`` over two 1-D arrays of the same size (no slice assignment in kernels)."""
    for i in range(src.size):
        dst[i] = src[i]


def max_threads() -> int:
    """The most threads a run may use: Numba's ``NUMBA_NUM_THREADS`` (by default the number of cores)."""
    return int(nb.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def _bitcast(source: Any, target: Any) -> Any:
    """An intrinsic reinterpreting the bits of a ``source`` value as a ``target`` (no conversion)."""

    def typer(typingctx: Any, value: Any) -> Any:
        if not isinstance(value, type(source)):  # Integer or Float, as the source
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    return intrinsic(typer)


# Typed as Any: Numba's intrinsic wrapper hides the typing context from callers.
int64_as_float64: Any = _bitcast(types.int64, types.float64)
float64_as_int64: Any = _bitcast(types.float64, types.int64)
int32_as_float32: Any = _bitcast(types.int32, types.float32)
float32_as_int32: Any = _bitcast(types.float32, types.int32)


def is_float32(array: Any) -> bool:
    """Whether ``array`` holds float32: a constant where compiled, so the other branch is dropped."""
    return bool(array.dtype == np.float32)


@overload(is_float32, inline="always", target="generic")  # generic: CPU and CUDA
def _is_float32(array: Any) -> Any:
    answer = array.dtype == types.float32

    def impl(array: Any) -> bool:  # the signature must be is_float32's, annotations included
        return answer

    return impl

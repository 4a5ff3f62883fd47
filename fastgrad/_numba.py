"""Numba defaults shared by every compiled loop in fastgrad.

One place decides how kernels are compiled:

* ``cache=True`` so a kernel compiles once per machine, not once per process;
* ``error_model="numpy"`` so divisions do not carry a zero check, which lets
  LLVM vectorise loops that divide;
* no ``fastmath``: overflow to ``inf`` and ``nan`` is a measurement here, and
  the fast-math flags ``nnan``/``ninf`` would let LLVM assume it never happens.
  Only ``contract`` (fused multiply-add) is enabled; it keeps inf/nan semantics.

It also holds two tiny LLVM intrinsics, bit casts between integers and floats,
that the vectorisable ``exp`` and the random generator need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba as nb
from numba import types
from numba.extending import intrinsic

FASTMATH = {"contract"}
REDUCE_FASTMATH = {"contract", "reassoc"}
"""For sums: ``reassoc`` lets LLVM split a reduction into vector lanes (a serial
sum of squares cost ~1.3 ns/element here) and keeps inf/nan semantics."""

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "error_model": "numpy",
    "fastmath": FASTMATH,
    "nogil": True,
}


def jit(func: Callable[..., Any] | None = None, **overrides: Any) -> Any:
    """Compile ``func`` with fastgrad's defaults (``numba.njit``).

    Parameters
    ----------
    func : callable, optional
        The Python function to compile. When omitted, a decorator is returned.
    **overrides
        Options that replace the defaults, e.g. ``parallel=True``.

    Returns
    -------
    numba dispatcher or decorator
    """
    options = {**JIT_OPTIONS, **overrides}
    if func is None:
        return nb.njit(**options)
    return nb.njit(**options)(func)


def max_threads() -> int:
    """The number of threads Numba's parallel loops can use (``NUMBA_NUM_THREADS``)."""
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

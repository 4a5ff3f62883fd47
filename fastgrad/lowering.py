"""What every model's lowering shares (each model lowers its own spec in ``fastgrad/models/<model>.py``).

A spec becomes the documented structures of its kernel file (``Net``, ``Init``),
holding integer codes from :mod:`fastgrad.codes` and compile-time choices
(:class:`fastgrad._numba.Choice`), in its model module only.
"""

from __future__ import annotations

from fastgrad.activations import CODES


def activation_code(act: object) -> int:
    """The integer code (CUDA kernels) of an activation loop of a lowered ``Net``.

    Parameters
    ----------
    act : FirstClass

    Returns
    -------
    int
    """
    name = getattr(act, "name", None)
    if name not in CODES:
        raise ValueError(f"not an activation loop: {act!r}")
    return CODES[name]



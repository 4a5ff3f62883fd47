"""Checks of the arrays users give (weights, inputs, targets), shared by every model's explicit routine.

Each model's routine (``fastgrad.mlp_backprop``, ``rnn_backprop``, ...) lives in its model
module (``fastgrad/models/<model>.py``) and checks its arrays with these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_array(name: str, value: object, ndim: int, dtype: np.dtype | None = None) -> np.ndarray:
    """Validate a user array: float32/float64, ``ndim`` dimensions, all finite.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : array_like
    ndim : int
    dtype : numpy.dtype, optional
        Required dtype (that of the first array of a call); any float if None.

    Returns
    -------
    numpy.ndarray
        C-contiguous, not copied when already so.
    """
    arr = np.asarray(value)
    if arr.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise ValueError(f"{name}: dtype {arr.dtype} differs from the other arrays' {dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name}: empty array, shape {arr.shape}")
    # A finite sum proves every entry finite (inf and nan propagate) without a
    # full-size temporary; only a non-finite sum (or an overflowing one) needs the exact check.
    if not np.isfinite(arr.sum()) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains nan or inf")
    return np.ascontiguousarray(arr)


def layers(name: str, value: np.ndarray | Sequence[np.ndarray], vector: bool,
            dtype: np.dtype) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate W (T, L, n, n) / b (T, L, n), or a list of per-layer arrays.

    Returns the per-layer arrays (views) and the layers packed per trial as
    (T, total): a view of a stacked array, a copy of a list.
    """
    ndim = 2 if vector else 3
    if isinstance(value, np.ndarray) and value.ndim == ndim + 1:
        stacked = check_array(name, value, ndim + 1, dtype)
        return [stacked[:, l] for l in range(stacked.shape[1])], stacked.reshape(stacked.shape[0], -1)
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence) or len(value) == 0:
        shape = "(T, L, n)" if vector else "(T, L, n, n)"
        raise ValueError(f"{name}: expected an array of shape {shape} or a non-empty list of per-layer arrays")
    layers = [check_array(f"{name}[{l}]", v, ndim, dtype) for l, v in enumerate(value)]
    trials = layers[0].shape[0]
    if any(v.shape[0] != trials for v in layers):
        raise ValueError(f"{name}: layers disagree on the number of trials: {[v.shape[0] for v in layers]}")
    return layers, np.concatenate([v.reshape(trials, -1) for v in layers], axis=1)



"""The W-transformer's peers (benchmarks/peers.py) give fastgrad's statistics, on a tiny network.

Each test is skipped when its package is absent. torch.compile is not tested here: it
compiles for over a minute even on this network; scripts/compare_peers.py checks it.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg
from benchmarks import peers

NAMES = ("W_q", "W_k", "W_v", "W_o", "W_1", "W_2", "x", "y")
SPEC = fg.Transformer(depth=2, tokens=4, width=8, heads=2, norm="pre")


def _arrays() -> dict[str, np.ndarray]:
    return dict(zip(NAMES, fg.transformer_trial_arrays(SPEC, seed=0, trials=2, batch=3), strict=True))


def _check(got: dict[str, object], a: dict[str, np.ndarray]) -> None:
    ref = fg.transformer_backprop(*(a[k] for k in NAMES), heads=SPEC.heads).arrays
    assert sorted(got) == sorted(ref)
    for k, v in got.items():
        np.testing.assert_allclose(np.asarray(v), ref[k], rtol=1e-12, atol=0, err_msg=k)


def test_torch_batched():
    pytest.importorskip("torch")
    a = _arrays()
    _check(peers.torch_transformer_batched(a, SPEC.heads), a)


def test_jax_vmap():
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        a = _arrays()
        _check(peers.jax_transformer(SPEC.heads)(a), a)
    finally:
        jax.config.update("jax_enable_x64", before)

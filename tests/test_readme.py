"""The README's Python blocks run as written, in order, at small sizes."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

# Sizes shrunk so the whole README runs in seconds; nothing else is changed.
SMALLER = [
    (r"trials=10_000", "trials=8"),
    (r"trials=200_000", "trials=500"),
    (r"trials=1000\b", "trials=4"),
    (r"trials=500\b", "trials=20"),
    (r"trials=256\b", "trials=4"),
    (r"trials=100\b", "trials=10"),
    (r"trials=16\b", "trials=2"),
    (r"epochs=20\b", "epochs=1"),
    (r"epochs=8\b", "epochs=1"),
    (r"samples=1000\b", "samples=64"),
    (r'activations=\["tanh", "relu"\]', 'activations=["tanh"]'),
    (r'dtypes=\["float32", "float64"\]', 'dtypes=["float64"]'),
]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_there_are_blocks():
    assert len(python_blocks()) >= 6


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="the training block uses the digits")
    monkeypatch.chdir(tmp_path)  # the blocks write runs/ and figures/ where they run
    namespace: dict = {}
    for i, block in enumerate(python_blocks()):
        code = block
        for pattern, small in SMALLER:
            code = re.sub(pattern, small, code)
        try:
            exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as err:  # name the block, so a failure says where to look
            raise AssertionError(f"README python block {i + 1} failed: {err!r}\n{code}") from err
        if i == 0:  # what the first block says of its results
            first = dict(namespace)
    # The statistics of trial k from its arrays equal the run's, bit for bit (the README says so).
    import numpy as np

    same, res = first["same"], first["res"]
    for m in ("grad_w", "grad_b", "delta", "q"):
        assert np.array_equal(getattr(same, m), getattr(res, m)[:3]), m

"""Each job's loop written once: the recurrent cells' shared interface, and the loops that use it.

The training loop (``cpu_train_seq.train_kernel``) and the Jacobian-spectrum loop
(``cpu_spectrum.spectrum_kernel``) are each written once for every recurrent cell: each is
compiled with a cell's kernel file, calling its functions, into that cell's entry point.
These tests hold the structure that makes that safe: every cell exposes the same functions
with the same signatures, every recurrent kernel file has its entry points (and is in their
cache stamps), and the packed training layout is the one the records have. The numbers
themselves are checked against NumPy and PyTorch in tests/test_train.py and
tests/test_spectra.py, and bit for bit in tests/test_golden.py.
"""

import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import _cache
from fastgrad.kernels import cpu_spectrum, cpu_train_seq

KERNELS = Path(cpu_train_seq.__file__).parent
INTERFACE = ("workspace", "draw_params", "draw_inputs", "forward", "train_backward", "jacobian_step")
# (G, bias vectors): PyTorch's nn.RNN, nn.LSTM (b_ih + b_hh folded into one) and nn.GRU (b_ih, b_hh).
SHAPES = {"RNN": (1, 1), "LSTM": (4, 1), "GRU": (3, 2)}


def _signature(func):
    return list(inspect.signature(func.py_func).parameters)


def _cells():
    """The recurrent kernel files: those that define the cell interface."""
    return sorted(path.stem.removeprefix("cpu_") for path in KERNELS.glob("cpu_*.py")
                  if "def train_backward(" in path.read_text() and "def jacobian_step(" in path.read_text())


def test_the_cells_are_the_three_recurrent_models():
    assert _cells() == ["gru", "lstm", "rnn"]


def test_every_cell_exposes_the_same_functions_with_the_same_signatures():
    cells = [importlib.import_module(f"fastgrad.kernels.cpu_{name}") for name in _cells()]
    first = cells[0]
    for cell in cells:
        for name in INTERFACE:
            assert len(_signature(getattr(cell, name))) == len(_signature(getattr(first, name))), (cell, name)
        for name in ("GATES", "BIASES", "READOUT"):
            assert isinstance(getattr(cell, name), int), (cell, name)
        assert hasattr(cell, "Net")


def test_every_cell_has_its_entry_points_and_is_in_their_cache_stamps():
    # A kernel file with a cell's functions is a cell: each loop has an entry point for it, and the
    # loops' cached code is recompiled when it changes (the stamp covers what a loop's module imports).
    for name in _cells():
        assert hasattr(cpu_train_seq, f"train_{name}") and hasattr(cpu_spectrum, f"{name}_generated"), name
        for loop in (cpu_train_seq, cpu_spectrum):
            assert (KERNELS / f"cpu_{name}.py").resolve() in _cache.dependencies(Path(loop.__file__)), (loop, name)


@pytest.mark.parametrize("model", ["RNN", "LSTM", "GRU"])
def test_cell_shapes_and_the_packed_layout(model):
    # The loop packs [W_h, W_x, biases, W_o, b_o] by the cell's GATES and BIASES: PyTorch's shapes.
    cell = importlib.import_module(f"fastgrad.kernels.cpu_{model.lower()}")
    gates, biases = SHAPES[model]
    assert (cell.GATES, cell.BIASES) == (gates, biases)
    n, d, k = 5, 2, 1  # the adding problem: 2 inputs, 1 output
    res = fg.train(getattr(fg, model)(steps=4, hidden=n, inputs=d), fg.data.adding(samples=16, steps=4), epochs=1,
                   batch=8, trials=2)
    g = gates * n
    assert res.initial.shape[1] == n * g + d * g + biases * g + n * k + k
    np.testing.assert_array_equal(res.initial[:, -k:], 0.0)  # b_o starts at 0, the last part


@pytest.mark.parametrize("model", ["RNN", "LSTM", "GRU"])
def test_the_spectrum_loop_starts_from_the_identity_for_every_cell(model):
    # dh_S/dh_S = I exactly: the loop's own set-up, with no step taken.
    spec = getattr(fg, model)(steps=3, hidden=4, inputs=2)
    s = fg.spectrum(spec, trials=3, batch=2, step=3)
    np.testing.assert_array_equal(s.singular_values, 1.0)

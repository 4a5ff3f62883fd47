"""fg.data.sort_digits: shapes, determinism, the targets against a plain sort of the decoded inputs, refusals."""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg


def test_shapes_split_and_determinism():
    a = fg.data.sort_digits(samples=20, tokens=5, digits=4, width=12, test_fraction=0.25, seed=3)
    b = fg.data.sort_digits(samples=20, tokens=5, digits=4, width=12, test_fraction=0.25, seed=3)
    c = fg.data.sort_digits(samples=20, tokens=5, digits=4, width=12, test_fraction=0.25, seed=4)
    assert a.x_train.shape == (15, 5, 12) and a.y_train.shape == (15, 5, 4)
    assert a.x_test.shape == (5, 5, 12) and a.y_test.shape == (5, 5, 4)
    assert a.task == "classification" and a.features == 12 and a.outputs == 4
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x_train, c.x_train)


def test_targets_are_the_sorted_digits_and_inputs_carry_digit_and_position():
    tokens, digits, width = 6, 5, 16
    d = fg.data.sort_digits(samples=50, tokens=tokens, digits=digits, width=width, test_fraction=0.0, seed=1)
    x, y = d.x_train, d.y_train
    scale = np.sqrt(width / 2)
    assert set(np.unique(x)) == {0.0, scale}
    assert np.allclose((x ** 2).mean(-1), 1.0)  # two channels of sqrt(width / 2): mean square 1
    shown = x[..., :digits].argmax(-1)  # decode the digits, then sort them independently
    np.testing.assert_array_equal(x[..., :digits].sum(-1), scale)
    place = x[..., digits:digits + tokens]
    np.testing.assert_array_equal(place, np.broadcast_to(scale * np.eye(tokens), place.shape))
    assert not x[..., digits + tokens:].any()
    np.testing.assert_array_equal(y.argmax(-1), np.sort(shown, axis=1))
    np.testing.assert_array_equal(y.sum(-1), 1.0)


@pytest.mark.parametrize(("kwargs", "name"), [({"width": 10}, "width"), ({"digits": 1}, "digits"),
                                              ({"tokens": 0}, "tokens"), ({"samples": 1}, "samples"),
                                              ({"test_fraction": 1.0}, "test_fraction")])
def test_refusals_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fg.data.sort_digits(**kwargs)

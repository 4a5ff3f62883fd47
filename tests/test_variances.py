"""Initialisations given as variances (sigma_w2, sigma_b2), as the mean-field literature states them."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.report import plot_store


def test_a_variance_is_the_square_of_the_std():
    # sqrt(2.25) = 1.5 and sqrt(0.01) = 0.1 exactly: the same trials, bit for bit.
    a = fg.run(fg.MLP(depth=4, width=6, init="scaled_normal", sigma_w2=2.25, sigma_b2=0.01), trials=5, batch=3)
    b = fg.run(fg.MLP(depth=4, width=6, init="scaled_normal", sigma_w=1.5, sigma_b=0.1), trials=5, batch=3)
    for k in a.arrays:
        assert a.arrays[k].tobytes() == b.arrays[k].tobytes()
    spec = fg.MLP(depth=2, width=3, init="scaled_normal", sigma_w2=2.0)
    assert spec.weight_std == np.sqrt(2.0) and spec.bias_std == 0.0
    assert fg.Chain(depth=2, sigma_b2=4.0).bias_std == 2.0
    assert fg.RNN(steps=2, hidden=2, inputs=1, sigma_b2=0.25).bias() == fg.RNN(steps=2, hidden=2, inputs=1,
                                                                               sigma_b=0.5).bias()


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma_w": 1.0, "sigma_w2": 1.0}, "sigma_w, sigma_w2: give the standard deviation or the variance"),
    ({"sigma_b": 0.1, "sigma_b2": 0.01}, "sigma_b, sigma_b2"),
    ({"sigma_w2": -1.0}, "sigma_w2: must be >= 0"),
    ({"sigma_b": -0.1}, "sigma_b: must be >= 0"),
    ({"sigma_w2": float("inf")}, "sigma_w2: must be finite"),
])
def test_one_of_std_or_variance(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fg.MLP(depth=2, width=3, **kwargs)


def test_a_variance_sweep_is_stored_and_drawn_on_variance_axes(tmp_path):
    store = tmp_path / "edge"
    fg.sweep("mlp", {"depth": 6, "width": 8, "init": "scaled_normal", "sigma_w2": [1.0, 2.0, 3.0],
                     "sigma_b2": [0.0, 0.05]}, trials=6, batch=4, store=store, progress=False)
    frame = fg.load(store)
    assert {"sigma_w2", "sigma_b2"} <= set(frame.columns) and "sigma_w" not in frame.columns
    assert sorted(frame.sigma_w2.unique()) == [1.0, 2.0, 3.0]
    import matplotlib.pyplot as plt

    captured = {}
    original = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured.setdefault(str(args[0]), [ax.get_xlabel() + "|" + ax.get_ylabel() for ax in fig.axes])
        return original(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        plot_store(store)
    finally:
        plt.Figure.savefig = original
    phase = [v for k, v in captured.items() if "phase_diagram" in k][0]
    assert phase[0] == r"$\sigma_w^2$|$\sigma_b^2$"

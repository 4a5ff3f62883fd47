"""Every figure draws without error (Agg) and is written as PNG and SVG."""

import numpy as np

import fastgrad as fg
from fastgrad import plot, stats


def test_figures(tmp_path):
    res = fg.run(fg.MLP(depth=5, width=6), trials=30, batch=2)
    res2 = fg.run(fg.MLP(depth=5, width=6, activation="relu", init="he_normal"), trials=30, batch=2)
    curves = stats.summary({"tanh": res, "relu": res2}, "delta", normalize=True)
    fig = plot.decay_curves(curves, {"tanh": np.linspace(0.1, 1, 5)}, title="t")
    paths = plot.save(fig, tmp_path / "decay")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    chain = fg.run(fg.Chain(depth=6), trials=300)
    boom = fg.run(fg.Chain(depth=6, init="constant", value=100.0, bias_init="centered"), trials=10)
    plot.save(plot.chain_figure(chain, boom), tmp_path / "chain")
    slope = np.random.default_rng(0).normal(size=(3, 4))
    slope[0, 0] = np.nan
    fig = plot.phase_diagram(np.linspace(0.5, 2, 4), np.linspace(0, 0.2, 3), slope,
                             (np.linspace(0, 0.2, 5), np.linspace(1, 1.8, 5)))
    plot.save(fig, tmp_path / "phase")
    rnn = fg.run(fg.RNN(steps=8, hidden=4, inputs=2), trials=10, batch=2)
    plot.save(plot.decay_curves(stats.summary({"g=1": rnn}, "grad_h")), tmp_path / "rnn")
    assert len(list(tmp_path.glob("*.png"))) == 4


def test_phase_diagram_draws_the_data_edge_and_each_theory_line():
    import numpy as np

    from fastgrad.plot import phase_diagram

    w2 = np.linspace(0.5, 3.0, 6)
    b2 = np.array([0.0, 0.1, 0.2])
    slope = (1.5 + b2[:, None] - w2[None, :]) / 10  # crosses zero inside the grid on every row
    lines = {"theory at depth 30": (b2, 1.4 + b2), "theory, infinite depth: chi_1 = 1": (b2, 1.0 + b2)}
    fig = phase_diagram(w2, b2, slope, lines, xlabel="x", ylabel="y")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["data: fitted slope = 0", "theory at depth 30", "theory, infinite depth: chi_1 = 1"]
    norm = ax.collections[0].norm
    assert norm.vmin == -norm.vmax  # one linear scale, white at 0
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"

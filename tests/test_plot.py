"""Every figure draws without error (Agg) and is written as PNG and SVG."""

import numpy as np

import fastgrad as fg
from fastgrad import plot, stats


def check_readable(fig):
    """What a test can hold a figure to: every visible panel has both axes labelled, no two lines
    of a panel share colour, marker and line style, and a legend that shows a band names it."""
    import matplotlib.colors as mcolors

    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        looks = [(mcolors.to_hex(l.get_color()), l.get_marker(), l.get_linestyle()) for l in ax.get_lines()
                 if l.get_linestyle() != "None" and len(l.get_xdata()) > 1]
        assert len(looks) == len(set(looks)), looks
        has_band = any(type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection") for c in ax.collections)
        legends = [ax.get_legend(), *fig.legends]
        texts = [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]
        if has_band and texts:
            assert any("band" in t for t in texts), texts


def test_figures(tmp_path):
    res = fg.run(fg.MLP(depth=5, width=6), trials=30, batch=2)
    res2 = fg.run(fg.MLP(depth=5, width=6, activation="relu", init="he_normal"), trials=30, batch=2)
    curves = stats.summary({"tanh": res, "relu": res2}, "delta", normalize=True)
    fig = plot.decay_curves(curves, {"tanh": np.linspace(0.1, 1, 5)}, title="t")
    check_readable(fig)
    paths = plot.save(fig, tmp_path / "decay")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    chain = fg.run(fg.Chain(depth=6), trials=300)
    boom = fg.run(fg.Chain(depth=6, init="constant", value=100.0, bias_init="centered"), trials=10)
    fig = plot.chain_figure(chain, boom)
    check_readable(fig)
    plot.save(fig, tmp_path / "chain")
    slope = np.random.default_rng(0).normal(size=(3, 4))
    slope[0, 0] = np.nan
    fig = plot.phase_diagram(np.linspace(0.5, 2, 4), np.linspace(0, 0.2, 3), slope,
                             (np.linspace(0, 0.2, 5), np.linspace(1, 1.8, 5)))
    check_readable(fig)
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


def test_decay_curves_keep_every_curve_visible_and_name_the_band():
    import numpy as np
    import pandas as pd

    from fastgrad.plot import decay_curves

    layers = np.arange(1, 31)
    rows = []
    for name, rate in [("a", 0.0), ("b", 0.01), ("c", -0.02), ("d", 2.5)]:  # d vanishes by ~30 decades
        med = np.exp(rate * (layers - 30))
        for l, m in zip(layers, med, strict=True):
            rows.append({"configuration": name, "layer": l, "median": m, "q05": m / 2, "q95": m * 2})
    fig = decay_curves(pd.DataFrame(rows), theory={"a": np.ones(30)}, ylabel="ratio")
    check_readable(fig)
    assert len(fig.axes) == 2  # more than 10 decades: a zoomed panel for the curves within 3
    for ax in fig.axes:
        lines = [l for l in ax.get_lines() if l.get_linestyle() == "-"]
        styles = [(l.get_color(), l.get_marker()) for l in lines]
        assert len(styles) == len(set(styles))  # no two curves of a panel look alike
        assert ax.get_xlabel() and ax.get_ylabel() == "ratio"
    assert len([l for l in fig.axes[1].get_lines() if l.get_linestyle() == "-"]) == 3  # d is not zoomed
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "band: 5-95% of trials" in labels and "mean-field theory" in labels


def test_training_curves_show_diverged_trials_and_integer_epochs():
    from types import SimpleNamespace

    import numpy as np

    from fastgrad.plot import training_curves

    ok = SimpleNamespace(loss=np.tile(np.linspace(1.0, 0.1, 5), (4, 1)), diverged=np.full(4, -1))
    blown = SimpleNamespace(loss=np.full((4, 5), np.nan), diverged=np.zeros(4, dtype=int))  # all at epoch 1
    huge = SimpleNamespace(loss=np.tile(np.logspace(80, 70, 5), (4, 1)), diverged=np.array([-1, 2, -1, -1]))
    fig = training_curves({"ok": ok, "blown": blown, "huge": huge})
    check_readable(fig)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "blown (4 of 4 diverged)" in labels and "huge (1 of 4 diverged)" in labels and "ok" in labels
    assert "band: 25-75% of trials" in labels
    main = fig.axes[0]
    crosses = [l for l in main.get_lines() if l.get_marker() == "x"]
    assert sorted(float(l.get_xdata()[0]) for l in crosses) == [1.0, 3.0]  # the epochs (1-based) they diverged
    assert len(fig.axes) == 2 and [l.get_label() for l in fig.axes[1].get_lines() if l.get_marker() != "x"] == ["ok"]
    assert all(float(t).is_integer() for t in main.get_xticks())


def test_many_curves_never_repeat_a_colour_and_marker():
    import pandas as pd

    from fastgrad.plot import decay_curves

    rows = [{"configuration": f"c{i}", "layer": l, "median": 1.0 + 0.01 * i, "q05": 0.5, "q95": 2.0}
            for i in range(14) for l in range(1, 6)]
    ax = decay_curves(pd.DataFrame(rows), per_panel=14).axes[0]
    styles = [(l.get_color(), l.get_marker()) for l in ax.get_lines()]
    assert len(styles) == 14 == len(set(styles))
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_more_than_eight_curves_are_split_over_panels_with_a_legend_each():
    import pandas as pd

    from fastgrad.plot import decay_curves

    rows = [{"configuration": f"c{i}", "layer": l, "median": 1.0 + 0.01 * i, "q05": 0.5, "q95": 2.0}
            for i in range(20) for l in range(1, 6)]
    fig = decay_curves(pd.DataFrame(rows))
    check_readable(fig)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [len(ax.get_lines()) for ax in shown] == [8, 8, 4]  # every configuration, eight to a panel
    assert [ax.get_title() for ax in shown][-1] == "configurations 17-20 of 20"
    for ax in shown:
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "band: 5-95% of trials" in texts and len(texts) == len(ax.get_lines()) + 1


def test_rate_curve_and_learning_speed_are_readable():
    from types import SimpleNamespace

    import pandas as pd

    from fastgrad.plot import learning_speed, rate_curve

    table = pd.DataFrame({"sigma_w2": [1.0, 1.5, 2.0], "slope": [0.1, 0.0, -0.1], "low": [0.05, -0.05, -0.15],
                          "high": [0.15, 0.05, -0.05]})
    fig = rate_curve(table, "sigma_w2", {"theory": (np.array([1.0, 2.0]), np.array([0.1, -0.1]))})
    check_readable(fig)
    assert fig.axes[0].get_xlabel() == r"$\sigma_w^2$"
    res = SimpleNamespace(grad_b=np.random.default_rng(0).uniform(0.1, 1, size=(3, 4, 5)))
    fig = learning_speed({"a": res, "b": res}, ["a", "b"])
    check_readable(fig)
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())

"""Every figure draws without error (Agg) and is written as PNG and SVG."""

from pathlib import Path

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
    # White at 0, each side its own range: from the data's min to 0 and from 0 to its max.
    assert norm.vcenter == 0.0 and norm.vmin == slope.min() and norm.vmax == slope.max()
    assert norm(slope.min()) == 0.0 and norm(0.0) == 0.5 and norm(slope.max()) == 1.0
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"


def test_phase_diagram_keeps_a_small_chaotic_side_coloured():
    from fastgrad.plot import phase_diagram

    w2 = np.linspace(0.5, 3.0, 6)
    b2 = np.array([0.0, 0.1])
    slope = np.array([[0.55, 0.3, 0.1, -0.02, -0.06, -0.1]] * 2)  # the chaotic side reaches only -0.1
    fig = phase_diagram(w2, b2, slope)
    norm = fig.axes[0].collections[0].norm
    assert norm(-0.1) == 0.0 and norm(0.55) == 1.0  # the darkest blue and the darkest red are both used
    bar_label = fig.axes[1].get_ylabel()
    assert "White at 0" in bar_label and "-0.1" in bar_label and "0.55" in bar_label
    one_sided = phase_diagram(w2, b2, np.abs(slope) + 0.01).axes[0].collections[0].norm
    assert one_sided.vmin < 0 < one_sided.vmax  # all positive data still has a valid norm


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


def _lines(ax, name):
    """The drawn curve of configuration ``name`` (its legend label starts with the name)."""
    return [l for l in ax.get_lines() if l.get_label().startswith(name) and l.get_marker() not in ("None", "")]


def test_training_curves_never_draw_a_diverged_trial_as_learning():
    from types import SimpleNamespace

    from fastgrad.plot import training_curves

    ok = SimpleNamespace(loss=np.tile(np.linspace(1.0, 0.1, 5), (4, 1)), diverged=np.full(4, -1))
    blown = SimpleNamespace(loss=np.full((4, 5), np.nan), diverged=np.zeros(4, dtype=int))  # all at epoch 1
    huge = SimpleNamespace(loss=np.tile(np.logspace(80, 70, 5), (4, 1)), diverged=np.full(4, -1))  # finite, falling
    late = np.tile(np.linspace(1.0, 0.2, 5), (4, 1))
    late[:3, 2:] = np.nan  # three of four trials stop at epoch 3
    late = SimpleNamespace(loss=late, diverged=np.array([2, 2, 2, -1]))
    fig = training_curves({"ok": ok, "blown": blown, "huge": huge, "late": late}, reference=1.0,
                          reference_label="chance")
    check_readable(fig)
    main = fig.axes[0]
    y = {name: _lines(main, name)[0].get_ydata().astype(float) for name in ("ok", "blown", "huge", "late")}
    np.testing.assert_allclose(y["ok"], np.linspace(1.0, 0.1, 5))
    assert np.isnan(y["blown"]).all() and np.isnan(y["huge"]).all()  # 1e80 -> 1e70 is diverged, not learning
    np.testing.assert_allclose(y["late"][:2], [1.0, 0.8])
    assert np.isnan(y["late"][2:]).all()  # after most trials diverged: no median, not the survivor's
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("blown (4 of 4 diverged at the end") for t in labels)
    assert any(t.startswith("huge (4 of 4 diverged at the end") for t in labels)
    assert any(t.startswith("late (3 of 4 diverged at the end") for t in labels)
    assert "band: 25-75% of trials" in labels and "chance: 1" in labels
    assert any("1000 x chance = 1e+03" in t for t in labels)  # the threshold is stated
    lo, hi = main.get_ylim()
    assert hi <= 1e3 and lo <= 0.1  # clipped to the sensible range, never to 1e80
    strip = fig.axes[1]  # the share diverged per epoch, one row per configuration
    share = strip.collections[0].get_array().reshape(4, 5)
    np.testing.assert_allclose(share[0], 0.0)
    np.testing.assert_allclose(share[1], 1.0)
    np.testing.assert_allclose(share[2], 1.0)
    np.testing.assert_allclose(share[3], [0, 0, 0.75, 0.75, 0.75])
    assert [t.get_text() for t in strip.get_yticklabels()] == ["ok", "blown", "huge", "late"]
    assert all(float(t).is_integer() for t in main.get_xticks())


def test_loss_curves_count_a_trial_as_diverged_only_while_above_the_threshold():
    from fastgrad.plot import loss_curves

    rng = np.random.default_rng(1)
    loss = rng.uniform(0.1, 1.0, size=(7, 6))
    loss[:4, 0] = 1e5  # four of seven start above the threshold (clipping pulls them back)
    loss[5, 3:] = np.nan  # one diverges at epoch 4
    loss[6, 2] = np.inf
    got = loss_curves(loss, threshold=100.0)
    bad = ~np.isfinite(loss) | (loss > 100.0)
    np.testing.assert_allclose(got["diverged"], bad.mean(axis=0))
    assert got["diverged"][0] == 4 / 7 and got["diverged"][1] == 0.0  # back below: not diverged any more
    # Reference: NumPy's quantiles with every diverged value a sentinel above everything, then off the axis.
    ref = np.quantile(np.where(bad, 1e300, loss), [0.25, 0.5, 0.75], axis=0)
    ref[ref > 100.0] = np.inf
    for k, q in enumerate(("q25", "median", "q75")):
        np.testing.assert_allclose(got[q], ref[k])
    assert np.isinf(got["median"][0]) and np.isfinite(got["median"][1:]).all()


def test_training_curves_say_what_coincides_and_name_the_data():
    from types import SimpleNamespace

    from fastgrad.plot import training_curves

    base = np.tile(np.linspace(2.0, 0.5, 8), (3, 1))
    a = SimpleNamespace(loss=base, diverged=np.full(3, -1), config={"data": "teacher-classification"})
    b = SimpleNamespace(loss=base * 1.001, diverged=np.full(3, -1), config={"data": "teacher-classification"})
    flat = SimpleNamespace(loss=np.full((3, 8), np.log(10)), diverged=np.full(3, -1))
    fig = training_curves({"a": a, "b": b, "flat": flat}, "Remedies", reference=float(np.log(10)),
                          reference_label="chance, ln 10")
    check_readable(fig)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "b (coincides with a)" in labels
    assert "flat (coincides with chance, ln 10 (dotted line))" in labels
    assert any("no trial diverged" in t for t in labels) and len(fig.axes) == 1  # no strip when none diverged
    assert fig._suptitle.get_text() == "Remedies (data: teacher-classification)"
    under, over = _lines(fig.axes[0], "a")[0], _lines(fig.axes[0], "b")[0]
    assert under.get_linewidth() > over.get_linewidth()  # the one underneath shows around the other


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


def test_learning_speed_shows_every_configuration_names_the_data_and_labels_every_axis():
    from types import SimpleNamespace

    from fastgrad.plot import learning_speed

    rng = np.random.default_rng(0)
    results = {f"c{i}": SimpleNamespace(grad_b=rng.uniform(0.1, 1, size=(3, 4, 5)), diverged=np.array([-1, 2, -1]),
                                        config={"data": "teacher-classification"}) for i in range(7)}
    fig = learning_speed(results)
    check_readable(fig)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split("\n")[0] for ax in shown] == list(results)  # all seven, by default
    assert "1 of 3 trials diverged" in shown[0].get_title()
    assert "teacher-classification" in fig._suptitle.get_text()
    fig.canvas.draw()
    for ax in shown:  # a y label only where the y tick labels are drawn too
        assert ax.get_ylabel() and any(t.get_text() for t in ax.get_yticklabels())
    titled = learning_speed(results, ["c0"], title="How fast on teacher-classification")
    assert titled._suptitle.get_text() == "How fast on teacher-classification"


def test_spectral_variance_uses_a_log_axis_and_colours_theory_as_its_data():
    import pandas as pd

    from fastgrad.plot import spectral_variance

    depths = np.array([2, 4, 8, 16])
    rows = []
    for net, weights, data, theory in [("linear", "gaussian", depths * 1.1, depths * 1.0),
                                       ("linear", "orthogonal", np.zeros(4), np.zeros(4)),
                                       ("relu", "orthogonal", depths * 1.3, depths * 1.0),
                                       ("tanh", "orthogonal", np.log(depths), np.log(depths) * 0.9)]:
        rows += [{"net": net, "weights": weights, "depth": d, "width": 64, "var_over_m1sq": v,
                  "theory_var_over_m1sq": t} for d, v, t in zip(depths, data, theory, strict=True)]
    fig = spectral_variance(pd.DataFrame(rows), title="t")
    check_readable(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    lo, hi = ax.get_ylim()
    assert np.log10(hi / lo) < 2.5  # the data's range (0.69 .. 21), not empty decades
    solid = {l.get_label(): l.get_color() for l in ax.get_lines() if l.get_linestyle() == "-"}
    dashed = [l for l in ax.get_lines() if l.get_linestyle() == "--"]
    assert sorted(l.get_color() for l in dashed) == sorted(c for n, c in solid.items() if n != "linear, orthogonal")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("linear, orthogonal: 0 at every depth") and "bottom edge" in t for t in labels)
    assert any("infinite width" in t and "n = 64" in t and "L << n" in t for t in labels)
    assert any(t.startswith("their theory coincides") and "linear, gaussian" in t and "relu, orthogonal" in t
               for t in labels)


def test_decay_curves_drop_a_zoom_of_one_curve_and_say_what_coincides():
    import pandas as pd

    from fastgrad.plot import decay_curves

    layers = np.arange(1, 31)
    rows = []
    for name, rate in [("flat", 0.0), ("steep", 2.0), ("steep too", 2.0005), ("steeper", 3.0)]:
        med = np.exp(rate * (layers - 30))
        rows += [{"configuration": name, "layer": l, "median": m, "q05": m / 2, "q95": m * 2}
                 for l, m in zip(layers, med, strict=True)]
    fig = decay_curves(pd.DataFrame(rows))
    check_readable(fig)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1  # only "flat" is within 3 decades: no zoom
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "steep too (coincides with steep)" in labels and "steeper" in labels


def test_plot_store_colours_one_value_alike_in_every_panel_and_names_the_setting(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    import fastgrad as fg
    from fastgrad import report
    from fastgrad.store import load, manifest

    store = tmp_path / "store"
    fg.sweep("mlp", {"depth": 4, "width": 6, "init": "scaled_normal", "activation": "tanh",
                     "sigma_w2": [0.5, 1.0, 2.0], "sigma_b2": [0.0, 0.1]}, trials=6, batch=2, store=store,
             progress=False)
    titles = {}
    save = report.save

    def keep_title(fig, stem, *args):
        titles[Path(stem).name] = " ".join(ax.get_title() for ax in fig.axes).replace("\n", " ")
        return save(fig, stem, *args)

    monkeypatch.setattr(report, "save", keep_title)
    paths = report.plot_store(store, tmp_path / "figures")
    assert {p.name for p in paths} >= {"decay_curves.png", "phase_diagram.png"}
    heading = titles["phase_diagram"]
    assert "mlp" in heading and "depth 4" in heading and "width 6" in heading and "6 trials" in heading
    fig = report.sweep_curves(load(store), manifest(store), "delta")
    check_readable(fig)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["sigma_b2=0", "sigma_b2=0.1"]
    looks = [{l.get_label(): (l.get_color(), l.get_marker()) for l in ax.get_lines()} for ax in panels]
    assert looks[0] == looks[1] and len(set(looks[0].values())) == 3  # one look per sigma_w2, in both panels
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "mlp" in title and "depth 4" in title and "width 6" in title and "6 trials" in title
    assert "colour: sigma_w2, the same in every panel" in title
    plt.close(fig)

"""Sweep analysis: the decay table and the zero crossing of the decay rate, against independent computations."""

import numpy as np
import pandas as pd
import pytest

import fastgrad as fg
from fastgrad import stats, theory
from fastgrad.analysis import decay_table, edge
from fastgrad.cli import main


def synthetic(x0=1.3, xs=(0.5, 1.0, 1.5, 2.0), trials=40, layers=6, seed=0, by=(0.0, 0.1)):
    """log-norm of trial k at layer l in cell (x, b) = (x0 + b - x + e_k) * l: the slope of the mean is
    x0 + b - x + mean(e), exactly linear in x, so its zero is at x0 + b + mean(e)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 0.05, trials)
    rows = []
    for b in by:
        for x in xs:
            for k in range(trials):
                for l in range(layers):
                    rows.append({"sigma_w2": x, "sigma_b2": b, "trial": k, "layer": l + 1,
                                 "delta": np.exp((x0 + b - x + e[k]) * l)})
    return pd.DataFrame(rows), x0 + e.mean()


def test_edge_finds_the_exact_crossing_with_a_paired_bootstrap_interval():
    frame, want = synthetic()
    got = edge(frame, x="sigma_w2", by="sigma_b2", n_boot=300).set_index("sigma_b2")
    np.testing.assert_allclose(got.loc[0.0, "edge"], want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.loc[0.1, "edge"], want + 0.1, rtol=0, atol=1e-12)
    for b in (0.0, 0.1):
        low, high = got.loc[b, "low"], got.loc[b, "high"]
        # The resampled crossing is x0 + b + mean of resampled e: its spread is the standard error of e.
        assert low < got.loc[b, "edge"] < high and 0.005 < high - low < 0.06
    # No init column: the MLP default (xavier_normal), where sigma_w2 scales nothing the theory describes.
    assert got["theory_infinite_depth"].isna().all()


def test_edge_is_nan_where_the_rate_never_crosses():
    frame, _ = synthetic(x0=5.0)
    got = edge(frame, n_boot=20)
    assert got["edge"].isna().all() and (got["crossed"] == 0).all()


def test_bad_axes_are_named():
    frame, _ = synthetic()
    with pytest.raises(ValueError, match="x: 'sigma_w'"):
        edge(frame, x="sigma_w")
    with pytest.raises(ValueError, match="metric: 'grad_w'"):
        decay_table(frame, metric="grad_w")


def test_decay_table_and_theory_on_a_real_sweep(tmp_path):
    store = tmp_path / "s"
    fg.sweep("mlp", {"depth": 8, "width": 16, "init": "scaled_normal", "activation": "tanh",
                     "sigma_w2": [0.8, 1.6, 2.4], "sigma_b2": 0.05, "loss": "probe"},
             trials=12, batch=4, store=store, progress=False)
    table = decay_table(store, n_boot=50)
    assert len(table) == 3 and list(table.columns[:7]) == ["depth", "width", "init", "activation", "sigma_w2",
                                                             "sigma_b2", "loss"]
    # Each row is stats.decay_rate and stats.fractions of that cell's (trials, layers) array.
    res = fg.run(fg.MLP(depth=8, width=16, init="scaled_normal", activation="tanh", sigma_w2=1.6, sigma_b2=0.05,
                        loss="probe"), trials=12, batch=4)
    want = stats.decay_rate(res, "delta", n_boot=50)
    row = table[table.sigma_w2 == 1.6].iloc[0]
    np.testing.assert_allclose([row.slope, row.low, row.high], [want["slope"], want["low"], want["high"]],
                               rtol=1e-12)
    assert row.vanished == stats.fractions(res, "delta")["vanished"]
    got = edge(store, by=None, n_boot=50)
    assert len(got) == 1
    np.testing.assert_allclose(got["theory_infinite_depth"][0], theory.critical_sigma_w2("tanh", 0.05), rtol=1e-12)
    assert 0.8 < got["edge"][0] < 2.4


def test_theory_columns_for_orthogonal_weights(tmp_path):
    # sqrt(sigma_w^2) Q has the Gaussian's chi_1 at sigma_w^2: the same edges, in the units of the axis swept.
    grid = {"depth": 8, "width": 16, "activation": "tanh", "sigma_b2": 0.05, "loss": "probe"}
    store = tmp_path / "by_variance"
    fg.sweep("mlp", {**grid, "init": ["scaled_normal", "orthogonal"], "sigma_w2": [0.8, 1.6, 2.4]}, trials=8,
             batch=4, store=store, progress=False)
    got = edge(store, by=None, n_boot=20).set_index("init")
    finite = theory.finite_depth_edge("tanh", 0.05, 8, bracket=(0.8, 2.4))
    infinite = theory.critical_sigma_w2("tanh", 0.05)
    for init in ("scaled_normal", "orthogonal"):
        assert got.loc[init, "theory_finite_depth"] == pytest.approx(finite, rel=1e-12)
        assert got.loc[init, "theory_infinite_depth"] == pytest.approx(infinite, rel=1e-12)
    store = tmp_path / "by_gain"
    fg.sweep("mlp", {**grid, "init": "orthogonal", "gain": [0.9, 1.3, 1.6]}, trials=8, batch=4, store=store,
             progress=False)
    got = edge(store, x="gain", by=None, n_boot=20).iloc[0]  # gain = sigma_w: the edges in sigma_w's units
    finite = theory.finite_depth_edge("tanh", 0.05, 8, bracket=(0.9**2, 1.6**2))
    assert got["theory_finite_depth"] == pytest.approx(np.sqrt(finite), rel=1e-12)
    assert got["theory_infinite_depth"] == pytest.approx(np.sqrt(infinite), rel=1e-12)


def test_no_theory_columns_for_identity_weights():
    # sigma_w I never mixes units, so its pre-activations are not Gaussian: mean-field theory does not apply.
    frame, _ = synthetic(trials=3, by=(0.05,))
    frame["init"] = "identity"
    frame["activation"] = "tanh"
    frame = frame[["init", "activation", "sigma_w2", "sigma_b2", "trial", "layer", "delta"]]
    got = edge(frame, n_boot=5)
    assert got["theory_finite_depth"].isna().all() and got["theory_infinite_depth"].isna().all()
    frame["init"] = "orthogonal"
    assert edge(frame, n_boot=5)["theory_infinite_depth"].notna().all()


def test_analyze_checks_every_argument_before_printing(tmp_path, capsys):
    store = tmp_path / "s"
    fg.sweep("chain", {"depth": [4, 6], "sigma_w2": [0.5, 1.0]}, trials=6, store=store, progress=False)
    for args, name in ((["--edge", "sigma_w3"], "--edge: 'sigma_w3'"),
                       (["--edge", "sigma_w2", "--by", "nope"], "--by: 'nope'"),
                       (["--metric", "nope"], "--metric: 'nope'"),
                       (["--by", "depth"], "--by: applies only with --edge"),
                       (["--n-boot", "0"], "--n-boot"), (["--csv", str(tmp_path / "no" / "t.csv")], "--csv")):
        assert main(["analyze", str(store), "--n-boot", "5", *args]) == 2  # (a later --n-boot wins)
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and name in err, (args, out, err)
    assert main(["analyze", str(store), "--n-boot", "5", "--edge", "sigma_w2", "--by", "depth"]) == 0
    assert "crosses zero along sigma_w2" in capsys.readouterr().out


def test_command_line(tmp_path, capsys):
    store = tmp_path / "s"
    fg.sweep("chain", {"depth": [4, 6]}, trials=20, store=store, progress=False)
    assert main(["analyze", str(store), "--n-boot", "20", "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "slope" in out and "depth_scale" in out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2
    assert main(["analyze", str(tmp_path)]) == 2


def test_finite_depth_theory_tends_to_the_fixed_point_with_depth():
    # The finite-depth edge iterates q_l from the input through the sweep's depth; deep enough,
    # q_l sits at its fixed point and the edge is chi_1(q*) = 1.
    got = {}
    for layers in (10, 300):
        frame, _ = synthetic(layers=layers, trials=3, by=(0.05,), xs=(0.5, 3.0))
        frame["init"] = "scaled_normal"
        frame["activation"] = "tanh"
        frame = frame[["init", "activation", "sigma_w2", "sigma_b2", "trial", "layer", "delta"]]
        got[layers] = edge(frame, n_boot=5).iloc[0]
    critical = theory.critical_sigma_w2("tanh", 0.05)
    assert got[300]["theory_infinite_depth"] == pytest.approx(critical, rel=1e-12)
    assert got[300]["theory_finite_depth"] == pytest.approx(critical, rel=1e-3)
    assert got[10]["theory_finite_depth"] > 1.1 * critical  # a shallow net's edge sits well to the right


def test_plot_of_a_one_dimensional_sweep_draws_the_rate_with_theory(tmp_path):
    from fastgrad.report import plot_store

    store = tmp_path / "oned"
    fg.sweep("mlp", {"depth": 6, "width": 8, "init": "scaled_normal", "sigma_w2": [0.5, 1.5, 2.5], "sigma_b2": 0.05},
             trials=6, batch=4, store=store, progress=False)
    paths = plot_store(store)
    assert store / "figures" / "decay_rate.png" in paths and (store / "figures" / "decay_rate.png").stat().st_size


@pytest.mark.slow
def test_the_measured_edge_is_the_finite_depth_theory_within_one_percent(tmp_path):
    # Depth 30, width 256, tanh, sigma_b^2 = 0.05, 400 trials per cell: the data's edge (mean square, what
    # the theory predicts) agrees with the depth-30 mean-field edge to 1%; the infinite-depth edge
    # (1.761) lies outside the interval.
    store = tmp_path / "edge"
    fg.sweep("mlp", {"depth": 30, "width": 256, "init": "scaled_normal", "loss": "probe", "sigma_b2": 0.05,
                     "sigma_w2": [1.7, 1.75, 1.8, 1.85, 1.9]}, trials=400, batch=8, seed=0, store=store,
             progress=False)
    got = edge(store, by=None, statistic="square", n_boot=300).iloc[0]
    assert abs(got["edge"] / got["theory_finite_depth"] - 1) < 0.01
    assert got["low"] <= got["theory_finite_depth"] <= got["high"]
    assert not got["low"] <= got["theory_infinite_depth"] <= got["high"]


def test_the_phase_diagram_edge_follows_the_finite_depth_theory_at_every_bias(tmp_path):
    # The demo's phase-diagram setting (depth 30, tanh, probe loss) on a grid of step 0.1 in sigma_w^2: at
    # every sigma_b^2, 0 included, the data's zero crossing lies within one grid step of the depth-30
    # mean-field edge, while the infinite-depth edge is more than a step away at sigma_b^2 = 0 (1.0 against
    # ~1.36). results/edge/ has the same check at step 0.05, width 128, 200 trials.
    store = tmp_path / "plane"
    w2 = [round(0.9 + 0.1 * k, 2) for k in range(18)]
    fg.sweep("mlp", {"depth": 30, "width": 64, "init": "scaled_normal", "activation": "tanh", "loss": "probe",
                     "sigma_w2": w2, "sigma_b2": [0.0, 0.05, 0.2]}, trials=100, batch=8, store=store, progress=False)
    got = edge(store, statistic="square", n_boot=20).set_index("sigma_b2")
    assert (got["crossed"] == 1).all()
    gap = (got["edge"] - got["theory_finite_depth"]).abs()
    assert (gap <= 0.1).all(), got
    assert abs(got.loc[0.0, "edge"] - got.loc[0.0, "theory_infinite_depth"]) > 0.2

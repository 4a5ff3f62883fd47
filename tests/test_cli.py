"""The fastgrad command at reduced size."""

import numpy as np
import pandas as pd

from fastgrad.cli import main


def test_demo_writes_its_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--trials", "8", "--chain-trials", "500", "--depth", "6",
                 "--width", "8", "--batch", "4", "--rnn-steps", "10", "--phase-trials", "2", "--train-trials", "2",
                 "--train-epochs", "2", "--cure-steps", "12", "--cure-depth", "5", "--spectrum-depths", "2,4",
                 "--transformer-depth", "3", "--transformer-trials", "4", "--quiet"]) == 0
    table = pd.read_csv(out / "summary.csv").set_index("configuration")
    assert len(table) == 13 + 6 + 4 + 2  # the problem, the cures (6 recurrent cells, 4 MLPs), post/pre-LN
    assert table.loc["chain sigmoid N(0,1)", "slope"] > 1.0  # the classic vanishing chain
    # Every factor is 25: log |dC/db_l| falls by ln 25 per layer towards the output.
    assert np.isclose(table.loc["chain sigmoid w=100, z=0", "slope"], -np.log(25.0), rtol=1e-9)
    training = pd.read_csv(out / "training_summary.csv")
    assert len(training) == 7 and training["diverged"].between(0, 1).all()
    rnn_training = pd.read_csv(out / "rnn_training_summary.csv").set_index("configuration")
    assert rnn_training.loc["relu, gain 2 (exploding)", "diverged"] == 1.0
    assert rnn_training.loc["relu, gain 2, clip 1", "diverged"] == 0.0
    for stem in ("chain", "mlp_decay", "rnn_decay", "phase_diagram", "training_loss", "learning_speed",
                 "rnn_training_loss", "cures_rnn", "cures_mlp", "cures_resmlp", "spectral_density",
                 "spectral_variance"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.svg").exists()
    assert (out / "summary.md").read_text().startswith("# fastgrad demo")
    assert "chain sigmoid N(0,1)" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "fastgrad" in out and "cpu:" in out and "cuda:" in out


def test_grid_file_takes_the_command_line_range_syntax(tmp_path):
    from fastgrad.cli import read_grid

    path = tmp_path / "grid.toml"
    path.write_text('depth = "2:4"\nsigma_w = "0.5:1.0:0.25"\nactivation = ["tanh", "relu"]\n')
    assert read_grid(str(path)) == {"depth": [2, 3, 4], "sigma_w": [0.5, 0.75, 1.0], "activation": ["tanh", "relu"]}


def test_version(capsys):
    import pytest

    from fastgrad import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastgrad {__version__}"


def one_error_line(capsys, argv, *names):
    """Run the command; it must exit with status 2 and print one line naming each of ``names``."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("fastgrad: error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def test_a_missing_or_unparsable_grid_file_is_named(tmp_path, capsys):
    store = str(tmp_path / "s")
    missing = str(tmp_path / "missing.toml")
    one_error_line(capsys, ["sweep", "--grid", missing, "--store", store], "--grid", missing, "no such file")
    bad = tmp_path / "bad.toml"
    bad.write_text("depth = [2, 3\nwidth = 4\n")
    one_error_line(capsys, ["sweep", "--grid", str(bad), "--store", store], str(bad), "not valid TOML", "line")
    bad = tmp_path / "bad.json"
    bad.write_text('{"depth": [2, 3}')
    one_error_line(capsys, ["sweep", "--grid", str(bad), "--store", store], str(bad), "not valid JSON")
    bad.write_text("[1, 2]")
    one_error_line(capsys, ["sweep", "--grid", str(bad), "--store", store], str(bad), "table of parameter")
    one_error_line(capsys, ["sweep", "--grid", str(tmp_path), "--store", store], "--grid", str(tmp_path))
    assert not (tmp_path / "s").exists()  # nothing was started


def test_a_range_of_non_integers_needs_a_step(tmp_path, capsys):
    from fastgrad.cli import parse_values

    store = str(tmp_path / "s")
    one_error_line(capsys, ["sweep", "--store", store, "--depth", "3", "--width", "4", "--sigma-w2", "0.5:3"],
                   "--sigma-w2", "needs a step", "START:STOP:STEP")
    one_error_line(capsys, ["sweep", "--store", store, "--depth", "1:4.5"], "--depth", "needs a step")
    assert parse_values("depth", "1:5") == [1, 2, 3, 4, 5]  # integers keep step 1
    assert parse_values("sigma_w2", "0.5:1.5:0.5") == [0.5, 1.0, 1.5]
    path = tmp_path / "grid.toml"
    path.write_text('sigma_w2 = "0.5:3"\n')
    one_error_line(capsys, ["sweep", "--store", store, "--grid", str(path)], "sigma_w2", "needs a step")
    assert not (tmp_path / "s").exists()


def test_a_scale_the_init_ignores_is_refused_on_the_command_line(tmp_path, capsys):
    one_error_line(capsys, ["sweep", "--store", str(tmp_path / "s"), "--depth", "3", "--width", "4",
                            "--init", "xavier_normal", "--sigma-w2", "1.0,2.0"], "sigma_w2", "gain", "scaled_normal")

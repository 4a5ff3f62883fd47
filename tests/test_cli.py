"""The fastgrad command at reduced size."""

import numpy as np
import pandas as pd

from fastgrad.cli import main


def test_demo_writes_its_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--trials", "8", "--chain-trials", "500", "--depth", "6",
                 "--width", "8", "--batch", "4", "--rnn-steps", "10", "--phase-trials", "2", "--train-trials", "2",
                 "--train-epochs", "2", "--cure-steps", "12", "--cure-depth", "5", "--spectrum-depths", "2,4",
                 "--quiet"]) == 0
    table = pd.read_csv(out / "summary.csv").set_index("configuration")
    assert len(table) == 13 + 6 + 4  # the problem, then the cures: 6 recurrent cells, 4 MLPs
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

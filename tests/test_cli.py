"""The fastgrad command at reduced size."""

import pandas as pd

from fastgrad.cli import main


def test_demo_writes_its_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--trials", "8", "--chain-trials", "500", "--depth", "6",
                 "--width", "8", "--batch", "4"]) == 0
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 12
    chain = table.set_index("configuration").loc["chain sigmoid N(0,1)"]
    assert chain["median_first_over_last"] < 1e-6  # the classic vanishing chain
    exploding = table.set_index("configuration").loc["chain sigmoid w=100, z=0"]
    assert abs(exploding["median_first_over_last"] / 25.0**29 - 1) < 1e-9
    assert "chain sigmoid N(0,1)" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    assert "fastgrad" in capsys.readouterr().out

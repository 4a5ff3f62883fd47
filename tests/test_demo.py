"""The demo checks every argument before any work."""

import dataclasses

import pytest

from fastgrad.cli import main
from fastgrad.studies.demo import DemoSize, run_demo

LEAST = {"trials": 1, "chain_trials": 1, "depth": 2, "width": 1, "batch": 1, "rnn_steps": 2, "phase_trials": 1,
         "train_trials": 1, "train_epochs": 1, "cure_steps": 2, "cure_depth": 3, "transformer_depth": 2,
         "transformer_trials": 1}


def test_every_size_field_is_checked():
    assert {f.name for f in dataclasses.fields(DemoSize)} == set(LEAST) | {"spectrum_depths"}
    for name, least in LEAST.items():
        DemoSize(**{name: least})  # the least value is taken
        flag = "--" + name.replace("_", "-")
        for bad in (least - 1, -1, 2.5, "3", True, None):
            with pytest.raises(ValueError) as err:
                DemoSize(**{name: bad})
            assert str(err.value).startswith(f"{name} ({flag}): "), err.value


def test_spectrum_depths_are_checked_and_kept_as_a_tuple():
    assert DemoSize(spectrum_depths=[4, 8]).spectrum_depths == (4, 8)
    for bad in ((), (4, 0), (4, 2.0), "8", 8, None):
        with pytest.raises(ValueError, match=r"^spectrum_depths \(--spectrum-depths\): "):
            DemoSize(spectrum_depths=bad)


def test_run_demo_refuses_a_bad_folder_or_size_before_any_work(tmp_path):
    afile = tmp_path / "a file"
    afile.write_text("")
    with pytest.raises(ValueError, match=r"^out \(--out\): .* is a file"):
        run_demo(afile, progress=False)
    with pytest.raises(ValueError, match=r"^out \(--out\): cannot create"):
        run_demo(afile / "below", progress=False)
    with pytest.raises(ValueError, match=r"^size: expected a fastgrad.studies.demo.DemoSize"):
        run_demo(tmp_path / "out", size={"trials": 8}, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--trials", "-1"), ("--depth", "1"), ("--cure-depth", "2"),
                                         ("--train-epochs", "0")])
def test_the_command_stops_at_once_with_one_line(tmp_path, capsys, flag, value):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"fastgrad: error: {flag[2:].replace('-', '_')} ({flag}): ")
    assert not out.exists()  # nothing computed, nothing written

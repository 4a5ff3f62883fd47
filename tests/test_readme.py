"""The Python blocks of the README and of the docs pages run as written, in order.

The README's blocks run at smaller trial counts (``SMALLER``); the docs pages' blocks run exactly as
written, so they are kept small. A block whose first line is ``# not run`` only illustrates and is
skipped (docs/index.md says so). Each page runs in one namespace, in a temporary folder.
"""

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
NOT_RUN = "# not run"

# Sizes shrunk so the whole README runs in seconds; nothing else is changed.
SMALLER = [
    (r"trials=10_000", "trials=8"),
    (r"trials=200_000", "trials=500"),
    (r"trials=1000\b", "trials=4"),
    (r"trials=500\b", "trials=20"),
    (r"trials=256\b", "trials=4"),
    (r"trials=100\b", "trials=10"),
    (r"trials=16\b", "trials=2"),
    (r"epochs=20\b", "epochs=1"),
    (r"epochs=8\b", "epochs=1"),
    (r"samples=1000\b", "samples=64"),
    (r'activations=\["tanh", "relu"\]', 'activations=["tanh"]'),
    (r'dtypes=\["float32", "float64"\]', 'dtypes=["float64"]'),
]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def run_page(page: Path, smaller: list[tuple[str, str]], after_block=None) -> dict:
    """Run every block of ``page`` not marked ``# not run``, in order, in one namespace; name a failing block."""
    namespace: dict = {}
    for i, block in enumerate(python_blocks(page)):
        if block.startswith(NOT_RUN):
            continue
        code = block
        for pattern, small in smaller:
            code = re.sub(pattern, small, code)
        try:
            exec(compile(code, f"{page.name} python block {i + 1}", "exec"), namespace)
        except Exception as err:  # name the block, so a failure says where to look
            raise AssertionError(f"{page.name} python block {i + 1} failed: {err!r}\n{code}") from err
        if after_block is not None:
            after_block(namespace)
    return namespace


def test_there_are_blocks():
    assert len(python_blocks(README)) >= 6
    assert any(python_blocks(page) for page in DOCS)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="the training block uses the digits")
    monkeypatch.chdir(tmp_path)  # the blocks write runs/ and figures/ where they run
    checked = []

    def same_as_run(namespace: dict) -> None:
        # The statistics of trial k from its arrays equal the run's, bit for bit (the README says so).
        if not checked and "same" in namespace:
            same, res = namespace["same"], namespace["res"]
            for m in ("grad_w", "grad_b", "delta", "q"):
                assert np.array_equal(getattr(same, m), getattr(res, m)[:3]), m
            checked.append(True)

    run_page(README, SMALLER, same_as_run)
    assert checked, "the README no longer compares mlp_backprop with fg.run"
    assert (tmp_path / "runs" / "edge" / "figures").is_dir()


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_docs_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_page(page, [])


def test_not_run_blocks_are_marked_only_on_their_first_line():
    # A marker anywhere else would run a block its author meant to skip (or the reverse).
    for page in [README, *DOCS]:
        for block in python_blocks(page):
            assert NOT_RUN not in block[1:], f"{page.name}: '{NOT_RUN}' must be a block's first line"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_point_at_files_and_headings():
    for page in [README, *DOCS]:
        text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: link to missing {target}"
            if anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), flags=re.M)
                assert anchor in {_slug(h) for h in headings}, f"{page.name}: no heading for {target}"

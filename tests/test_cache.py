"""The kernel cache: invalidated by any change to a kernel's sources, shared by identical copies."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastgrad
from fastgrad import _cache

PACKAGE = Path(fastgrad.__file__).parent

CHILD = """
import json, sys
import fastgrad as fg
from fastgrad.kernels import cpu_chain
res = fg.run(fg.Chain(depth=4), trials=300, seed=3)
stats = cpu_chain.generated.stats
print(json.dumps({"file": fg.__file__, "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()), "dc_db": res.dc_db.tolist()}))
"""


def run_copy(root: Path, cache: Path) -> dict:
    env = dict(os.environ, FASTGRAD_CACHE_DIR=str(cache), PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def copy_package(root: Path) -> Path:
    shutil.copytree(PACKAGE, root / "fastgrad", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "fastgrad"


def test_dependencies_follow_imports():
    deps = {p.name for p in _cache.dependencies(PACKAGE / "kernels" / "cpu_mlp.py")}
    # The building blocks a kernel is compiled from, through other modules' imports too.
    assert {"cpu_mlp.py", "draw.py", "norms.py", "_math.py", "rng.py", "codes.py", "_numba.py", "_cache.py"} <= deps
    # Not what the kernel never imports: the activations reach it as compiled loops, cached with
    # activations.py's own dependencies.
    assert not {"plot.py", "sweep.py", "engine.py", "cpu_rnn.py", "activations.py"} & deps
    assert {"activations.py", "_math.py"} <= {p.name for p in _cache.dependencies(PACKAGE / "activations.py")}


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTGRAD_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "b"))
    assert _cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("FASTGRAD_CACHE_DIR")
    assert _cache.cache_dir() == tmp_path / "b" / "fastgrad"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert _cache.cache_dir() == tmp_path / "c" / "fastgrad"


@pytest.mark.slow
def test_edit_invalidates_and_identical_copies_share(tmp_path):
    cache = tmp_path / "cache"
    first = copy_package(tmp_path / "a")
    cold = run_copy(tmp_path / "a", cache)
    assert cold["file"].startswith(str(tmp_path / "a"))
    assert cold["misses"] == 1 and cold["hits"] == 0
    warm = run_copy(tmp_path / "a", cache)
    assert warm["misses"] == 0 and warm["hits"] == 1
    assert warm["dc_db"] == cold["dc_db"]

    # Change a building block the kernel imports (not the kernel's own file): the tensor
    # id its inputs are drawn from. A stale kernel would keep the old constant.
    codes = first / "codes.py"
    text = codes.read_text()
    assert "CHAIN_XY, CHAIN_WB = 0, 1" in text
    codes.write_text(text.replace("CHAIN_XY, CHAIN_WB = 0, 1", "CHAIN_XY, CHAIN_WB = 7, 1"))
    edited = run_copy(tmp_path / "a", cache)
    assert edited["misses"] == 1 and edited["hits"] == 0
    assert edited["dc_db"] != cold["dc_db"]

    # A second copy of the edited sources, elsewhere on disk, finds the same compiled kernel.
    shutil.copytree(first, tmp_path / "b" / "fastgrad")
    other = run_copy(tmp_path / "b", cache)
    assert other["file"].startswith(str(tmp_path / "b"))
    assert other["misses"] == 0 and other["hits"] == 1
    assert other["dc_db"] == edited["dc_db"]

    # And the original sources still find theirs: versions never overwrite each other.
    codes.write_text(text)
    back = run_copy(tmp_path / "a", cache)
    assert back["misses"] == 0 and back["dc_db"] == cold["dc_db"]

"""Where compiled kernels are cached on disk, and when a cached kernel is stale.

Numba's own cache keys a compiled function on the source file that defines it:
a kernel whose building block (an activation, the generator, a norm) changed in
another file would load stale machine code. And it stores the code next to that
file, or under a folder named after the file's absolute path, so an installed
copy of fastgrad and a checkout of the same version compile everything twice.

fastgrad replaces the locator of its kernels (the object that tells Numba where a
function's cache lives and how fresh its source is):

* **freshness** is a hash of the sources of every fastgrad module the kernel's
  module imports, directly or through others (for ``kernels/cpu_mlp.py``:
  ``_numba``, ``_math``, ``activations``, ``rng``, ``codes``, ``kernels/draw``,
  ``kernels/norms``, ...). Editing any of them invalidates the kernel: its next
  call compiles afresh. The hash is part of the cache file's name, so two
  versions of the sources never load or overwrite each other's code.
* **location** is one folder per user, independent of where the package is
  installed: ``$FASTGRAD_CACHE_DIR`` if set, else ``$NUMBA_CACHE_DIR/fastgrad``
  if that is set, else ``~/.cache/fastgrad`` (``$XDG_CACHE_HOME/fastgrad``). An
  installed copy, a checkout and the Dask workers of one machine whose sources
  are identical share it. Files of sources that no longer exist stay until the
  folder is deleted (``fastgrad warmup --clear`` empties it).

This uses Numba's cache-locator classes (``numba.core.caching``), which are not
part of Numba's documented API: :func:`attach` is the one place that touches them.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator

PACKAGE_ROOT = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The folder that holds fastgrad's compiled kernels.

    Returns
    -------
    pathlib.Path
        ``$FASTGRAD_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/fastgrad``, else
        ``$XDG_CACHE_HOME/fastgrad`` (default ``~/.cache/fastgrad``).
    """
    if os.environ.get("FASTGRAD_CACHE_DIR"):
        return Path(os.environ["FASTGRAD_CACHE_DIR"])
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / "fastgrad"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastgrad"


def _module_name(path: Path) -> str:
    """``fastgrad/kernels/cpu_mlp.py`` -> ``kernels.cpu_mlp``."""
    rel = path.resolve().relative_to(PACKAGE_ROOT).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path) -> set[Path]:
    """The fastgrad modules that the module at ``path`` imports (one level)."""
    found: set[Path] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "fastgrad" or len(parts) == 1:
                continue
            candidate = PACKAGE_ROOT.joinpath(*parts[1:])
            for file in (candidate.with_suffix(".py"), candidate / "__init__.py"):
                if file.is_file():
                    found.add(file.resolve())
    return found


@functools.cache
def dependencies(path: Path) -> tuple[Path, ...]:
    """The module at ``path`` and every fastgrad module it imports, transitively, sorted.

    Parameters
    ----------
    path : pathlib.Path
        A source file inside the package.

    Returns
    -------
    tuple of pathlib.Path
    """
    seen: set[Path] = set()
    todo = [path.resolve()]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_imports(current) - seen)
    return tuple(sorted(seen))


@functools.cache
def source_stamp(path: Path) -> str:
    """A hash of the sources a kernel defined in ``path`` is compiled from.

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    str
        SHA-256 over the package-relative name and bytes of every dependency.
    """
    digest = hashlib.sha256()
    for dep in dependencies(path):
        digest.update(_module_name(dep).encode())
        digest.update(dep.read_bytes())
    return digest.hexdigest()


def clear() -> int:
    """Delete fastgrad's compiled kernels from :func:`cache_dir`; returns how many files were removed.

    Only Numba's index and data files (``*.nbi``, ``*.nbc``) under the folder's
    ``py*`` subfolders are removed, nothing else.

    Returns
    -------
    int
    """
    removed = 0
    root = cache_dir()
    for sub in root.glob("py*"):
        for path in sub.rglob("*.nb[ic]"):
            path.unlink()
            removed += 1
    return removed


class _Locator(_CacheLocator):
    """Numba cache locator: fastgrad's folder, and a freshness stamp over the kernel's dependencies."""

    def __init__(self, py_func: Any, py_file: str, root: Path) -> None:
        self._path = Path(py_file).resolve()
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(root / f"py{sys.version_info[0]}{sys.version_info[1]}" / _module_name(self._path))

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return source_stamp(self._path)

    def get_disambiguator(self) -> str:
        return f"{self._lineno}-{source_stamp(self._path)[:16]}"

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> _Locator | None:
        # An unwritable cache folder must not stop a kernel from running: fall back
        # to a per-user temporary folder, which Numba then uses like any other.
        for root in (cache_dir(), Path(tempfile.gettempdir()) / f"fastgrad-cache-{os.getuid()}"):
            self = cls(py_func, py_file, root)
            try:
                self.ensure_cache_path()
            except OSError:
                continue
            return self
        return None


class _Impl(CompileResultCacheImpl):
    _locator_classes = [_Locator]  # type: ignore[list-item]


class KernelCache(FunctionCache):
    """Numba's function cache, with fastgrad's locator."""

    _impl_class = _Impl


def attach(dispatcher: Any) -> Any:
    """Give a Numba dispatcher fastgrad's on-disk cache; returns the dispatcher.

    Parameters
    ----------
    dispatcher : numba.core.registry.CPUDispatcher
        A dispatcher compiled without ``cache=True``.

    Returns
    -------
    The same dispatcher.
    """
    dispatcher._cache = KernelCache(dispatcher.py_func)
    return dispatcher

"""The on-disk result store of a sweep: a manifest and one Parquet file per cell.

Layout::

    STORE/manifest.json          the grid, seed, trials, batch, dtype, model,
                                 fastgrad version and creation time
    STORE/cells/<id>.parquet     one finished cell: grid parameters, trial,
                                 layer and one column per statistic

A cell file is written under a temporary name in the same folder and renamed
(atomic on POSIX), so an interrupted sweep leaves whole cells or none. Each
file carries its cell's parameters and expected row count in the Parquet
metadata, and page checksums: a truncated or corrupted file is detected, moved
aside (never deleted) and recomputed. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
CELLS = "cells"
_META_KEY = b"fastgrad.cell"
# Fields of the manifest that must match for a store to be resumed.
IDENTITY = ("model", "grid", "seed", "trials", "batch", "dtype", "spectrum", "generator")
# What a store written before a field existed holds for it: every store before the
# "generator" field drew with float64 arithmetic, in float32 runs too.
LEGACY = {"generator": "splitmix64-boxmuller-float64"}


def cell_id(params: dict[str, Any]) -> str:
    """A stable identifier of a cell: a hash of its parameters in canonical JSON."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def open_store(path: str | Path, manifest: dict[str, Any]) -> Path:
    """Create the store, or check that an existing one was made by the same sweep.

    Parameters
    ----------
    path : str or Path
    manifest : dict
        The sweep's identity (``IDENTITY`` keys) plus ``version``.

    Returns
    -------
    Path
        The store's folder.

    Raises
    ------
    ValueError
        If the folder holds a store of another sweep (different grid, seed,
        trials, batch, dtype, model, spectrum option or generator), or files
        that are not a store.
    """
    root = Path(path)
    file = root / MANIFEST
    if file.exists():
        old = json.loads(file.read_text())
        new = json.loads(json.dumps(manifest))  # compare as stored: JSON types
        diff = [k for k in IDENTITY if old.get(k, LEGACY.get(k)) != new.get(k, LEGACY.get(k))]
        if diff:
            details = "; ".join(f"{k}: store has {old.get(k, LEGACY.get(k))!r}, this sweep {new.get(k)!r}"
                                for k in diff)
            raise ValueError(f"store: {root} holds a different sweep ({details}); "
                             "use another store or the same settings to resume")
        _remove_orphans(root / CELLS)
        return root
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"store: {root} exists, is not empty and has no {MANIFEST}; refusing to write into it")
    (root / CELLS).mkdir(parents=True, exist_ok=True)
    data = {**manifest, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_atomic(file, json.dumps(data, indent=2, sort_keys=True).encode())
    return root


def _remove_orphans(cells: Path) -> None:
    """Delete temporary cell files left by sweep processes that are no longer running."""
    for tmp in cells.glob(".*.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)  # raises if no such process
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            continue


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cell_table(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> pa.Table:
    """One cell's results as an Arrow table: a row per trial x layer.

    Per-layer statistics (trials, layers) become columns; per-trial totals
    (trials,) are repeated on each of their trial's rows; each grid parameter
    is a constant column.
    """
    clash = sorted(set(params) & (set(arrays) | {"trial", "layer"}))
    if clash:  # a column would silently replace another
        raise ValueError(f"grid: parameter {clash[0]!r} has the name of a result column")
    per_layer = {k: v for k, v in arrays.items() if v.ndim == 2}
    trials, depth = next(iter(per_layer.values())).shape
    columns: dict[str, Any] = {}
    for k, v in params.items():
        columns[k] = pa.array([v] * (trials * depth))
    columns["trial"] = pa.array(np.repeat(np.arange(trials, dtype=np.int64), depth))
    columns["layer"] = pa.array(np.tile(np.arange(1, depth + 1, dtype=np.int64), trials))
    for k, v in arrays.items():
        columns[k] = pa.array(v.ravel() if v.ndim == 2 else np.repeat(v, depth))
    table = pa.table(columns)
    meta = json.dumps({"params": params, "rows": trials * depth}).encode()
    return table.replace_schema_metadata({_META_KEY: meta})


def write_cell(root: Path, params: dict[str, Any], table: pa.Table) -> Path:
    """Write a cell's table under a temporary name and rename it into place."""
    path = root / CELLS / f"{cell_id(params)}.parquet"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, write_page_checksum=True)
    os.replace(tmp, path)
    return path


def check_cell(root: Path, params: dict[str, Any]) -> str:
    """``"done"``, ``"missing"`` or ``"corrupt"`` for the cell with these parameters.

    A file counts as done only if it reads whole with verified page checksums,
    carries these parameters and has the expected number of rows.
    """
    path = root / CELLS / f"{cell_id(params)}.parquet"
    if not path.exists():
        return "missing"
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        meta = json.loads(table.schema.metadata[_META_KEY])
        if meta["params"] != json.loads(json.dumps(params)) or table.num_rows != meta["rows"]:
            return "corrupt"
    except Exception:  # any failure to read the file whole means: not a finished cell
        return "corrupt"
    return "done"


def set_aside(root: Path, params: dict[str, Any]) -> Path:
    """Move a corrupt cell file aside (kept for inspection, never deleted)."""
    path = root / CELLS / f"{cell_id(params)}.parquet"
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    return target


def load(store: str | Path) -> pd.DataFrame:
    """Every finished cell of a store as one tidy DataFrame.

    Parameters
    ----------
    store : str or Path
        The store's folder (with ``manifest.json``).

    Returns
    -------
    pandas.DataFrame
        One row per configuration x trial x layer; every grid parameter is a
        column, then ``trial``, ``layer`` and the statistics.

    Raises
    ------
    ValueError
        If the folder is not a store, or a cell file is truncated or corrupted
        (its name is given; rerunning the sweep recomputes it).
    """
    root = _store_root(store)
    frames = []
    for path in sorted((root / CELLS).glob("*.parquet")):
        try:
            table = pq.read_table(path, page_checksum_verification=True)
            meta = json.loads(table.schema.metadata[_META_KEY])
            if table.num_rows != meta["rows"]:
                raise ValueError(f"{table.num_rows} rows, expected {meta['rows']}")
        except Exception as err:
            raise ValueError(f"store: cell file {path} is truncated or corrupted ({err}); "
                             "rerun the sweep to recompute it") from err
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    params = list(manifest(root)["grid"])
    return frame.sort_values([*params, "trial", "layer"], kind="stable", ignore_index=True)


def _store_root(store: str | Path) -> Path:
    """The store's folder, or ValueError if it is not a store."""
    root = Path(store)
    if not (root / MANIFEST).is_file():
        raise ValueError(f"store: {root} has no {MANIFEST}; not a fastgrad store")
    return root


def manifest(store: str | Path) -> dict[str, Any]:
    """The manifest of a store, as a dict.

    Raises
    ------
    ValueError
        If the folder is not a store.
    """
    return dict(json.loads((_store_root(store) / MANIFEST).read_text()))

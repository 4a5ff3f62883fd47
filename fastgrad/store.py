"""The on-disk result store of a sweep: a manifest and one Parquet file per cell.

Layout::

    STORE/manifest.json                    the grid, seed, trials, batch, dtype, model,
                                           fastgrad version and creation time
    STORE/cells/<id>.parquet               one finished cell: grid parameters, trial,
                                           layer and one column per statistic
    STORE/partial/<id>/<lo>-<hi>.parquet   trials lo .. hi - 1 of a cell in progress

Every file is written under a temporary name in the same folder and renamed
(atomic on POSIX), so an interrupted sweep leaves whole files or none. A cell
is saved in pieces of trials while it runs (``partial/``); once all its trials
are there they are joined into its cell file, the same table a single write
would give, and the pieces removed. Each file carries its cell's parameters,
trial range and expected row count in the Parquet metadata, and page
checksums: a truncated or corrupted file is detected, moved aside (never
deleted) and recomputed. Nothing is pickled.
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

from fastgrad.results import tidy_columns

MANIFEST = "manifest.json"
CELLS = "cells"
PARTIAL = "partial"
_META_KEY = b"fastgrad.cell"
# Fields of the manifest that must match for a store to be resumed.
IDENTITY = ("model", "grid", "seed", "trials", "batch", "dtype", "spectrum", "generator", "scales")
# What a store written before a field existed holds for it: every store before the
# "generator" field drew with float64 arithmetic, in float32 runs too; before "scales",
# sigma_w and sigma_w2 were ignored for orthogonal and identity weights (scale 1, or gain).
LEGACY = {"generator": "splitmix64-boxmuller-float64", "scales": 1}


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
    if root.exists() and not root.is_dir():
        raise ValueError(f"store: {root} is a file, not a folder; give a folder for the store (it is created "
                         "if missing)")
    file = root / MANIFEST
    if file.exists():
        old = read_manifest(file)
        new = json.loads(json.dumps(manifest))  # compare as stored: JSON types
        diff = [k for k in IDENTITY if old.get(k, LEGACY.get(k)) != new.get(k, LEGACY.get(k))]
        if diff:
            details = "; ".join(f"{k}: store has {old.get(k, LEGACY.get(k))!r}, this sweep {new.get(k)!r}"
                                for k in diff)
            if diff == ["scales"]:
                details += (" (the store was written when sigma_w and sigma_w2 were ignored for orthogonal and "
                            "identity weights, which ran at scale 1: its cells are not what this grid asks for)")
            raise ValueError(f"store: {root} holds a different sweep ({details}); "
                             "use another store or the same settings to resume")
        _remove_orphans(root / CELLS)
        for folder in (root / PARTIAL).glob("*"):
            _remove_orphans(folder)
        return root
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"store: {root} exists, is not empty and has no {MANIFEST}; refusing to write into it")
    (root / CELLS).mkdir(parents=True, exist_ok=True)
    data = {**manifest, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_atomic(file, json.dumps(data, indent=2, sort_keys=True).encode())
    return root


def read_manifest(file: Path) -> dict[str, Any]:
    """A store's manifest file as a dict, or ValueError naming the file and what to do."""
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"store: {file} is unreadable or not valid JSON ({err}); it says which sweep the store "
                         f"holds: restore it from a backup, or move the store aside and run the sweep again "
                         "into a new one") from err
    if not isinstance(data, dict):
        raise ValueError(f"store: {file} does not hold a manifest (a JSON object); restore it, or use a new store")
    return data


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


def cell_table(params: dict[str, Any], arrays: dict[str, np.ndarray], first_trial: int = 0) -> pa.Table:
    """One cell's results as an Arrow table: a row per trial x layer.

    Per-layer statistics (trials, layers) become columns; per-trial totals
    (trials,) are repeated on each of their trial's rows; each grid parameter
    is a constant column. Row i of the arrays is trial ``first_trial + i``.
    """
    clash = sorted(set(params) & (set(arrays) | {"trial", "layer"}))
    if clash:  # a column would silently replace another
        raise ValueError(f"grid: parameter {clash[0]!r} has the name of a result column")
    tidy = tidy_columns(arrays, first_trial)
    rows = tidy["trial"].size
    columns: dict[str, Any] = {k: pa.array([v] * rows) for k, v in params.items()}
    columns.update({k: pa.array(v) for k, v in tidy.items()})
    table = pa.table(columns)
    meta = json.dumps({"params": params, "rows": rows}).encode()
    return table.replace_schema_metadata({_META_KEY: meta})


def write_cell(root: Path, params: dict[str, Any], table: pa.Table) -> Path:
    """Write a cell's table under a temporary name and rename it into place."""
    path = root / CELLS / f"{cell_id(params)}.parquet"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, write_page_checksum=True)
    os.replace(tmp, path)
    return path


def _part_dir(root: Path, params: dict[str, Any]) -> Path:
    return root / PARTIAL / cell_id(params)


def write_part(root: Path, params: dict[str, Any], first_trial: int, arrays: dict[str, np.ndarray]) -> Path:
    """Save trials ``first_trial ..`` of a cell in progress (atomically: a whole piece or none).

    Parameters
    ----------
    root : Path
    params : dict
    first_trial : int
        The trial of the arrays' first row.
    arrays : dict of str to numpy.ndarray
        The statistics of the piece's trials, as :func:`cell_table` takes them.

    Returns
    -------
    Path
    """
    table = cell_table(params, arrays, first_trial)
    count = next(iter(arrays.values())).shape[0]
    meta = json.dumps({"params": params, "rows": table.num_rows, "trials": [first_trial, first_trial + count]})
    table = table.replace_schema_metadata({_META_KEY: meta.encode()})
    folder = _part_dir(root, params)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{first_trial:010d}-{first_trial + count:010d}.parquet"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, write_page_checksum=True)
    os.replace(tmp, path)
    return path


def _read_part(path: Path, params: dict[str, Any]) -> tuple[int, int, pa.Table] | None:
    """A piece's trial range and table, or None if it is truncated, corrupted or of another cell."""
    try:
        lo, hi = (int(v) for v in path.stem.split("-"))
        table = pq.read_table(path, page_checksum_verification=True)
        meta = json.loads(table.schema.metadata[_META_KEY])
        if (meta["params"] != json.loads(json.dumps(params)) or table.num_rows != meta["rows"]
                or meta["trials"] != [lo, hi] or hi <= lo):
            return None
    except Exception:  # any failure to read the piece whole means: not saved
        return None
    return lo, hi, table


def saved_trials(root: Path, params: dict[str, Any], trials: int) -> np.ndarray:
    """Which of a cell's trials are saved in pieces: a (trials,) bool mask.

    Pieces that are truncated, corrupted or outside ``0 .. trials - 1`` are moved
    aside (never deleted); their trials count as not saved.
    """
    done = np.zeros(trials, dtype=bool)
    folder = _part_dir(root, params)
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("*.parquet")):
        piece = _read_part(path, params)
        if piece is None or piece[1] > trials:
            os.replace(path, path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"))
            continue
        done[piece[0]:piece[1]] = True
    return done


def finish_cell(root: Path, params: dict[str, Any], trials: int) -> Path:
    """Join a cell's saved pieces into its cell file, then remove the pieces.

    The file holds the table :func:`cell_table` gives for all trials at once, in
    trial order; overlapping pieces (a piece saved twice after a crash) are
    read once per trial.

    Raises
    ------
    ValueError
        If the pieces do not cover trials 0 .. trials - 1.
    """
    folder = _part_dir(root, params)
    pieces = sorted(p for p in (_read_part(path, params) for path in folder.glob("*.parquet")) if p is not None)
    tables, upto = [], 0
    for lo, hi, table in pieces:
        if hi <= upto:  # wholly inside what is already taken
            continue
        if lo > upto:
            break
        rows_per_trial = table.num_rows // (hi - lo)
        tables.append(table.slice((upto - lo) * rows_per_trial))
        upto = hi
    if upto != trials:
        raise ValueError(f"store: the saved pieces of cell {params} cover trials 0 .. {upto - 1} of {trials}")
    table = pa.concat_tables(tables).combine_chunks()
    meta = json.dumps({"params": params, "rows": table.num_rows}).encode()
    path = write_cell(root, params, table.replace_schema_metadata({_META_KEY: meta}))
    discard_parts(root, params)
    return path


def discard_parts(root: Path, params: dict[str, Any]) -> None:
    """Remove the pieces of a cell whose cell file is written (their trials are all in it)."""
    folder = _part_dir(root, params)
    if folder.is_dir():
        for path in folder.glob("*.parquet"):
            path.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:  # pieces set aside as corrupt stay, for inspection
            pass


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
    if root.exists() and not root.is_dir():
        raise ValueError(f"store: {root} is a file; a store is a folder holding {MANIFEST}")
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
    return read_manifest(_store_root(store) / MANIFEST)

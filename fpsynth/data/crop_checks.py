"""Prepare's crops are verified outputs: each job's resume part carries the size, mtime and sha256
of its crops, ``checks.parquet`` lists them all for the finished run, and a rerun redoes the jobs
whose crops are missing or damaged (the cheap check of :mod:`fpsynth.outputs`).

Columns added to a frames part (dropped from ``frames.parquet`` by its schema)::

    _input     the job's key (its pseudonymous input id): which job to redo
    _size _mtime_ns _sha256   the crop file as written
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fpsynth.outputs import LIST_COLUMNS, damaged_rows, file_check
from fpsynth.stage import atomic_write_parquet

CHECKS_FILE = "checks.parquet"
_COLUMNS = {"size": "_size", "mtime_ns": "_mtime_ns", "sha256": "_sha256"}


def with_crop_checks(frames: pd.DataFrame, out_dir: Path, job_input: str) -> pd.DataFrame:
    """A job's frame rows (``path`` relative to ``out_dir``) with the job key and each crop's check."""
    checks = [file_check(Path(out_dir) / p) for p in frames["path"]] if len(frames) else []
    extra = {"_input": [job_input] * len(frames)}
    extra.update({col: [c[key] for c in checks] for key, col in _COLUMNS.items()})
    return frames.assign(**extra)


def damaged_jobs(parts: pd.DataFrame, out_dir: Path) -> dict[str, str]:
    """job key -> what is wrong with one of its crops, for the stored jobs whose crops fail the check."""
    if not len(parts) or "_sha256" not in parts.columns:  # no finished job yet, or parts of an older version
        return {}
    rows = parts.dropna(subset=["_sha256"])
    listed = zip(rows["path"], rows["_size"], rows["_mtime_ns"], rows["_sha256"])
    inputs = rows["_input"].tolist()
    bad: dict[str, str] = {}
    for i, path, problem in damaged_rows(out_dir, listed):
        bad.setdefault(inputs[i], f"{path}: {problem}")
    return bad


def write_crop_checks(out_dir: Path, frames: pd.DataFrame) -> None:
    """``checks.parquet``: one row per crop of the manifest (path, size, mtime_ns, sha256, input).

    Rows of parts written before crops were checked get their check now, from the file as it is."""
    frames = frames.copy()
    for col in (*_COLUMNS.values(), "_input"):
        if col not in frames.columns:
            frames[col] = None
    for idx in frames.index[frames["_sha256"].isna()]:
        check = file_check(Path(out_dir) / frames.at[idx, "path"])
        for key, col in _COLUMNS.items():
            frames.at[idx, col] = check[key]
    rows = frames[["path", *_COLUMNS.values(), "_input"]].rename(
        columns={**{v: k for k, v in _COLUMNS.items()}, "_input": "input"}
    )
    rows = rows.astype({"path": "object", "size": "int64", "mtime_ns": "int64", "sha256": "object", "input": "object"})
    write_check_list(Path(out_dir) / CHECKS_FILE, rows)


def write_check_list(path: Path, rows: pd.DataFrame) -> None:
    """Write a check list (a DataFrame with at least :data:`fpsynth.outputs.LIST_COLUMNS`) atomically."""
    missing = [c for c in LIST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"a check list needs the columns {LIST_COLUMNS}; {missing} absent")
    atomic_write_parquet(Path(path), rows.reset_index(drop=True))

"""Recorded outputs: what a stage's record says about its files, and the cheap check of them.

A stage that other stages read (``prepare``, ``generate``) is built with ``verified=[...]``
(:class:`fpsynth.stage.Stage`). Its record then says ``"verified_outputs": true`` from the moment
it starts, and when it finishes it holds the size, mtime and sha256 of each of those files
(``"checks"``) and names Parquet lists of many more files (``"check_lists"``: columns
:data:`LIST_COLUMNS`, paths relative to the stage folder; prepare's crops).

The check is cheap: a file whose size differs is damaged, a file whose size and mtime both match
is taken as intact, and only a file whose mtime changed is hashed (a copy without kept times
costs one read, an edit in place is caught). A rerun of the stage redoes what fails the check;
a downstream stage refuses a folder whose record says unfinished or whose files fail it
(:func:`require_upstream`), naming the command that remakes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fpsynth.errors import FpsynthError

RECORD_FILE = "stage.json"
LIST_COLUMNS = ("path", "size", "mtime_ns", "sha256")


class UpstreamError(FpsynthError, RuntimeError):
    """An earlier stage's folder is unfinished or damaged; the message names the command to run."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_check(path: Path) -> dict[str, Any]:
    """{size, mtime_ns, sha256} of a file, as a record or a check list keeps it."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}


def file_problem(path: Path, size: int, mtime_ns: int, sha256: str) -> str | None:
    """None when ``path`` passes the cheap check against its recorded values, else what is wrong."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return "missing"
    if st.st_size != size:
        return f"{st.st_size} bytes instead of {size} (truncated or replaced)"
    if st.st_mtime_ns == mtime_ns or sha256_file(path) == sha256:
        return None
    return "changed (its sha256 differs)"


def damaged_rows(folder: Path, rows: Iterable[tuple[str, int, int, str]]) -> list[tuple[int, str, str]]:
    """(position, path, problem) of the listed files (path, size, mtime_ns, sha256) that fail the check."""
    bad = []
    for i, (rel, size, mtime_ns, digest) in enumerate(rows):
        problem = file_problem(Path(folder) / rel, int(size), int(mtime_ns), digest)
        if problem is not None:
            bad.append((i, rel, problem))
    return bad


def read_record(folder: Path, max_bytes: int | None = None) -> dict[str, Any] | None:
    """The stage record of ``folder`` as a dict; None when there is none, it is not a regular file
    (never opened: a FIFO would block), it is larger than ``max_bytes``, or it is not a JSON object."""
    path = Path(folder) / RECORD_FILE
    try:
        if not path.is_file() or (max_bytes is not None and path.stat().st_size > max_bytes):
            return None
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return rec if isinstance(rec, dict) else None


def outputs_problem(folder: Path, record: dict[str, Any]) -> str | None:
    """What fails the cheap check among a finished record's files and listed files (None: all pass)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    for rel, check in sorted((record.get("checks") or {}).items()):
        problem = file_problem(folder / rel, check["size"], check["mtime_ns"], check["sha256"])
        if problem is not None:
            return f"{folder / rel} is {problem}" if problem == "missing" else f"{folder / rel}: {problem}"
    for rel in record.get("check_lists") or []:
        columns = pq.read_table(folder / rel, columns=list(LIST_COLUMNS)).to_pydict()
        bad = damaged_rows(folder, zip(*(columns[c] for c in LIST_COLUMNS)))
        if bad:
            _, path, problem = bad[0]
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            return f"{len(bad)} file(s) listed in {folder / rel} missing or damaged ({path}: {problem}{more})"
    return None


def upstream_problem(folder: Path) -> str | None:
    """Why a downstream stage must not read ``folder`` (None: it may, or the folder is not a
    verified stage folder: hand-made manifests, a training run, a folder without a record)."""
    record = read_record(folder)
    if record is None or not record.get("verified_outputs"):
        return None
    stage = record.get("stage", Path(folder).name)
    if record.get("status") != "finished":
        return (
            f"`{stage}` in {folder} did not finish (its record says '{record.get('status')}': it was stopped "
            "or is still running), so its outputs may be incomplete or mixed"
        )
    problem = outputs_problem(folder, record)
    return None if problem is None else f"the outputs of `{stage}` are damaged: {problem}"


def require_upstream(folder: Path, command: str) -> None:
    """Raise :class:`UpstreamError` naming ``command`` when ``folder`` must not be read (see above)."""
    problem = upstream_problem(folder)
    if problem is not None:
        raise UpstreamError(f"{problem}; run `{command}` again (it redoes only what is unfinished or damaged)")


def os_write_error(exc: OSError) -> str | None:
    """A one-line message for an I/O error whose cause is outside fpsynth (full disk, read-only
    filesystem, permissions); None for any other error (a bug keeps its traceback)."""
    import errno

    where = f" {exc.filename}" if exc.filename else ""
    rerun = "then run the same command again; finished items are kept and unfinished ones are made again"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"cannot write{where} ({os.strerror(exc.errno)}): free space (or choose another --workspace/--out), {rerun}"
        )
    if exc.errno == errno.EROFS:
        return f"cannot write{where}: the filesystem is read-only; choose a writable --workspace/--out, {rerun}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot access{where} ({os.strerror(exc.errno)}): check its permissions, {rerun}"
    return None

"""One writer per stage folder: an OS-level lock held by the running process.

``with folder_lock(WORKSPACE / "prepare"):`` takes an exclusive ``flock`` on ``<folder>/.lock``.
The kernel releases it when the process ends, however it ends (SIGKILL included), so a crash
never leaves a stale lock and an identical rerun just proceeds. A second process that wants the
same folder fails at once with a message naming the holder (pid, command, start time, written
into the lock file by the holder). Under torchrun only the main process (RANK 0) locks: the
other ranks are part of the same run. Holding the lock, a run first removes the temporaries a
killed earlier run left behind (nothing is ever written under a final name before it is whole).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from fpsynth.device import Launch
from fpsynth.errors import FpsynthError

LOCK_FILE = ".lock"


class FolderBusyError(FpsynthError, RuntimeError):
    """Another process holds the folder's lock."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        return f"pid {info['pid']}, `{info['command']}`, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "another process"


def is_temporary(path: Path) -> bool:
    """A temporary of ``fpsynth.stage.atomic_path`` (``.<stem>.<random>.tmp<suffix>``), of a
    generated image (``.<item>.tmp.png``), or a checkpoint folder being written or deleted
    (``.tmp-step-*``, ``.del-step-*``, fpsynth.train.checkpoint)."""
    name = path.name
    if path.is_dir():
        return name.startswith((".tmp-step-", ".del-step-"))
    return name.startswith(".") and ".tmp" in name and name != LOCK_FILE


def remove_temporaries(folder: Path) -> int:
    """Delete the temporaries below ``folder`` that a killed run left (only safe while holding its lock)."""
    removed = 0
    for path in sorted(Path(folder).rglob(".*"), key=lambda p: len(p.parts)):
        if not path.exists() or not is_temporary(path):  # gone with a temporary folder above it
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def folder_lock(folder: Path, what: str = "") -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (created if absent) for the ``with`` block."""
    if not Launch.from_env().is_main:  # a torchrun worker: rank 0 holds the run's lock
        yield
        return
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderBusyError(
            f"{folder} is a file, not a folder: give a folder for the outputs (it is created when absent)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only filesystem, a file on the way, no permission
        raise FolderBusyError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # an existing folder on a read-only filesystem, or without write permission
        raise FolderBusyError(
            f"cannot write in {folder} ({exc.strerror or exc}): choose a folder you can write for the outputs"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"{folder} is being written by {_holder(fd)}; wait for it to finish or stop it"
                f"{' (' + what + ')' if what else ''}. Two runs never write one stage folder at once"
            ) from None
        info = {
            "pid": os.getpid(),
            "command": " ".join(sys.argv) or sys.executable,
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        remove_temporaries(folder)  # the sole writer now: what an earlier, killed run left half-written
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock

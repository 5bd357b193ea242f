"""Run jobs in worker processes (joblib loky) with a progress bar, handing each result to a sink.

The sink runs in the parent as each job finishes (in completion order), so it can persist the
job's rows at once: a kill loses only the jobs in flight. Videos go first, the largest file first
(longest-processing-time-first: the last job to start is a short one, so no worker idles through
the end of a set of whole-sequence videos of unequal length while another finishes a long one).

Workers die with their parent: a SIGKILLed ``prepare`` otherwise leaves its loky workers running
(seen alive 7 minutes later). At its first job a worker asks Linux for SIGKILL when its parent
dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the parent pid once a second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fpsynth.data.jobs import Context, Result
from fpsynth.data.process import run_job
from fpsynth.data.pseudonyms import Job
from fpsynth.data.sources import Kind

Sink = Callable[[Job, Result], None]
console = Console(stderr=True)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_tied_to: int | None = None  # the parent pid this worker dies with (set at its first job)


def _die_with_parent(parent: int) -> None:
    """Make this worker process end when ``parent`` (the pid that handed it the job) ends."""
    global _tied_to
    if _tied_to == parent:
        return
    _tied_to = parent
    tied = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            tied = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            tied = False
    if not tied:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="fpsynth-parent-watch").start()
    if os.getppid() != parent:  # the parent died before the tie was made
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _work(job: Job, ctx: Context, parent: int | None = None) -> tuple[Job, Result]:
    """Run one job; ``parent``: the pid of the process that handed it to this worker process."""
    if parent is not None and parent != os.getpid():
        _die_with_parent(parent)
    return job, run_job(job, ctx)


def _order(job: Job) -> tuple[bool, int]:
    """Videos before other jobs, the largest file first (its size stands for its decoding and analysis)."""
    if job.kind is not Kind.VIDEO:
        return True, 0
    try:
        return False, -os.stat(job.files[0]).st_size
    except OSError:  # unreadable: the job itself says so, early
        return False, 0


def execute(jobs: Sequence[Job], ctx: Context, n_jobs: int, sink: Sink, done: int = 0, label: str = "prepare") -> None:
    """Run ``jobs`` (``done`` more were finished by an earlier, interrupted run)."""
    jobs = sorted(jobs, key=_order)  # stable: videos first, the largest first; then the rest in order
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=done + len(jobs), completed=done)
        if n_jobs == 1 or len(jobs) <= 1:
            results = (_work(job, ctx) for job in jobs)
        else:
            results = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(
                delayed(_work)(job, ctx, os.getpid()) for job in jobs
            )
        for job, result in results:
            sink(job, result)
            progress.advance(task)

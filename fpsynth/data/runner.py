"""Run jobs in worker processes (joblib loky) with a progress bar, handing each result to a sink.

The sink runs in the parent as each job finishes (in completion order), so it can persist the
job's rows at once: a kill loses only the jobs in flight. Clips go first: they are the long jobs,
and starting them early keeps both workers busy to the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fpsynth.data.privacy import Job
from fpsynth.data.process import Context, Result, run_job
from fpsynth.data.sources import Kind

Sink = Callable[[Job, Result], None]
console = Console(stderr=True)


def _work(job: Job, ctx: Context) -> tuple[Job, Result]:
    return job, run_job(job, ctx)


def execute(jobs: Sequence[Job], ctx: Context, n_jobs: int, sink: Sink, done: int = 0, label: str = "prepare") -> None:
    """Run ``jobs`` (``done`` more were finished by an earlier, interrupted run)."""
    jobs = sorted(jobs, key=lambda j: j.kind is not Kind.VIDEO)  # stable: clips first, order kept
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=done + len(jobs), completed=done)
        if n_jobs == 1 or len(jobs) <= 1:
            results = (_work(job, ctx) for job in jobs)
        else:
            results = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(
                delayed(_work)(job, ctx) for job in jobs
            )
        for job, result in results:
            sink(job, result)
            progress.advance(task)

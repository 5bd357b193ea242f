"""A progress bar for sampling: images done / total, images per second, time left."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)


class ImagesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:.1f} img/s", style="progress.data.speed")


@contextlib.contextmanager
def image_progress(label: str, total: int, done: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; the speed (and so the time left) counts images made in this run only."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        ImagesPerSecond(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not enabled) as progress:
        task = progress.add_task(label, total=total, completed=done)
        yield lambda n: progress.advance(task, n)

"""Training logs: ``train/log.csv``, TensorBoard event files, and a progress display (rank 0 only).

A log row, every ``log.every`` steps, holds the means over those steps of every CycleLosses term,
the learning rate, the gradient norm (before clipping) and the images per second; the last step
of a run also gets a row, over the steps since the previous one (a partial window). The running
sums of the current window are part of a checkpoint, so a resumed run writes exactly the rows an
uninterrupted one would: on resume, rows after the checkpoint's step (written before a kill) and
a partial row at that step are dropped from the CSV, and TensorBoard hides its events from that
step on (``purge_step``).
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fpsynth.stage import atomic_write_text

# Every CycleLosses term (``CycleLosses.as_dict`` keys), in a fixed column order.
LOSS_TERMS = ("loss", "first", "mse", "identity", "landmark", "second", "mse2", "identity2", "landmark2")
COLUMNS = ("step", "epoch", *LOSS_TERMS, "lr", "grad_norm", "images_per_s")


class LogWindow:
    """Sums of the logged values over the steps since the last row."""

    def __init__(self, sums: dict[str, float] | None = None, steps: int = 0) -> None:
        self.sums, self.steps = dict(sums or {}), steps

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {k: v / self.steps for k, v in self.sums.items()} if self.steps else {}

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "steps": self.steps}

    def reset(self) -> None:
        self.sums, self.steps = {}, 0


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


class CsvLog:
    """``log.csv``, rewritten atomically at every row (a few hundred rows: cheap, never half-written)."""

    def __init__(self, path: Path, resume_step: int | None, every: int) -> None:
        self.path = path
        self.rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():

            def kept(step: int) -> bool:
                return step < resume_step or (step == resume_step and step % every == 0)

            with open(path, newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if r.get("step", "").isdigit() and kept(int(r["step"]))]
        self._write()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({c: _format(row.get(c)) for c in COLUMNS})
        self._write()

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


class TrainLogger:
    """CSV + TensorBoard + progress for rank 0; every method is a no-op on other ranks."""

    def __init__(
        self,
        out_dir: Path,
        *,
        start_step: int,
        total_steps: int,
        resumed: bool,
        every: int,
        tensorboard: bool,
        progress: bool,
        enabled: bool,
    ) -> None:
        self.enabled = enabled
        self.total = total_steps
        self.last_row: dict[str, Any] = {}
        if not enabled:
            return
        self.csv = CsvLog(out_dir / "log.csv", start_step if resumed else None, every)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step if resumed else None)
        self.console = Console(stderr=True)
        self.bar: Progress | None = None
        if progress and self.console.is_terminal:
            self.bar = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("train", total=total_steps, completed=start_step, info="")
            self.bar.start()
        self._last = (time.perf_counter(), start_step)  # (time, step) of the previous row

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def step(self, step: int, loss: float) -> None:
        if self.enabled and self.bar is not None:
            self.bar.update(self.task, completed=step, info=self._info(loss))

    def _info(self, loss: float) -> str:
        ips = self.last_row.get("images_per_s")
        return f"loss {loss:.4f}" + (f"  {ips:.1f} img/s" if ips else "")

    def row(self, step: int, epoch: float, means: dict[str, float], lr: float, batch_size: int) -> None:
        """Write one log row; images/s counts the steps this process saw since the previous row."""
        if not self.enabled:
            return
        now = time.perf_counter()
        (then, then_step), self._last = self._last, (now, step)
        ips = (step - then_step) * batch_size / (now - then) if now > then else None
        row = {"step": step, "epoch": epoch, **means, "lr": lr, "images_per_s": ips}
        self.last_row = row
        self.csv.append(row)
        if self.tb is not None:
            for key in LOSS_TERMS:
                if key in means:
                    self.tb.add_scalar(f"loss/{key}", means[key], step)
            for key in ("lr", "grad_norm", "images_per_s"):
                if row.get(key) is not None:
                    self.tb.add_scalar(f"train/{key}", row[key], step)
            self.tb.flush()
        if self.bar is None:
            self.console.print(
                f"step {step}/{self.total}  {self._info(means.get('loss', float('nan')))}", highlight=False
            )

    def image(self, tag: str, rgb: Any, step: int) -> None:
        """An (H, W, 3) uint8 image into TensorBoard (the sample grids)."""
        if self.enabled and self.tb is not None:
            self.tb.add_image(tag, rgb, step, dataformats="HWC")
            self.tb.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.stop()
        if self.tb is not None:
            self.tb.close()

"""Merging shard parts into ``metadata.parquet``: idempotent, streamed, and checked for gaps.

Whoever finishes the last shard merges (every process checks after its own shards), and a run
without ``--shard`` on a folder whose shards are all done verifies them and merges; two merges at
once write the same bytes, atomically. Parts are streamed one row group per shard, so memory does
not grow with the number of images; the counts for the dataset card are accumulated on the way.
"""

from __future__ import annotations

import collections
import dataclasses
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from fpsynth.errors import FpsynthError
from fpsynth.generate.plan import Plan
from fpsynth.generate.shards import METADATA, RUN_KEY, part_key, read_part_table
from fpsynth.stage import atomic_path
from fpsynth.stages import GENERATE

METADATA_FILE = "metadata.parquet"


class MergeError(FpsynthError, RuntimeError):
    """The shard parts do not add up to the planned dataset (should not happen; the message says why)."""


@dataclasses.dataclass
class Counts:
    """What the dataset card reports."""

    images: int = 0
    severity: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    expression: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    cross: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # (severity, expression)
    identities: set = dataclasses.field(default_factory=set)
    style_subjects: set = dataclasses.field(default_factory=set)
    style_frames: set = dataclasses.field(default_factory=set)
    devices: set = dataclasses.field(default_factory=set)

    def add(self, rows) -> None:
        self.images += len(rows)
        self.severity.update(rows["severity"])
        self.expression.update(rows["expression"])
        self.cross.update(zip(rows["severity"], rows["expression"]))
        self.identities.update(rows["identity_id"])
        self.style_subjects.update(rows["style_subject"])
        self.style_frames.update(rows["style_frame"])
        self.devices.update(zip(rows["device"], rows["precision"]))


def pending_shards(out: Path, shards: range | list[int], run_key: str) -> list[int]:
    """Shards among ``shards`` without a part of this run (cheap: no hashing)."""
    missing = []
    for s in shards:
        table = read_part_table(out, s)
        if table is None or part_key(table) != run_key:
            missing.append(s)
    return missing


def merge(out: Path, plan: Plan, run_key: str) -> Counts:
    """Write ``metadata.parquet`` from every shard part, in item order; remove shards beyond the plan."""
    out = Path(out)
    counts, expected = Counts(), 0
    schema = METADATA.with_metadata({RUN_KEY: run_key.encode()})
    with atomic_path(out / METADATA_FILE) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for s in range(plan.n_shards):
            table = read_part_table(out, s)
            if table is None or part_key(table) != run_key:
                raise MergeError(f"shard {s} is not finished; run `{GENERATE.command}` again to make it")
            rows = table.to_pandas()
            indices = rows["item_index"].tolist()
            if indices != list(plan.shard_range(s)):
                planned = list(plan.shard_range(s))
                raise MergeError(f"shard {s} holds items {indices[:3]}... instead of {planned[:3]}...")
            expected += len(rows)
            counts.add(rows)
            writer.write_table(table.replace_schema_metadata(schema.metadata))
    if expected != plan.count:
        raise MergeError(f"{expected} images in the shards, {plan.count} planned")
    _remove_stale(out, plan.n_shards)
    return counts


def _remove_stale(out: Path, n_shards: int) -> None:
    """Shards numbered beyond the plan, left by an earlier run with a larger --count."""
    root = out / "shards"
    for path in list(root.iterdir()) if root.is_dir() else []:
        stem = path.name.split(".")[0]
        if stem.isdigit() and int(stem) >= n_shards:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def read_metadata_key(out: Path) -> str | None:
    path = Path(out) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        return (pq.read_schema(path).metadata or {}).get(RUN_KEY, b"").decode() or None
    except (OSError, ValueError):  # a truncated or damaged file: it belongs to no run (pyarrow's errors)
        return "damaged"

"""Torch datasets over the prepare manifests (the only module of fpsynth.data that imports torch).

Images come out as float tensors (3, 112, 112), RGB, in [-1, 1]; landmarks as (68, 2) float
tensors in crop pixels. Metadata fields are plain strings and floats (a missing eFACE is NaN) so
that the default collate function batches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from fpsynth.data.codec import read_rgb
from fpsynth.data.pixels import to_unit
from fpsynth.errors import FpsynthError
from fpsynth.stage import MissingInputError
from fpsynth.stages import PREPARE

PREPARE_COMMAND = PREPARE.usage  # declared with the stage (fpsynth.stages)


class EmptySelectionError(FpsynthError, ValueError):
    """A dataset selection (split, filters) that matches no rows."""


def load_crop(path: Path) -> torch.Tensor:
    """(3, 112, 112) float RGB in [-1, 1] of a crop PNG."""
    rgb = read_rgb(path)
    if rgb is None:
        raise MissingInputError(f"crop {path} is missing or unreadable; re-run `{PREPARE_COMMAND}`")
    return to_unit(rgb)


def read_manifest(prepare_dir: Path, name: str) -> pd.DataFrame:
    path = Path(prepare_dir) / f"{name}.parquet"
    if not path.is_file():
        raise MissingInputError(f"{path} not found; run `{PREPARE_COMMAND}` first")
    return pd.read_parquet(path)


def _select(df: pd.DataFrame, split: str | None, what: str, **filters: Iterable[str] | None) -> pd.DataFrame:
    if split is not None:
        df = df[df["split"] == split]
    for column, allowed in filters.items():
        if allowed is not None:
            df = df[df[column].isin(list(allowed))]
    if not len(df):
        chosen = {k: v for k, v in {"split": split, **filters}.items() if v is not None}
        raise EmptySelectionError(f"no {what} match {chosen or 'the manifest'}; check the prepare outputs and filters")
    return df.reset_index(drop=True)


def _landmarks(value: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(value, np.float32).reshape(68, 2))


def optional_float(value: Any) -> float:
    """A manifest cell that may be empty (None / NaN / NA) as a float, NaN when empty."""
    return float("nan") if value is None or pd.isna(value) else float(value)


def _text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(value)


class FrameDataset(Dataset):
    """Crops of ``frames.parquet`` (style images, evaluation images), optionally filtered.

    Item: ``image`` (3, 112, 112), ``landmarks`` (68, 2), ``frame_id``, ``subject``, ``dataset``,
    ``expression``, ``phase`` ("" when unknown), ``severity``, ``eface`` (NaN when unknown).
    ``frames`` holds the selected manifest rows, in item order.
    """

    def __init__(
        self,
        prepare_dir: Path,
        split: str | None = "train",
        *,
        datasets: Iterable[str] | None = None,
        expressions: Iterable[str] | None = None,
        severities: Iterable[str] | None = None,
        phases: Iterable[str] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        frames: pd.DataFrame | None = None,
    ) -> None:
        self.root = Path(prepare_dir)
        table = read_manifest(self.root, "frames") if frames is None else frames
        self.frames = _select(
            table, split, "frames", dataset=datasets, expression=expressions, severity=severities, phase=phases
        )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.frames.iloc[i]
        image = load_crop(self.root / row["path"])
        return {
            "image": self.transform(image) if self.transform else image,
            "landmarks": _landmarks(row["landmarks"]),
            "frame_id": row["frame_id"],
            "subject": row["subject"],
            "dataset": row["dataset"],
            "expression": row["expression"],
            "phase": _text(row["phase"]),
            "severity": row["severity"],
            "eface": optional_float(row["eface"]),
        }


class PairDataset(Dataset):
    """Training pairs of ``pairs.parquet``: identity image and style image of the same subject.

    Item: ``x_id`` and ``x0`` (3, 112, 112) float RGB in [-1, 1] (x0 is the style image, the
    diffusion target), ``lm0`` (68, 2) landmarks of x0 in crop pixels, ``subject``, ``id_frame``,
    ``style_frame``, ``expression``, ``phase``, ``severity``, ``eface``.
    """

    def __init__(
        self,
        prepare_dir: Path,
        split: str | None = "train",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(prepare_dir)
        self.pairs = _select(read_manifest(self.root, "pairs"), split, "pairs")
        frames = read_manifest(self.root, "frames").set_index("frame_id")
        style = frames.loc[self.pairs["style_frame"]]
        self._lm0 = np.stack([np.asarray(v, np.float32).reshape(68, 2) for v in style["landmarks"]])
        self._eface = style["eface"].astype("float64").to_numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.pairs.iloc[i]
        x_id, x0 = load_crop(self.root / row["id_path"]), load_crop(self.root / row["style_path"])
        if self.transform:
            x_id, x0 = self.transform(x_id), self.transform(x0)
        return {
            "x_id": x_id,
            "x0": x0,
            "lm0": torch.from_numpy(self._lm0[i]),
            "subject": row["subject"],
            "id_frame": row["id_frame"],
            "style_frame": row["style_frame"],
            "expression": row["expression"],
            "phase": _text(row["phase"]),
            "severity": row["severity"],
            "eface": optional_float(self._eface[i]),
        }

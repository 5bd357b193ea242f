"""Reading a generated dataset back (the report stage, training a palsy classifier on it).

    meta = read_metadata(run_dir)                       # pandas, one row per image
    ds = GeneratedDataset(run_dir, prepare_dir=ws / "prepare")
    item = ds[0]   # image, identity, style (3, 112, 112) [-1, 1]; labels and ids

``style`` is there only when ``prepare_dir`` (the prepare folder the run read) is given; the
identity crops come from the run's own ``identities.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from fpsynth.data.dataset import EmptySelectionError, load_crop, optional_float
from fpsynth.generate.identities import decode_crop, read_identities
from fpsynth.generate.merge import METADATA_FILE
from fpsynth.stage import MissingInputError
from fpsynth.stages import GENERATE

GENERATE_COMMAND = GENERATE.usage  # declared with the stage (fpsynth.stages)


def read_metadata(run_dir: Path) -> pd.DataFrame:
    """The merged metadata of a finished run (``metadata.parquet``), in item order."""
    path = Path(run_dir) / METADATA_FILE
    if not path.is_file():
        raise MissingInputError(
            f"{path} not found: {run_dir} is not a finished generation run; run `{GENERATE_COMMAND}` first"
        )
    return pd.read_parquet(path)


def identity_crops(run_dir: Path) -> dict[str, torch.Tensor]:
    """identity_id -> (3, 112, 112) [-1, 1] crop of every identity face the run used."""
    ids = read_identities(Path(run_dir))
    if ids is None:
        raise MissingInputError(f"{Path(run_dir) / 'identities.parquet'} not found; run `{GENERATE_COMMAND}` first")
    return {i: decode_crop(png) for i, png in zip(ids.table["identity_id"], ids.table["png"])}


class GeneratedDataset(Dataset):
    """Images of a generated run with their labels, optionally filtered by severity / expression.

    Item: ``image``, ``identity`` and (with ``prepare_dir``) ``style``, each (3, 112, 112) RGB in
    [-1, 1]; ``item_id``, ``identity_id``, ``style_frame``, ``style_subject``, ``severity``,
    ``expression``, ``phase`` ("" when unknown) as strings and ``eface`` (NaN when unknown).
    """

    def __init__(
        self,
        run_dir: Path,
        prepare_dir: Path | None = None,
        *,
        severities: list[str] | None = None,
        expressions: list[str] | None = None,
    ) -> None:
        self.root = Path(run_dir)
        meta = read_metadata(self.root)
        if severities is not None:
            meta = meta[meta["severity"].isin(severities)]
        if expressions is not None:
            meta = meta[meta["expression"].isin(expressions)]
        if not len(meta):
            raise EmptySelectionError(
                f"no generated images in {run_dir} match severities={severities}, expressions={expressions}"
            )
        self.metadata = meta.reset_index(drop=True)
        self.prepare_dir = Path(prepare_dir) if prepare_dir is not None else None
        self._identities = identity_crops(self.root)

    def __len__(self) -> int:
        return len(self.metadata)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.metadata.iloc[i]
        item = {
            "image": load_crop(self.root / row["file_name"]),
            "identity": self._identities[row["identity_id"]],
            "item_id": row["item_id"],
            "identity_id": row["identity_id"],
            "style_frame": row["style_frame"],
            "style_subject": row["style_subject"],
            "severity": row["severity"],
            "expression": row["expression"],
            "phase": "" if row["phase"] is None or pd.isna(row["phase"]) else row["phase"],
            "eface": optional_float(row["eface"]),
        }
        if self.prepare_dir is not None:
            item["style"] = load_crop(self.prepare_dir / row["style_path"])
        return item

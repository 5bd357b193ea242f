"""A generated dataset (``fpsynth generate``'s output folder) as an evaluation set.

The folder holds ``metadata.parquet`` (one row per image: ``item_id``, ``file_name`` relative to
the folder, ``identity_id``, ``style_frame``, ``severity``, ``expression``, ``phase``, sampler,
checkpoint hash, ...) and ``identities.parquet`` (the aligned identity crops as PNG bytes). Style
frames are rows of the workspace's prepared frames manifest, joined by ``style_frame``.

The identity crops used by the evaluated rows are written once as PNG files under the report's
``identities/`` folder, so every image of an evaluation set is a file path like any other.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from fpsynth.errors import FpsynthError
from fpsynth.generate.dataset import GENERATE_COMMAND
from fpsynth.generate.identities import IDENTITIES_FILE
from fpsynth.generate.merge import METADATA_FILE
from fpsynth.outputs import read_record
from fpsynth.report.sources import Prepared, seeded_subset
from fpsynth.stage import atomic_write_bytes


class DatasetMismatchError(FpsynthError, ValueError):
    """The generated dataset does not fit this workspace's prepared data, or has lost files."""


def read_generated(
    folder: Path, prepared: Prepared, max_images: int, seed: int, identity_dir: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The evaluation set of a generated dataset (a seeded subset of ``max_images`` rows), and its description."""
    folder = Path(folder)
    try:
        meta = pd.read_parquet(folder / METADATA_FILE)
    except (OSError, ValueError) as exc:  # truncated or not Parquet (pyarrow's errors derive from these)
        raise DatasetMismatchError(
            f"{folder}/{METADATA_FILE} cannot be read ({type(exc).__name__}); run `{GENERATE_COMMAND} --out "
            f"{folder}` again: it finds the damaged file and writes it anew"
        ) from None
    n_total = len(meta)
    meta = seeded_subset(meta.sort_values("item_id"), max_images, seed, "report-dataset")
    frames = prepared.by_id()
    unknown = sorted(set(meta["style_frame"]) - set(frames.index))
    if unknown:
        raise DatasetMismatchError(
            f"{folder}: {len(unknown)} style frame(s) (e.g. {unknown[0]}) are not in {prepared.dir}/frames.parquet; "
            "the dataset was generated from another prepare run: report it from the workspace it was generated in"
        )
    images = _checked_images(folder, meta)
    id_images = _identity_files(folder, sorted(set(meta["identity_id"])), identity_dir)
    style = frames.loc[meta["style_frame"]]
    items = pd.DataFrame(
        {
            "item": meta["item_id"].to_numpy(),
            "image": [str(p) for p in images],
            "id_image": [id_images[i] for i in meta["identity_id"]],
            "identity": meta["identity_id"].to_numpy(),
            "style_frame": meta["style_frame"].to_numpy(),
            "style_subject": meta["style_subject"].to_numpy(),
            "style_image": style["image"].to_numpy(),
            "rest_image": style["rest_image"].to_numpy(),
            "severity": meta["severity"].to_numpy(),
            "eface": meta["eface"].to_numpy(),
            "expression": meta["expression"].to_numpy(),
            "phase": meta["phase"].to_numpy(),
        }
    )
    return items, _describe(folder, meta, n_total)


def _checked_images(folder: Path, meta: pd.DataFrame) -> list[Path]:
    """The image paths of ``meta``, each inside ``folder`` (no ``..``, absolute path or symlink out)
    and matching its ``image_sha256``; an error naming the first offender otherwise."""
    root = folder.resolve()
    images = [folder / str(name) for name in meta["file_name"]]
    outside = [str(p) for p in images if not p.resolve().is_relative_to(root)]
    if outside:
        raise DatasetMismatchError(
            f"{folder}: {len(outside)} file_name(s) of {METADATA_FILE} point outside the dataset folder "
            f"(e.g. {outside[0]}); refusing to read them: this metadata was not written by fpsynth generate"
        )
    redo = f"run `{GENERATE_COMMAND} --out {folder}` again: it verifies every image and remakes damaged ones"
    lost = [str(p) for p in images if not p.is_file()]
    if lost:
        raise DatasetMismatchError(
            f"{folder}: {len(lost)} generated image(s) listed in {METADATA_FILE} are missing (e.g. {lost[0]}); {redo}"
        )
    if "image_sha256" in meta:
        damaged = [
            str(p)
            for p, digest in zip(images, meta["image_sha256"])
            if hashlib.sha256(p.read_bytes()).hexdigest() != digest
        ]
        if damaged:
            raise DatasetMismatchError(
                f"{folder}: {len(damaged)} generated image(s) do not match their sha256 in {METADATA_FILE} "
                f"(e.g. {damaged[0]}); {redo}"
            )
    return images


def _identity_files(folder: Path, used: list[str], out_dir: Path) -> dict[str, str]:
    """identity_id -> PNG path of its crop, written from ``identities.parquet`` when not there yet."""
    path = folder / IDENTITIES_FILE
    if not path.is_file():
        raise DatasetMismatchError(
            f"{folder}: {IDENTITIES_FILE} (the identity crops) is missing; run `{GENERATE_COMMAND}` again"
        )
    table = pd.read_parquet(path, columns=["identity_id", "png"]).set_index("identity_id")
    absent = sorted(set(used) - set(table.index))
    if absent:
        raise DatasetMismatchError(f"{folder}: identity {absent[0]} of {METADATA_FILE} is not in {IDENTITIES_FILE}")
    files = {}
    for identity in used:
        target = Path(out_dir) / f"{identity}.png"
        data = table.at[identity, "png"]
        if not target.is_file() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
        files[identity] = str(target)
    return files


def _describe(folder: Path, meta: pd.DataFrame, n_total: int) -> dict[str, Any]:
    def distinct(column: str) -> list[Any]:
        return sorted(meta[column].dropna().unique().tolist()) if column in meta else []

    return {
        **_identity_source(folder),
        "path": str(folder),
        "images_total": int(n_total),
        "images_evaluated": int(len(meta)),
        "subset": "all" if len(meta) == n_total else f"seeded random subset of {len(meta)} (report.max_images)",
        "identities": int(meta["identity_id"].nunique()),
        "style_subjects": int(meta["style_subject"].nunique()),
        "style_frames": int(meta["style_frame"].nunique()),
        "checkpoints": distinct("checkpoint"),
        "checkpoint_steps": distinct("checkpoint_step"),
        "samplers": distinct("sampler"),
        "steps": distinct("steps"),
        "synthetic": bool(meta["synthetic"].all()) if "synthetic" in meta else None,
    }


def _identity_source(folder: Path) -> dict[str, Any]:
    """The ``--ids`` folder of the run (from the config it wrote beside its outputs) and whether
    it is the demo renderer's synthetic identities (as the generate stage recorded it)."""
    config = folder / "config.toml"
    ids = tomllib.loads(config.read_text()).get("generate", {}).get("ids") if config.is_file() else None
    record = read_record(folder) or {}
    return {"ids_folder": ids, "ids_synthetic": bool((record.get("summary") or {}).get("ids_synthetic"))}

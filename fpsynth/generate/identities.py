"""Identity faces for generation: ``--ids DIR`` through prepare's own face code, kept in one table.

Every photo below the folder is detected, landmarked, aligned and gated exactly as prepare treats
plain photos (:func:`fpsynth.data.photos.process_photos`). The aligned crops are kept as PNG bytes
inside ``identities.parquet`` rather than as image files, so that the output folder holds no image
that is not a generated one (an image-folder loader would otherwise pick the crops up as data).
Unusable photos go to ``identity_rejects.parquet`` with their reason; no usable face at all is an
error that points there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from fpsynth.config import to_dict
from fpsynth.data.codec import decode_rgb, encode_png
from fpsynth.data.config import PrepareConfig
from fpsynth.data.photos import process_photos
from fpsynth.data.pixels import to_unit
from fpsynth.data.sources import check_root
from fpsynth.errors import FpsynthError
from fpsynth.stage import atomic_write_parquet, hash_paths

IDENTITIES_FILE = "identities.parquet"
REJECTS_FILE = "identity_rejects.parquet"
_KEY = b"fpsynth.identities_key"
_SHOWN = 10  # rejected files listed in the error message
IDENTITY_PNG_COMPRESSION = 3  # the crops' PNG level inside identities.parquet (part of its bytes)

IDENTITIES = pa.schema(
    [
        ("identity_id", pa.string()),  # the crop's pseudonymous id (prepare's frame_id of the photo)
        ("subject", pa.string()),  # pseudonym of the photo's first folder (or of the photo itself)
        ("source", pa.string()),  # the photo's path relative to --ids
        ("png", pa.binary()),  # the aligned 112x112 RGB crop, PNG-encoded
        ("landmarks", pa.list_(pa.float32(), 136)),  # 68 points in crop pixels, x0, y0, x1, ...
        ("det_score", pa.float32()),
        ("blur", pa.float32()),
        ("yaw", pa.float32()),
    ]
)
IDENTITY_REJECTS = pa.schema([("source", pa.string()), ("reason", pa.string()), ("detail", pa.string())])


class IdentityError(FpsynthError, ValueError):
    """No identity faces to generate with (no --ids, an empty folder, or no usable face in it)."""


@dataclasses.dataclass(frozen=True)
class Identities:
    """The usable identity faces, in a fixed order (sorted by source), and the rejected photos."""

    table: pd.DataFrame  # IDENTITIES columns, one row per usable face
    rejects: pd.DataFrame  # IDENTITY_REJECTS columns
    key: str  # fingerprint of (photos, face settings, seed): the plan depends on it

    def __len__(self) -> int:
        return len(self.table)

    def crop(self, i: int) -> torch.Tensor:
        """(3, 112, 112) float RGB in [-1, 1] of identity ``i`` (as ``fpsynth.data.load_crop`` reads a file)."""
        return decode_crop(self.table["png"].iat[i])

    @classmethod
    def from_crops(cls, crops: list[np.ndarray], sources: list[str]) -> Identities:
        """Identities from already aligned (112, 112, 3) uint8 RGB crops (benchmarks, other tools)."""
        pngs = [encode_png(c, IDENTITY_PNG_COMPRESSION) for c in crops]
        names = [f"ID{i:05d}" for i in range(len(crops))]
        table = pd.DataFrame(
            {
                "identity_id": names,
                "subject": names,
                "source": list(sources),
                "png": pngs,
                "landmarks": [None] * len(crops),
                "det_score": np.nan,
                "blur": np.nan,
                "yaw": np.nan,
            }
        )
        key = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in pngs)).hexdigest()
        return cls(table, pd.DataFrame(columns=IDENTITY_REJECTS.names), key)


def decode_crop(png: bytes) -> torch.Tensor:
    """(3, H, W) float RGB in [-1, 1] of PNG bytes."""
    return to_unit(decode_rgb(png))


def identities_key(folder: Path, prepare: PrepareConfig, seed: int, dlib_models: Path | None) -> str:
    """Fingerprint of everything the identity crops depend on (not the worker count)."""
    settings = {k: v for k, v in to_dict(prepare).items() if k in ("faces", "quality", "sources", "png_compression")}
    payload = json.dumps(
        {"photos": hash_paths({"ids": folder}), "settings": settings, "seed": seed, "dlib": str(dlib_models)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_identities(
    folder: Path | None,
    prepare: PrepareConfig,
    out_dir: Path,
    *,
    seed: int,
    dlib_models: Path | None = None,
    n_jobs: int | None = None,
) -> Identities:
    """Align the faces of ``folder``, re-using ``out_dir``'s stored table when nothing changed.

    Writes nothing (the caller stores the tables once it knows the output folder is this run's).
    Raises :class:`IdentityError` (or prepare's ``SourceError`` for a missing or empty folder) when
    there is nothing to generate with, listing each unusable file with its reason.
    """
    if folder is None:
        raise IdentityError("generate needs identity faces: pass --ids DIR (a folder of face photos)")
    root = check_root(Path(folder), "--ids")
    key = identities_key(root, prepare, seed, dlib_models)
    result = read_identities(out_dir, expect_key=key)
    if result is None:
        result = _align(root, prepare, seed, dlib_models, n_jobs, key)
    if not len(result):
        shown = result.rejects.head(_SHOWN)
        lines = "".join(f"\n  {r.source}: {r.reason} ({r.detail})" for r in shown.itertuples())
        more = f"\n  ... and {len(result.rejects) - _SHOWN} more" if len(result.rejects) > _SHOWN else ""
        raise IdentityError(
            f"--ids {root}: no usable face in {len(result.rejects)} file(s):{lines}{more}\n"
            "Use photos with one clear, roughly frontal face each."
        )
    return result


def _align(
    root: Path, prepare: PrepareConfig, seed: int, dlib_models: Path | None, n_jobs: int | None, key: str
) -> Identities:
    with tempfile.TemporaryDirectory(prefix="fpsynth-ids-") as tmp:
        kept, rejects = process_photos(root, prepare, Path(tmp), dlib_models=dlib_models, n_jobs=n_jobs, seed=seed)
        pngs = [(Path(tmp) / p).read_bytes() for p in kept["path"]] if len(kept) else []

    def column(name: str) -> list:
        return kept[name].tolist() if name in kept.columns else []

    table = pd.DataFrame(
        {
            "identity_id": column("frame_id"),
            "subject": column("subject"),
            "source": column("source"),
            "png": pngs,
            "landmarks": [np.asarray(v, np.float32).tolist() for v in column("landmarks")],
            "det_score": column("det_score"),
            "blur": column("blur"),
            "yaw": column("yaw"),
        }
    )
    return Identities(table, rejects[["source", "reason", "detail"]].reset_index(drop=True), key)


def write_identities(out_dir: Path, ids: Identities) -> None:
    meta = {_KEY: ids.key.encode()}
    table = pa.Table.from_pandas(ids.table, schema=IDENTITIES, preserve_index=False).replace_schema_metadata(meta)
    atomic_write_parquet(Path(out_dir) / IDENTITIES_FILE, table)
    rejects = pa.Table.from_pandas(ids.rejects, schema=IDENTITY_REJECTS, preserve_index=False)
    atomic_write_parquet(Path(out_dir) / REJECTS_FILE, rejects)


def read_identities(out_dir: Path, expect_key: str | None = None) -> Identities | None:
    """The stored identities (None when absent, or made from other photos/settings than ``expect_key``)."""
    path, rej_path = Path(out_dir) / IDENTITIES_FILE, Path(out_dir) / REJECTS_FILE
    if not path.is_file() or not rej_path.is_file():
        return None
    key = (pq.read_schema(path).metadata or {}).get(_KEY, b"").decode()
    if expect_key is not None and key != expect_key:
        return None
    return Identities(pq.read_table(path).to_pandas(), pq.read_table(rej_path).to_pandas(), key)

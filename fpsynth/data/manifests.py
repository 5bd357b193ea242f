"""The Parquet manifests of ``prepare``: schemas, subject-level splits, training pairs.

``frames.parquet`` has one row per kept crop, ``pairs.parquet`` one row per (identity image,
style image) training pair, ``rejects.parquet`` one row per rejected input, frame run or scores
row. All three are meant to be shared: subjects and inputs appear only under pseudonyms. Every
column is documented in ``manifests/README.md``; :data:`FRAMES`, :data:`PAIRS` and
:data:`REJECTS` are the single source of the column types.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from fpsynth.data.config import Pairing
from fpsynth.data.reasons import Reason
from fpsynth.data.scores import Score, Severity
from fpsynth.seeds import rng

_f32, _str, _i32 = pa.float32(), pa.string(), pa.int32()

FRAMES = pa.schema(
    [
        ("frame_id", _str),
        ("path", _str),
        ("subject", _str),
        ("dataset", _str),
        ("kind", _str),
        ("clip", _str),
        ("expression", _str),
        ("side", _str),
        ("frame_index", _i32),
        ("time_s", pa.float64()),
        ("phase", _str),
        ("motion", _f32),
        ("severity", _str),
        ("eface", _f32),
        ("house_brackmann", pa.int8()),
        ("sunnybrook", _f32),
        ("palsy_type", _str),
        ("category_from_name", _str),
        ("landmarks", pa.list_(_f32, 136)),
        ("bbox", pa.list_(_f32, 4)),
        ("affine", pa.list_(_f32, 6)),
        ("landmark_source", _str),
        ("det_score", _f32),
        ("n_faces", pa.int16()),
        ("blur", _f32),
        ("interocular", _f32),
        ("yaw", _f32),
        ("width", _i32),
        ("height", _i32),
        ("split", _str),
    ]
)

PAIRS = pa.schema(
    [
        ("pair_id", _str),
        ("subject", _str),
        ("split", _str),
        ("id_frame", _str),
        ("id_path", _str),
        ("style_frame", _str),
        ("style_path", _str),
        ("expression", _str),
        ("phase", _str),
        ("severity", _str),
    ]
)

REJECTS = pa.schema(
    [
        ("input", _str),
        ("dataset", _str),
        ("subject", _str),
        ("frame_start", _i32),
        ("frame_end", _i32),
        ("reason", _str),
        ("detail", _str),
    ]
)

SPLITS = ("train", "test")


def to_table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``df`` as a table of exactly ``schema``'s columns, in order (missing columns all null)."""
    arrays = []
    for field in schema:
        if field.name in df.columns and len(df):
            values = df[field.name].tolist()
            values = [None if _missing(v) else v for v in values]
            if pa.types.is_fixed_size_list(field.type):
                values = [None if v is None else np.asarray(v, np.float32).tolist() for v in values]
        else:
            values = [None] * len(df)
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def assign_splits(subjects: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Subject -> "train" | "test": a seeded shuffle, the first ``floor(n x fraction)`` to test.

    Frames never decide a split; a subject's frames all go where the subject goes. With at least
    two subjects and a non-zero fraction, test gets at least one subject.
    """
    subjects = sorted(set(subjects))
    n = len(subjects)
    n_test = int(np.floor(n * test_fraction + 1e-9))
    if n >= 2 and test_fraction > 0:
        n_test = max(1, n_test)
    order = rng(seed, "prepare-split").permutation(n)
    test = {subjects[i] for i in order[:n_test]}
    return {s: "test" if s in test else "train" for s in subjects}


def add_subject_columns(
    frames: pd.DataFrame,
    scores: Mapping[str, Score],
    splits: Mapping[str, str],
    from_name: Mapping[str, tuple[str, str | None]] | None = None,
) -> pd.DataFrame:
    """Severity, clinical scores (by subject pseudonym) and split onto the frame rows; ``from_name``:
    subject -> (palsy type, severity category) read from its participant key (else unknown, null)."""
    frames = frames.copy()
    subj = frames["subject"]
    from_name = from_name or {}
    frames["severity"] = [scores[s].severity.value if s in scores else Severity.UNKNOWN.value for s in subj]
    frames["eface"] = [scores[s].eface if s in scores else None for s in subj]
    frames["house_brackmann"] = [scores[s].house_brackmann if s in scores else None for s in subj]
    frames["sunnybrook"] = [scores[s].sunnybrook if s in scores else None for s in subj]
    frames["palsy_type"] = [from_name.get(s, ("unknown", None))[0] for s in subj]
    frames["category_from_name"] = [from_name.get(s, ("unknown", None))[1] for s in subj]
    frames["split"] = [splits[s] for s in subj]
    return frames


def build_pairs(
    frames: pd.DataFrame, pairs_per_frame: int, seed: int, pairing: Pairing = Pairing.OTHER_FRAME
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training pairs as the paper trains: style = a frame, identity = another image of the subject.

    For every frame, ``pairs_per_frame`` identity frames are drawn without replacement from the
    subject's other frames (all of them when fewer). Returns (pairs, rejects): a subject with a
    single usable image yields no pair and one rejects row. ``Pairing.AUTHORS`` pairs every frame
    of a subject with the subject's first frame (by frame_id), that frame itself included, as the
    authors' dataset does: one pair per frame, none rejected.
    """
    draw = rng(seed, "prepare-pairs")
    pairs, rejects = [], []
    cols = ["frame_id", "path", "subject", "split", "expression", "phase", "severity", "dataset", "clip"]
    for subject, group in frames[cols].sort_values("frame_id").groupby("subject", sort=True):
        ids, paths = group["frame_id"].to_numpy(), group["path"].to_numpy()
        if Pairing(pairing) is Pairing.AUTHORS:
            for style in group.itertuples(index=False):
                pairs.append(
                    {
                        "pair_id": f"{style.frame_id}~0",
                        "subject": subject,
                        "split": style.split,
                        "id_frame": ids[0],
                        "id_path": paths[0],
                        "style_frame": style.frame_id,
                        "style_path": style.path,
                        "expression": style.expression,
                        "phase": style.phase,
                        "severity": style.severity,
                    }
                )
            continue
        if len(group) < 2:
            rejects.append(
                {
                    "input": group["clip"].iloc[0],
                    "dataset": group["dataset"].iloc[0],
                    "subject": subject,
                    "frame_start": None,
                    "frame_end": None,
                    "reason": Reason.NO_PAIR.value,
                    "detail": "the subject has a single usable image; identity and style must differ",
                }
            )
            continue
        k = min(pairs_per_frame, len(group) - 1)
        for i, style in enumerate(group.itertuples(index=False)):
            others = np.delete(np.arange(len(group)), i)
            for j, pick in enumerate(draw.choice(others, size=k, replace=False)):
                pairs.append(
                    {
                        "pair_id": f"{style.frame_id}~{j}",
                        "subject": subject,
                        "split": style.split,
                        "id_frame": ids[pick],
                        "id_path": paths[pick],
                        "style_frame": style.frame_id,
                        "style_path": style.path,
                        "expression": style.expression,
                        "phase": style.phase,
                        "severity": style.severity,
                    }
                )
    return pd.DataFrame(pairs, columns=PAIRS.names), pd.DataFrame(rejects, columns=REJECTS.names)


def sort_frames(frames: pd.DataFrame) -> pd.DataFrame:
    return frames.sort_values(["dataset", "subject", "clip", "frame_index"], kind="stable").reset_index(drop=True)


def sort_rejects(rejects: pd.DataFrame) -> pd.DataFrame:
    key = rejects["frame_start"].fillna(-1) if len(rejects) else rejects["frame_start"]
    return (
        rejects.assign(_k=key)
        .sort_values(["input", "_k", "reason"], kind="stable")
        .drop(columns="_k")
        .reset_index(drop=True)
    )

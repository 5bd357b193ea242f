"""Splits by subject, training pairs, schemas."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fpsynth.data.config import Pairing, SplitConfig
from fpsynth.data.manifests import FRAMES, PAIRS, REJECTS, assign_splits, build_pairs, to_table
from fpsynth.data.reasons import Reason


def _frames(n_subjects: int = 30, per: int = 7) -> pd.DataFrame:
    rows = []
    for s in range(n_subjects):
        for i in range(per if s else 1):  # subject 0 has a single image
            rows.append(
                {
                    "frame_id": f"P{s:04d}-smile-{i:05d}",
                    "path": f"crops/P{s:04d}/x/{i:05d}.png",
                    "subject": f"P{s:04d}",
                    "clip": f"P{s:04d}-smile",
                    "dataset": "meei",
                    "expression": "smile",
                    "phase": "peak",
                    "severity": "mild",
                }
            )
    return pd.DataFrame(rows)


def test_split_is_deterministic_by_subject_and_88_12():
    subjects = [f"P{i:04d}" for i in range(313)]
    a, b = assign_splits(subjects, 0.12, 123), assign_splits(list(reversed(subjects)), 0.12, 123)
    assert a == b
    assert sum(v == "test" for v in a.values()) == 37  # the paper: 37 of 313 subjects
    assert a != assign_splits(subjects, 0.12, 124)


def test_small_sets_still_get_a_test_subject():
    assert sorted(assign_splits(["a", "b", "c"], 0.12, 0).values()) == ["test", "train", "train"]
    assert assign_splits(["a"], 0.12, 0) == {"a": "train"}
    assert set(assign_splits(["a", "b"], 0.0, 0).values()) == {"train"}


def test_pairs_same_subject_different_image_and_deterministic():
    frames = _frames()
    splits = assign_splits(frames["subject"].tolist(), 0.12, 5)
    frames["split"] = frames["subject"].map(splits)
    pairs, rejects = build_pairs(frames, 2, 5)
    again, _ = build_pairs(frames.sample(frac=1, random_state=1), 2, 5)
    pd.testing.assert_frame_equal(pairs, again)
    fid = frames.set_index("frame_id")
    assert (pairs["id_frame"] != pairs["style_frame"]).all()
    assert (fid.loc[pairs["id_frame"], "subject"].to_numpy() == pairs["subject"]).all()
    assert (fid.loc[pairs["style_frame"], "subject"].to_numpy() == pairs["subject"]).all()
    assert (pairs["split"] == pairs["subject"].map(splits)).all()
    assert len(pairs) == 29 * 7 * 2 and pairs["pair_id"].is_unique
    # two identity images per style frame, never the same one twice
    assert not pairs.duplicated(["style_frame", "id_frame"]).any()
    (row,) = rejects.itertuples()
    assert row.reason == Reason.NO_PAIR.value and row.subject == "P0000"


def test_authors_pairing_uses_one_fixed_identity_image_per_subject_itself_included():
    frames = _frames(n_subjects=4, per=5)
    frames["split"] = "train"
    shuffled = frames.sample(frac=1, random_state=3)
    pairs, rejects = build_pairs(shuffled, 3, 5, Pairing.AUTHORS)  # pairs_per_frame has no say here
    assert len(pairs) == len(frames) and rejects.empty  # one pair per image, the single-image subject too
    assert sorted(pairs["style_frame"]) == sorted(frames["frame_id"]) and pairs["pair_id"].is_unique
    first = frames.sort_values("frame_id").groupby("subject")["frame_id"].first()  # P0001-smile-00000 ...
    assert (pairs["id_frame"] == pairs["subject"].map(first)).all()
    assert pairs.groupby("subject")["id_frame"].nunique().max() == 1
    own = pairs[pairs["style_frame"] == pairs["id_frame"]]
    assert sorted(own["subject"]) == sorted(frames["subject"].unique())  # the identity image is paired with itself
    assert (pairs["id_path"] == pairs["id_frame"].map(frames.set_index("frame_id")["path"])).all()
    default, _ = build_pairs(frames, 1, 5)  # the paper's: another frame
    assert (default["id_frame"] != default["style_frame"]).all()
    assert (
        SplitConfig().pairing is Pairing.OTHER_FRAME
        and SplitConfig(pairing=Pairing("authors")).pairing is Pairing.AUTHORS
    )


def test_subjects_never_cross_splits():
    frames = _frames()
    splits = assign_splits(frames["subject"].tolist(), 0.3, 9)
    frames["split"] = frames["subject"].map(splits)
    assert frames.groupby("subject")["split"].nunique().max() == 1
    pairs, _ = build_pairs(frames, 1, 9)
    train, test = (set(pairs.loc[pairs.split == s, "subject"]) for s in ("train", "test"))
    assert train and test and not train & test


def test_to_table_enforces_schema():
    df = pd.DataFrame(
        {
            "frame_id": ["a"],
            "landmarks": [np.arange(136, dtype=np.float64)],
            "bbox": [np.zeros(4)],
            "frame_index": [3],
            "eface": [None],
            "unknown_column": [1],
        }
    )
    t = to_table(df, FRAMES)
    assert t.schema == FRAMES and t.num_rows == 1
    assert t.column("landmarks")[0].as_py()[135] == 135.0 and t.column("eface")[0].as_py() is None
    assert to_table(pd.DataFrame(columns=PAIRS.names), PAIRS).num_rows == 0
    with pytest.raises(pa.ArrowInvalid):
        to_table(pd.DataFrame({"landmarks": [np.zeros(10)]}), FRAMES)  # wrong landmark count
    assert REJECTS.names[:2] == ["input", "dataset"]


# --------------------------------------------------------------------------- documentation and examples

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def _documented(section: str) -> list[str]:
    """Column names of the table under '## <section>' in manifests/README.md, in order."""
    text = (MANIFESTS / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_0-9]+)` \|", body, flags=re.M)


@pytest.mark.parametrize(
    "section, schema", [("frames.parquet", FRAMES), ("pairs.parquet", PAIRS), ("rejects.parquet", REJECTS)]
)
def test_readme_documents_every_column_in_order(section, schema):
    assert _documented(section) == schema.names


def test_readme_documents_the_mapping():
    from fpsynth.data.pseudonyms import MAPPING_COLUMNS

    assert _documented("private/mapping.parquet") == MAPPING_COLUMNS


def test_readme_lists_every_reason_code():
    from fpsynth.data.process import INTERNAL_ERROR

    text = (MANIFESTS / "README.md").read_text()
    for code in [r.value for r in Reason] + [INTERNAL_ERROR]:
        assert f"`{code}`" in text, code


@pytest.mark.parametrize("name, schema", [("frames", FRAMES), ("pairs", PAIRS), ("rejects", REJECTS)])
def test_examples_follow_the_schemas(name, schema):
    import pyarrow.parquet as pq

    path = MANIFESTS / "examples" / f"{name}.parquet"
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == schema and table.num_rows > 0


def test_examples_are_small_and_pseudonymous():
    files = list((MANIFESTS / "examples").glob("*.parquet"))
    assert sum(f.stat().st_size for f in files) < 50_000
    for name in ("frames", "pairs", "rejects"):
        df = pd.read_parquet(MANIFESTS / "examples" / f"{name}.parquet")
        text = " ".join(map(str, df.select_dtypes(exclude="number").to_numpy().ravel().tolist()))
        assert "patient" not in text and "subject_C" not in text

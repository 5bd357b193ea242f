"""The demo dataset writer: AFLFP-style layout, scores, ids, synthetic labels, determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsynth.config import ConfigError, from_dict
from fpsynth.data.config import SourcesConfig
from fpsynth.data.grades import read_scores
from fpsynth.data.provenance import read_demo_manifest
from fpsynth.data.pts import read_pts
from fpsynth.data.sources import Kind, discover_aflfp, discover_images
from fpsynth.demo.dataset import DemoFolderError, subject_plan, write_demo_dataset
from fpsynth.demo.files import png_bytes, png_text
from fpsynth.demo_config import DemoConfig, Movement
from fpsynth.pipeline import load_pipeline

SMALL = DemoConfig(
    subjects=8,
    movements=(Movement.BROW_RAISE, Movement.SMILE_CLOSED, Movement.EYE_CLOSE_GENTLE),
    frames=4,
    image_size=128,
    ids=3,
)
NAME = re.compile(r"^(\d{3})_(neutral|onset|development|peak|dissipation)\.png$")


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "data", SMALL, seed=11, workers=1)


def test_layout_is_aflfp_style_with_a_pts_beside_every_frame(demo):
    root = demo["aflfp"]
    subjects = sorted(p.name for p in root.iterdir())
    assert subjects == [f"synthetic-{k:03d}" for k in range(1, 9)]
    for subject in subjects:
        assert sorted(p.name for p in (root / subject).iterdir()) == sorted(m.value for m in SMALL.movements)
        for clip in (root / subject).iterdir():
            pngs = sorted(clip.glob("*.png"))
            assert [NAME.match(p.name).group(2) for p in pngs] == ["neutral", "development", "peak", "dissipation"]
            assert [int(NAME.match(p.name).group(1)) for p in pngs] == [0, 1, 2, 3]
            assert sorted(clip.iterdir()) == sorted(pngs + [p.with_suffix(".pts") for p in pngs])
    assert demo["images"] == 8 * 3 * 4
    # prepare's own discovery reads it as one annotated sequence per subject and movement
    found = discover_aflfp(root, SourcesConfig())
    assert len(found) == 8 * 3 and all(f.kind is Kind.SEQUENCE and f.reason is None for f in found)
    assert {f.expression for f in found} == {m.value for m in SMALL.movements}
    assert all(f.phases == ("neutral", "development", "peak", "dissipation") for f in found)


def test_every_pts_lies_on_its_image(demo):
    for png in sorted(demo["aflfp"].rglob("*.png"))[::7]:
        img = cv2.imread(str(png), cv2.IMREAD_COLOR)
        assert img.shape == (128, 128, 3)
        pts = read_pts(png.with_suffix(".pts"))  # prepare's reader (1-based iBUG files)
        assert pts.shape == (68, 2) and np.all(pts > 0) and np.all(pts < 128)
        assert pts[36:42, 0].mean() < pts[42:48, 0].mean() and pts[27, 1] < pts[33, 1] < pts[57, 1]


def test_scores_csv_parses_and_covers_the_severity_categories(demo):
    rows = list(csv.DictReader(demo["scores"].open()))
    assert list(rows[0]) == ["subject", "eface", "house_brackmann", "sunnybrook"]
    table = read_scores(demo["scores"])  # prepare's reader
    assert not table.problems
    categories = {table.lookup("aflfp", r["subject"]).severity.value for r in rows}
    assert categories == {"normal", "near-normal", "mild", "moderate", "severe", "complete"}
    assert demo["categories"] == {"normal": 1, "near-normal": 1, "mild": 1, "moderate": 2, "severe": 1, "complete": 2}
    efaces = [int(r["eface"]) for r in rows]
    hbs = [int(r["house_brackmann"]) for r in rows]
    assert all(1 <= h <= 6 for h in hbs)
    order = np.argsort(efaces)
    assert np.all(np.diff(np.array(hbs)[order]) <= 0)  # lower eFACE, worse House-Brackmann


def test_written_landmarks_carry_the_palsy(demo):
    """From the .pts alone (pose-normalised): resting mouth-corner and brow asymmetry track severity."""
    plan = {r["subject"]: r for r in csv.DictReader(demo["subjects_csv"].open())}
    asym, severity = [], []
    for subject, row in plan.items():
        pts = read_pts(demo["aflfp"] / subject / "smile_closed" / "000_neutral.pts").astype(np.float64)
        up = pts[27] - pts[30]  # nose bridge: on the midline, untouched by the palsy
        unit = np.linalg.norm(up)
        rot = np.array([[-up[1], up[0]], [-up[0], -up[1]]]) / unit  # bridge -> pointing up (0, -1)
        p = (pts - pts[30]) @ rot.T / unit
        droop = p[54, 1] - p[48, 1]  # > 0: image-right (subject's left) corner lower
        brow = p[22:27, 1].mean() - p[17:22, 1].mean()
        sign = 1.0 if row["side"] == "left" else -1.0
        asym.append(sign * (droop + brow))
        severity.append(float(row["severity"]))
    assert abs(asym[int(np.argmin(severity))]) < 0.02
    rho = np.corrcoef(np.argsort(np.argsort(asym)), np.argsort(np.argsort(severity)))[0, 1]  # Spearman
    assert rho > 0.95


def test_images_say_they_are_synthetic(demo):
    root = demo["root"]
    for png in list(demo["aflfp"].rglob("*.png"))[:5] + list(demo["ids"].glob("*.png")):
        text = png_text(png.read_bytes())
        assert text["Disclaimer"].startswith("SYNTHETIC")
        assert "fpsynth" in text["Software"]
    readme = (root / "README.md").read_text()
    assert "SYNTHETIC" in readme and "NOT clinical" in readme
    manifest = json.loads((root / "demo.json").read_text())
    assert manifest["synthetic"] is True and manifest["seed"] == 11
    for folder in (root, demo["aflfp"], demo["ids"]):
        assert read_demo_manifest(folder) == manifest
    assert read_demo_manifest(demo["aflfp"] / "synthetic-001") is None
    assert manifest["counts"] == {"subjects": 8, "images": 96, "id_images": 3}
    subjects = list(csv.DictReader(demo["subjects_csv"].open()))
    assert all(r["synthetic"] == "True" and r["subject"].startswith("synthetic-") for r in subjects)
    assert demo["synthetic"] is True


def test_ids_are_extra_neutral_faces_with_pts(demo):
    names = sorted(p.stem for p in demo["ids"].glob("*.png"))
    assert names == ["synthetic-id-001", "synthetic-id-002", "synthetic-id-003"]
    assert all((demo["ids"] / f"{n}.pts").is_file() for n in names)
    found = discover_images(demo["ids"], SourcesConfig())
    assert len(found) == 3 and all(f.kind is Kind.PHOTO for f in found)
    subject_images = {hashlib.sha256(p.read_bytes()).digest() for p in demo["aflfp"].rglob("000_neutral.png")}
    assert not subject_images & {hashlib.sha256(p.read_bytes()).digest() for p in demo["ids"].glob("*.png")}


def test_same_seed_same_bytes_other_seed_other_people(demo, tmp_path):
    again = write_demo_dataset(tmp_path / "again", SMALL, seed=11, workers=2)
    assert _digest(again["root"]) == _digest(demo["root"])
    other = write_demo_dataset(tmp_path / "other", SMALL, seed=12, workers=1)
    a, b = _digest(demo["root"]), _digest(other["root"])
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".png"))
    ids_a = [r["identity"] for r in subject_plan(SMALL, 11)]
    ids_b = [r["identity"] for r in subject_plan(SMALL, 12)]
    assert all(x.face_w != y.face_w and x.skin != y.skin for x, y in zip(ids_a, ids_b))
    # a subject's face does not depend on how many subjects are drawn
    assert subject_plan(DemoConfig(subjects=3), 11)[2]["identity"] == ids_a[2]


def test_rewrite_replaces_a_demo_folder_whole_and_refuses_foreign_folders(tmp_path):
    out = tmp_path / "data"
    cfg = DemoConfig(subjects=3, movements=(Movement.LIP_PUCKER,), frames=2, image_size=96, ids=1)
    write_demo_dataset(out, cfg, seed=1, workers=1)
    write_demo_dataset(
        out,
        DemoConfig(subjects=2, movements=(Movement.NOSE_WRINKLE,), frames=2, image_size=96, ids=0),
        seed=1,
        workers=1,
    )
    assert sorted(p.name for p in (out / "aflfp").iterdir()) == ["synthetic-001", "synthetic-002"]
    assert [p.name for p in (out / "aflfp" / "synthetic-001").iterdir()] == ["nose_wrinkle"]
    assert list((out / "ids").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folders left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(DemoFolderError, match="not an fpsynth demo dataset"):
        write_demo_dataset(foreign, cfg, seed=1, workers=1)
    assert (foreign / "thesis.tex").read_text() == "keep me"
    with pytest.raises(DemoFolderError, match="is a file"):
        write_demo_dataset(foreign / "thesis.tex", cfg, seed=1, workers=1)


def test_png_text_chunks_round_trip_and_stay_readable():
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    data = png_bytes(rgb, {"Disclaimer": "SYNTHETIC test", "Comment": "a=1 b=2"})
    assert png_text(data) == {"Disclaimer": "SYNTHETIC test", "Comment": "a=1 b=2"}
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(back[..., ::-1], rgb)
    broken = bytearray(data)
    broken[40] ^= 0xFF  # inside the first tEXt chunk
    with pytest.raises(ValueError, match="CRC"):
        png_text(bytes(broken))


def test_demo_config_validates_and_the_pipelines_load():
    with pytest.raises(ValueError, match="frames"):
        DemoConfig(frames=1)
    with pytest.raises(ValueError, match="severities"):
        DemoConfig(severities=(0.2, 1.5))
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(DemoConfig, {"movements": ["smile_open", "wink"]})
    tiny = load_pipeline("tiny").demo
    assert tiny.subjects == 8 and len(tiny.movements) == 4 and tiny.frames == 4
    assert load_pipeline("paper").demo == DemoConfig()

"""Damaged outputs are noticed (issue 14 items 6 and 7): generate remakes deleted or truncated
images and a truncated metadata.parquet instead of "nothing changed"; the report reads only
files inside the dataset folder and checks each image's sha256."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.report.dataset import DatasetMismatchError, read_generated
from fpsynth.report.sources import Prepared
from helpers.generate import SMALL, config, copy, image_bytes, make_prepare, save_train_checkpoint

# Every test reads the module's generated run (50.6 s of set-up on 2 shared cores).
pytestmark = pytest.mark.slow


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    make_prepare(ws / "prepare")
    save_train_checkpoint(ws, config())
    ids = copy(["obama.jpg"], ws / "faces")
    out = ws / "dataset"
    args = [
        "generate",
        "--ids",
        str(ids),
        "--count",
        "4",
        "--out",
        str(out),
        "-w",
        str(ws),
        "-c",
        "tiny",
        *[a for o in SMALL for a in ("--set", o)],
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return ws, out, args


def test_generate_remakes_deleted_and_truncated_images(generated):
    _, out, args = generated
    before = image_bytes(out)
    first, second = sorted(before)[:2]
    (out / first).unlink()
    (out / second).write_bytes(before[second][:100])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 image(s) missing or damaged" in _out(result) and "nothing changed" not in _out(result)
    assert image_bytes(out) == before  # the same bytes: the items' seeds made them again
    again = CliRunner().invoke(app, args)
    assert "nothing changed" in _out(again)


def test_generate_rewrites_a_truncated_metadata_file(generated):
    _, out, args = generated
    meta = out / "metadata.parquet"
    expected = pd.read_parquet(meta)
    meta.write_bytes(meta.read_bytes()[:200])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cannot be read" in _out(result)
    pd.testing.assert_frame_equal(pd.read_parquet(meta), expected)


def _copy(out: Path, dest: Path) -> Path:
    shutil.copytree(out, dest)
    return dest


def test_report_refuses_file_names_outside_the_dataset(generated, tmp_path):
    ws, out, _ = generated
    folder = _copy(out, tmp_path / "dataset")
    (tmp_path / "secret.png").write_bytes(b"not for the report")
    meta = pd.read_parquet(folder / "metadata.parquet")
    for bad in ("../secret.png", str(tmp_path / "secret.png")):
        meta.loc[0, "file_name"] = bad
        meta.to_parquet(folder / "metadata.parquet")
        with pytest.raises(DatasetMismatchError, match="outside the dataset folder"):
            read_generated(folder, Prepared.read(ws / "prepare"), 100, 0, tmp_path / "ids")


def test_report_checks_each_images_sha256(generated, tmp_path):
    ws, out, _ = generated
    folder = _copy(out, tmp_path / "dataset")
    name = pd.read_parquet(folder / "metadata.parquet")["file_name"].iloc[1]
    (folder / name).write_bytes((folder / name).read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DatasetMismatchError, match=r"do not match their sha256.*fpsynth generate .*--out"):
        read_generated(folder, Prepared.read(ws / "prepare"), 100, 0, tmp_path / "ids")


def test_report_on_a_truncated_metadata_file_says_what_to_do(generated, tmp_path):
    ws, out, _ = generated
    folder = _copy(out, tmp_path / "dataset")
    meta = folder / "metadata.parquet"
    meta.write_bytes(meta.read_bytes()[:300])
    with pytest.raises(DatasetMismatchError, match="cannot be read.*fpsynth generate"):
        read_generated(folder, Prepared.read(ws / "prepare"), 100, 0, tmp_path / "ids")

"""``fpsynth generate`` through the CLI on real face photos and a real train checkpoint; bad --ids inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.data.sources import SourceError
from fpsynth.generate.identities import IdentityError
from fpsynth.generate.run import run
from fpsynth.stage import MissingInputError
from helpers.fixtures import fixture_path
from helpers.generate import SMALL, config, copy, make_prepare, save_train_checkpoint


def output(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    make_prepare(ws / "prepare")
    save_train_checkpoint(ws, config())
    return ws


@pytest.mark.slow
def test_cli_generates_from_real_photos_and_a_train_checkpoint(workspace, tmp_path):
    ids = tmp_path / "faces"
    shutil.copytree(fixture_path("faces", "people", "John_Simm"), ids / "John_Simm")
    copy(["no_face_grass.jpg", "two_people.jpg"], ids)
    (ids / "notes.jpg").write_text("not an image")
    out = tmp_path / "dataset"
    args = [
        "generate",
        "--ids",
        str(ids),
        "--count",
        "6",
        "--out",
        str(out),
        "-w",
        str(workspace),
        "-c",
        "tiny",
        *[a for o in SMALL for a in ("--set", o)],
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = pd.read_parquet(out / "metadata.parquet")
    assert len(meta) == 6 and set(meta["checkpoint_step"]) == {5}
    assert set(meta["identity_source"]) <= {p.relative_to(ids).as_posix() for p in (ids / "John_Simm").iterdir()}
    rejects = pd.read_parquet(out / "identity_rejects.parquet").set_index("source")["reason"].to_dict()
    assert rejects == {"no_face_grass.jpg": "no_face", "two_people.jpg": "two_faces", "notes.jpg": "not_an_image"}
    identities = pd.read_parquet(out / "identities.parquet")
    assert len(identities) == 11 and identities["png"].map(len).min() > 1000  # real aligned crops
    assert (out / "config.toml").is_file() and "synthetic" in (out / "README.md").read_text()
    again = CliRunner().invoke(app, args)  # nothing changed: the stage says so and skips
    assert again.exit_code == 0 and "nothing changed" in output(again)


def test_folder_without_any_face_is_an_error_naming_each_file(workspace, tmp_path):
    ids = copy(["no_face_grass.jpg", "dogs.jpg"], tmp_path / "nofaces")
    (ids / "empty.png").write_bytes(b"")
    (ids / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(IdentityError) as err:
        run(config(ids=ids), workspace)
    text = str(err.value)
    assert "no usable face in 4 file(s)" in text
    for line in (
        "dogs.jpg: no_face",
        "no_face_grass.jpg: no_face",
        "empty.png: empty_file",
        "broken.jpg: not_an_image",
    ):
        assert line in text


def test_empty_missing_and_absent_ids_folders_are_clear_errors(workspace, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files found"):
        run(config(ids=tmp_path / "empty"), workspace)
    with pytest.raises(SourceError, match="folder does not exist"):
        run(config(ids=tmp_path / "nowhere"), workspace)
    with pytest.raises(IdentityError, match="pass --ids DIR"):
        run(config(), workspace)
    result = CliRunner().invoke(app, ["generate", "--ids", str(tmp_path / "nowhere"), "-w", str(workspace)])
    assert result.exit_code == 2 and "folder does not exist" in output(result)


def test_missing_upstream_artifacts_name_the_command_to_run(workspace, tmp_path):
    ids = copy(["obama.jpg"], tmp_path / "one")
    with pytest.raises(MissingInputError, match="run `fpsynth train` first"):
        run(config(ids=ids), tmp_path / "fresh")
    with pytest.raises(MissingInputError, match="run `fpsynth prepare"):
        run(config(ids=ids, checkpoint=workspace / "train"), tmp_path / "fresh")
    result = CliRunner().invoke(app, ["generate", "--ids", str(ids), "--shard", "3/2", "-w", str(workspace)])
    assert result.exit_code == 2 and "i/n" in output(result)


def test_plan_only_from_real_photos(workspace, tmp_path):
    ids = copy(["obama.jpg", "biden.jpg", "dogs.jpg"], tmp_path / "three")
    result = run(config(ids=ids, plan_only=True, count=7, out=tmp_path / "planned"), workspace)
    assert result["status"] == "planned" and result["items"] == 7
    plan = pd.read_parquet(tmp_path / "planned" / "plan.parquet")
    assert sorted(set(plan["identity_source"])) == ["biden.jpg", "obama.jpg"]
    assert not (tmp_path / "planned" / "shards").exists()

"""Discovering inputs in the three layouts, and pseudonymising them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fpsynth.data.config import PrepareConfig, SourcesConfig
from fpsynth.data.input_sources import INPUT_SOURCES, flags_text, given_roots
from fpsynth.data.meei import discover_meei
from fpsynth.data.pseudonyms import pseudonymise, subject_pseudonyms
from fpsynth.data.reasons import Reason
from fpsynth.data.sources import Kind, SourceError, check_root, discover_aflfp, discover_images


def touch(root, *paths):
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"x")


def test_meei_layout_parsed_by_pattern(tmp_path):
    touch(
        tmp_path,
        "Pat01/Smile_L.mp4",
        "Pat01/eye_closure_right.MOV",
        "Pat01/brow raise.jpg",
        "Pat02/smile.avi",
        "Pat02/notes.txt",
        "Pat02/extra/deep.mp4",
        "loose.mp4",
        ".hidden/x.mp4",
        "Pat02/smile.pts",
    )
    found = {f.files[0].relative_to(tmp_path).as_posix(): f for f in discover_meei(tmp_path, SourcesConfig())}
    assert set(found) == {
        "Pat01/Smile_L.mp4",
        "Pat01/eye_closure_right.MOV",
        "Pat01/brow raise.jpg",
        "Pat02/smile.avi",
        "Pat02/notes.txt",
        "Pat02/extra/deep.mp4",
        "loose.mp4",
    }
    f = found["Pat01/Smile_L.mp4"]
    assert (f.kind, f.subject, f.expression, f.side) == (Kind.VIDEO, "Pat01", "smile", "left")
    f = found["Pat01/eye_closure_right.MOV"]
    assert (f.expression, f.side) == ("eye_closure", "right")
    f = found["Pat01/brow raise.jpg"]
    assert (f.kind, f.expression, f.side) == (Kind.PHOTO, "brow_raise", None)
    assert found["Pat02/notes.txt"].reason is Reason.UNSUPPORTED
    assert found["Pat02/extra/deep.mp4"].reason is Reason.PATH_PATTERN
    assert found["loose.mp4"].reason is Reason.PATH_PATTERN


def test_meei_custom_pattern(tmp_path):
    touch(tmp_path, "Flaccid/Flaccid3/Flaccid3_5.mp4")
    cfg = SourcesConfig(meei_pattern=r"^[^/]+/(?P<subject>[^/]+)/[^_]+_(?P<expression>\d+)$")
    (f,) = discover_meei(tmp_path, cfg)
    assert (f.subject, f.expression, f.side) == ("Flaccid3", "5", None)


def test_aflfp_layout_groups_sequences_in_name_order(tmp_path):
    touch(
        tmp_path,
        "s1/smile/002_development.png",
        "s1/smile/000_neutral.png",
        "s1/smile/001.png",
        "s1/smile/000_neutral.pts",
        "s1/frown/000.jpg",
        "s1/loose.png",
        "s1/smile/readme.md",
    )
    found = discover_aflfp(tmp_path, SourcesConfig())
    seqs = {f.expression: f for f in found if f.kind is Kind.SEQUENCE}
    assert [p.name for p in seqs["smile"].files] == ["000_neutral.png", "001.png", "002_development.png"]
    assert seqs["smile"].phases == ("neutral", None, "development")
    assert {f.reason for f in found if f.kind is None} == {Reason.PATH_PATTERN, Reason.UNSUPPORTED}


def test_plain_images_subject_from_folder_or_name(tmp_path):
    touch(tmp_path, "anna/1.jpg", "anna/2.png", "bob.jpg", "clip.mp4")
    found = discover_images(tmp_path, SourcesConfig())
    subjects = sorted(f.subject for f in found if f.kind is Kind.PHOTO)
    assert subjects == ["anna", "anna", "bob"]
    assert [f.reason for f in found if f.kind is None] == [Reason.UNSUPPORTED]


def test_broken_symlink_is_found_not_dropped(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "smile.mp4").symlink_to(tmp_path / "missing.mp4")
    (f,) = discover_meei(tmp_path, SourcesConfig())
    assert f.kind is Kind.VIDEO


def test_missing_or_non_folder_root(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        check_root(tmp_path / "nope", "--meei")
    touch(tmp_path, "file.txt")
    with pytest.raises(SourceError, match="not a folder"):
        check_root(tmp_path / "file.txt", "--meei")


def test_pseudonyms_are_deterministic_shuffled_and_hide_names(tmp_path):
    touch(tmp_path, *(f"patient_{n:02d}/smile.mp4" for n in range(20)), "patient_00/frown_l.mp4", "x/y/z.mp4")
    found = discover_meei(tmp_path, SourcesConfig())
    a, b, c = pseudonymise(found, 123), pseudonymise(found, 123), pseudonymise(found, 7)
    assert [j.input for j in a.jobs] == [j.input for j in b.jobs]
    assert a.subjects == b.subjects and a.subjects != c.subjects
    ordered = [a.subjects[("meei", f"patient_{n:02d}")] for n in range(20)]
    assert ordered != sorted(ordered)  # numbering does not follow the original order
    for job in a.jobs:
        assert "patient" not in job.input and job.input.startswith(job.subject)
    assert {j.input for j in a.jobs if j.subject == a.subjects[("meei", "patient_00")]} == {
        f"{a.subjects[('meei', 'patient_00')]}-frown-left",
        a.subjects[("meei", "patient_00")] + "-smile",
    }
    ((bad_id, _),) = a.unusable
    assert bad_id == "meei-file-0001"
    m = a.mapping
    assert len(m) == 22 and m["path"].str.contains("patient_").sum() == 21


def test_subject_pseudonym_width_grows():
    names = subject_pseudonyms([("d", str(i)) for i in range(12345)], 0)
    assert len(set(names.values())) == 12345 and all(len(v) == 6 for v in names.values())


def test_colliding_ids_get_suffixes(tmp_path):
    touch(tmp_path, "p1/smile.mp4", "p1/smile.avi", "p1/smile_l.mp4", "p1/smile_left.mov")
    ps = pseudonymise(discover_meei(tmp_path, SourcesConfig()), 1)
    ids = sorted(j.input for j in ps.jobs)
    assert len(set(ids)) == 4 and sum(i.endswith("-2") for i in ids) == 2


def test_every_input_source_has_a_config_root_and_nothing_else_does():
    roots = [f.name for f in dataclasses.fields(PrepareConfig) if f.type == "Path | None" and f.name != "scores"]
    assert roots == [s.name for s in INPUT_SOURCES]
    assert flags_text() == "--meei DIR, --aflfp DIR and/or --images DIR"
    pc = PrepareConfig(images=Path("b"), meei=Path("a"))
    assert given_roots(pc) == {"meei": Path("a"), "images": Path("b")}  # registry order


def test_each_registered_source_discovers_its_layout(tmp_path):
    touch(tmp_path, "meei/Pat01/smile_l.mp4", "aflfp/S1/smile/001_onset.png", "images/S2/a.jpg")
    pc = PrepareConfig()
    for source in INPUT_SOURCES:
        (found,) = source.discover(tmp_path / source.name, pc)
        assert found.dataset == source.name and found.kind is not None

import json
import subprocess
import sys

import pandas as pd
import pytest

from fpsynth.stage import Input, ItemStore, MissingInputError, Stage, atomic_path, atomic_write_text, fingerprint


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_fingerprint_changes_with_config_inputs_and_not_otherwise(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("1")
    a = fingerprint({"x": 1}, {"in": f})
    assert a == fingerprint({"x": 1}, {"in": f})
    assert a != fingerprint({"x": 2}, {"in": f})
    f.write_text("2")
    assert a != fingerprint({"x": 1}, {"in": f})


def test_stage_skips_when_nothing_changed_and_redoes_with_force(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("data")
    ws = tmp_path / "ws"

    def make(force=False, section=None):
        return Stage(
            "demo", ws, section or {"k": 1}, inputs={"src": Input(src, "make src")}, outputs=["out.txt"], force=force
        )

    s = make()
    assert not s.is_up_to_date()
    s.begin({"name": "x"})
    atomic_write_text(s.dir / "out.txt", "result")
    s.finish({"n": 1})
    assert make().is_up_to_date()
    assert not make(force=True).is_up_to_date()
    assert not make(section={"k": 2}).is_up_to_date()
    (s.dir / "out.txt").unlink()
    assert not make().is_up_to_date()
    assert json.loads((s.dir / "stage.json").read_text())["summary"] == {"n": 1}


def test_missing_input_names_the_command(tmp_path):
    s = Stage("train", tmp_path, {}, inputs={"pairs": Input(tmp_path / "nope.parquet", "fpsynth prepare --meei DIR")})
    with pytest.raises(MissingInputError, match="run `fpsynth prepare --meei DIR` first"):
        s.require_inputs()


def test_item_store_resumes_without_duplicates(tmp_path):
    store = ItemStore(tmp_path / "parts")
    store.write("clip/a", pd.DataFrame({"v": [1, 2]}))
    assert store.done("clip/a") and not store.done("clip/b")
    store.write("clip/b", pd.DataFrame({"v": [3]}))
    store.write("clip/a", pd.DataFrame({"v": [1, 2]}))  # redone item replaces, never appends
    assert sorted(store.read_all()["v"]) == [1, 2, 3]


def test_cli_reports_config_errors_without_traceback():
    r = subprocess.run(
        [sys.executable, "-m", "fpsynth.cli", "config", "show", "--set", "seed=abc"], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "seed: expected an integer" in r.stderr and "Traceback" not in r.stderr


def test_a_damaged_resume_part_counts_as_unfinished_and_is_never_read_silently(tmp_path):
    import pandas as pd

    from fpsynth.errors import FpsynthError

    store = ItemStore(tmp_path / "parts")
    store.write("clip-a", pd.DataFrame({"x": [1, 2]}))
    store.write("clip-b", pd.DataFrame({"x": [3]}))
    part = store._path("clip-a")
    part.write_bytes(part.read_bytes()[:20])  # truncated from outside (was a traceback on the redo)
    with pytest.raises(FpsynthError, match="damaged resume part"):
        store.read_all()
    assert not store.done("clip-a") and not part.exists()  # the redo makes it again
    assert store.done("clip-b")
    store.write("clip-a", pd.DataFrame({"x": [1, 2]}))
    assert sorted(store.read_all()["x"]) == [1, 2, 3]


def test_a_change_behind_a_folder_link_changes_the_fingerprint_and_a_loop_ends(tmp_path):
    from fpsynth.stage import hash_paths

    real = tmp_path / "real"
    real.mkdir()
    (real / "a.jpg").write_bytes(b"one")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "subject").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(tree, target_is_directory=True)  # tree/subject/loop -> tree
    before = hash_paths({"images": tree})
    (real / "a.jpg").write_bytes(b"two")  # was unseen: rglob does not follow folder links
    assert hash_paths({"images": tree}) != before

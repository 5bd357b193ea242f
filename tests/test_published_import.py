"""`fpsynth weights import` on files laid out exactly as the published checkpoints.

Each file is a real ``torch.save`` of a Lightning-style dict whose ``state_dict`` has every key and
shape of a ``*.layout.json`` in the reference fixtures; the tensors are zeros expanded to their
shapes (stride 0), so a 400 MB layout costs a few kilobytes until the import writes it. The
hyper-parameters hold the kinds of objects the real files pickle (functools.partial, a config
class) and, in one test, a payload that would run a command if it were unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.published.importer import PublishedImportError, convert, import_published
from fpsynth.reference import fixtures
from helpers.published import write_published

if not fixtures.REFERENCE_DIR.is_dir():
    pytest.skip(f"reference fixtures not found: {fixtures.REFERENCE_DIR}", allow_module_level=True)

LEFT = {
    "CCFExp": {"model.", "recognition_model."},
    "dcface_3x3": {"model.", "recognition_model.center.", "recognition_model_eval."},
    "dcface_5x5": {"model.", "recognition_model.center.", "recognition_model_eval."},
}
KIND = {"CCFExp": "ccfexp", "dcface_3x3": "dcface-3x3", "dcface_5x5": "dcface-5x5"}


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module", params=sorted(LEFT))
def published(request, tmp_path_factory):
    name = request.param
    layout = fixtures.read_layout(name)
    path = write_published(tmp_path_factory.mktemp(name) / f"{name}.ckpt", layout)
    return name, layout, path


def test_every_key_is_mapped_or_deliberately_left(published):
    name, layout, path = published
    source = convert(path).source
    assert source["kind"] == KIND[name]
    assert source["profile"] == ("ccfexp-authors" if name == "CCFExp" else "dcface-authors")
    assert set(source["left"]) == LEFT[name]
    assert source["mapped_keys"] + sum(v["keys"] for v in source["left"].values()) == len(layout)
    assert all(v["reason"] for v in source["left"].values())
    assert source["global_step"] == 12345
    refused = set(source["refused_globals"])
    assert any("functools.partial" in r for r in refused) and any("DictConfigStandIn" in r for r in refused)
    json.dumps(source)  # the record is plain JSON (state.json)


def test_the_command_checks_and_reports(published, tmp_path):
    name, layout, path = published
    result = CliRunner().invoke(app, ["weights", "import", str(path), "--check", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "every key mapped or deliberately left" in result.output
    assert "left" in result.output and "non-EMA" in result.output
    assert not (tmp_path / "published").exists()  # --check writes nothing


@pytest.fixture(scope="module")
def ccfexp_layout():
    return fixtures.read_layout("CCFExp")


@pytest.mark.parametrize(
    "change,named",
    [
        ({"drop": ["condition_adapter.att_id.kv.bias"]}, "fusion.att.id.kv.bias"),
        ({"extra": ["condition_adapter.att_xx.kv.bias2"]}, "condition_adapter.att_xx.kv.bias2"),
        ({"extra": ["stray_module.weight"]}, "stray_module.weight"),
        ({"reshape": {"emotion_adapter.weight": [50, 1, 1]}}, "emotion_adapter.weight"),
        (
            {"reshape": {"ema_model.averaged_model.out.2.weight": [3, 128, 3, 3]}},
            "ema_model.averaged_model.out.2.weight",
        ),
    ],
)
def test_a_missing_unexpected_or_misshaped_key_fails_with_its_name(tmp_path, ccfexp_layout, change, named):
    path = write_published(tmp_path / "CCFExp.ckpt", ccfexp_layout, **change)
    with pytest.raises(PublishedImportError, match=named.replace(".", r"\.")):
        convert(path)
    result = CliRunner().invoke(app, ["weights", "import", str(path), "-w", str(tmp_path)])
    assert result.exit_code == 2 and named in result.output
    assert not any((tmp_path / "published").glob("*")) if (tmp_path / "published").exists() else True


def test_a_kind_that_contradicts_the_keys_fails(tmp_path, ccfexp_layout):
    path = write_published(tmp_path / "CCFExp.ckpt", ccfexp_layout)
    with pytest.raises(PublishedImportError, match="dcface-3x3"):
        convert(path, kind="dcface-3x3")


def test_a_payload_in_the_hyper_parameters_never_runs(tmp_path, ccfexp_layout):
    marker = tmp_path / "PWNED"
    path = write_published(tmp_path / "CCFExp.ckpt", ccfexp_layout, hyper={"evil": Payload(marker)})
    result = CliRunner().invoke(app, ["weights", "import", str(path), "--check", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert "system" in result.output  # the refused global is named (os.system / posix.system)


def test_import_writes_a_checkpoint_once_and_it_loads(tmp_path):
    """The real write, for the smallest layout (DCFace 3x3: ~180M values once materialised)."""
    from fpsynth.train.checkpoint import load_checkpoint, read_state

    path = write_published(tmp_path / "dcface_3x3.ckpt", fixtures.read_layout("dcface_3x3"))
    root = tmp_path / "ws" / "published"
    folder, source, reused = import_published(path, root)
    assert not reused and folder.parent == root and (folder / "model.safetensors").is_file()
    state = read_state(folder)
    assert state["published"]["sha256"] == source["sha256"] and state["model_config"]["profile"] == "dcface-authors"
    again, _, reused = import_published(path, root)
    assert reused and again == folder
    loaded = load_checkpoint(folder)
    assert loaded.model.cfg.profile == "dcface-authors" and loaded.model.cfg.dcface_grid == 3
    assert float(loaded.model.unet.out[2].weight.detach().abs().sum()) == 0.0  # the file's zeros, not a random init

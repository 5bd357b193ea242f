"""Tracebacks become one-line errors that say what to do (issue 14 item 11, the cases outside prepare)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.train.checkpoint import CheckpointError, read_state


def _out(result) -> str:
    return " ".join(result.output.split())


def test_a_binary_config_file(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(app, ["config", "show", "-c", str(path)])
    assert result.exit_code == 2 and "not a text file" in _out(result)


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_generate_out_that_is_a_file(tmp_path, out):
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(app, ["generate", "--ids", str(tmp_path), "--out", str(tmp_path / out), "-c", "tiny",
                                      "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in _out(result) or "cannot create the output folder" in _out(result)


def test_a_state_json_without_its_model_config(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"format": 1, "step": 3, "files": {}}))
    with pytest.raises(CheckpointError, match="lacks model_config, diffusion_config, load_records"):
        read_state(tmp_path)

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
    result = CliRunner().invoke(
        app,
        ["generate", "--ids", str(tmp_path), "--out", str(tmp_path / out), "-c", "tiny", "-w", str(tmp_path / "ws")],
    )
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in _out(result) or "cannot create the output folder" in _out(result)


def test_a_state_json_without_its_model_config(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"format": 1, "step": 3, "files": {}}))
    with pytest.raises(CheckpointError, match="lacks model_config, diffusion_config, load_records"):
        read_state(tmp_path)


def test_nan_weights_are_named_not_blamed_on_the_learning_rate(tmp_path):
    import torch

    from fpsynth.models.ccfexp import CCFExp
    from fpsynth.models.config import tiny_model_config
    from fpsynth.pipeline import load_pipeline
    from fpsynth.train.checkpoint import CHECKPOINTS, CheckpointPayload, describe_run, save_checkpoint
    from fpsynth.train.distributed import DistContext
    from fpsynth.train.loop import TrainingDiverged, build_trainer

    torch.manual_seed(0)
    model = CCFExp(tiny_model_config())
    with torch.no_grad():
        model.unet.out[2].weight[0, 0, 0, 0] = float("nan")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    cfg = load_pipeline("tiny")
    folder = save_checkpoint(
        tmp_path / CHECKPOINTS,
        1,
        CheckpointPayload(
            model.state_dict(),
            dict(model.unet.state_dict()),
            torch.optim.AdamW(model.trainable_parameters()).state_dict(),
            names,
            describe_run(cfg, []),
        ),
        keep_last=1,
    )
    cfg = load_pipeline("tiny", [f"train.init_from={folder}"])
    with pytest.raises(TrainingDiverged, match=r"unet\.out\.2\.weight.*init_from-fpsynth"):
        build_trainer(cfg.train, cfg.weights, cfg.seed, DistContext(), resume=None)

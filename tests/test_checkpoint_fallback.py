"""A damaged newest checkpoint is skipped with a warning naming it; the newest good one is used
(train resume, generate and report all find checkpoints through ``latest_checkpoint`` /
``resolve_checkpoint``)."""

from __future__ import annotations

import pytest
import torch

from fpsynth.models.ccfexp import build_model
from fpsynth.pipeline import load_pipeline
from fpsynth.train.checkpoint import (
    CHECKPOINTS,
    CheckpointError,
    CheckpointPayload,
    describe_run,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

pytestmark = pytest.mark.slow


@pytest.fixture()
def workspace(tmp_path):
    cfg = load_pipeline("tiny")
    torch.manual_seed(0)
    model, records = build_model(cfg.train.model, cfg.weights)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    payload = CheckpointPayload(
        model.state_dict(),
        dict(model.unet.state_dict()),
        torch.optim.AdamW(model.trainable_parameters()).state_dict(),
        names,
        describe_run(cfg, records),
    )
    for step in (5, 9):
        save_checkpoint(tmp_path / "train" / CHECKPOINTS, step, payload, keep_last=3)
    return tmp_path


def _damage(path, how):
    if how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "delete":
        path.unlink()
    else:
        path.write_text("{ not json")


@pytest.mark.parametrize(
    "how,file", [("truncate", "model.safetensors"), ("delete", "ema.safetensors"), ("garble", "state.json")]
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_good_one(workspace, how, file):
    newest = workspace / "train" / CHECKPOINTS / "step-00000009"
    assert latest_checkpoint(workspace) == newest
    _damage(newest / file, how)
    with pytest.warns(UserWarning, match="step-00000009 skipped"):
        assert latest_checkpoint(workspace).name == "step-00000005"
    with pytest.warns(UserWarning, match="step-00000009 skipped"):
        assert load_checkpoint(workspace).state["step"] == 5


def test_every_checkpoint_damaged_is_a_clear_error(workspace):
    for step in (5, 9):
        _damage(workspace / "train" / CHECKPOINTS / f"step-0000000{step}" / "model.safetensors", "truncate")
    with pytest.warns(UserWarning):
        assert latest_checkpoint(workspace) is None
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="every checkpoint"):
        load_checkpoint(workspace)

"""Checkpoint files: round trip, EMA vs raw weights, atomicity, pruning, corruption, the loading contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fpsynth.models.ccfexp import build_model
from fpsynth.pipeline import load_pipeline
from fpsynth.train.checkpoint import (
    EMA_FILE,
    LATEST,
    MODEL_FILE,
    CheckpointError,
    CheckpointPayload,
    checkpoints_dir,
    complete_checkpoints,
    describe_run,
    latest_checkpoint,
    load_checkpoint,
    read_optimizer,
    read_state,
    save_checkpoint,
)
from fpsynth.train.config import EMAConfig, EMATiming
from fpsynth.train.ema import EMA, ema_decay


@pytest.fixture(scope="module")
def trained():
    """A tiny model after one AdamW step and one EMA update (so EMA != raw weights)."""
    cfg = load_pipeline("tiny")
    torch.manual_seed(0)
    model, records = build_model(cfg.train.model, cfg.weights)
    ema = EMA(model.unet, EMAConfig(timing=EMATiming.AFTER_STEP))
    ema.update(model.unet)  # k = 0: copy
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    for p in model.trainable_parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    ema.update(model.unet)  # k = 1: decay 1 - 2^-0.75
    names = {id(p): n for n, p in model.named_parameters()}
    param_names = [names[id(p)] for p in model.trainable_parameters()]
    return cfg, model, records, ema, optimizer, param_names


def _save(folder: Path, step: int, trained, keep_last: int = 3) -> Path:
    cfg, model, records, ema, optimizer, names = trained
    payload = CheckpointPayload(
        model.state_dict(), ema.state_dict(), optimizer.state_dict(), names, {**describe_run(cfg, records), "epoch": 0}
    )
    return save_checkpoint(folder, step, payload, keep_last)


def test_ema_decay_schedule():
    cfg = EMAConfig(timing=EMATiming.AFTER_STEP)
    assert ema_decay(0, cfg) == 0.0
    assert ema_decay(1, cfg) == pytest.approx(1 - 2**-0.75)
    assert ema_decay(10**9, cfg) == 0.9999
    # The authors' timing (the default since issue 13): update n uses the decay of n - 1, 0 for n <= 1
    # (diffusers' EMAModel.get_decay: step = max(0, n - 1), 0 when step <= 0).
    authors = EMAConfig()
    assert authors.timing is EMATiming.BEFORE_STEP
    assert [ema_decay(n, authors) for n in range(4)] == pytest.approx([0.0, 0.0, 1 - 2**-0.75, 1 - 3**-0.75])
    assert ema_decay(10**9, authors) == 0.9999


@pytest.mark.slow
def test_round_trip_ema_and_raw(tmp_path, trained):
    cfg, model, records, ema, optimizer, names = trained
    path = _save(checkpoints_dir(tmp_path), 7, trained)
    assert latest_checkpoint(tmp_path) == path
    assert (path.parent / LATEST).read_text().strip() == path.name

    loaded = load_checkpoint(tmp_path)  # a workspace resolves to its latest checkpoint
    assert loaded.path == path and loaded.state["step"] == 7 and not loaded.model.training
    assert loaded.state["load_records"][0]["random_init"] is True
    assert loaded.schedule.num_timesteps == cfg.train.diffusion.num_timesteps
    raw = load_checkpoint(path, ema=False)
    assert loaded.sha256 != raw.sha256
    ema_sd, raw_sd, ref = loaded.model.state_dict(), raw.model.state_dict(), model.state_dict()
    for key, value in ref.items():
        assert torch.equal(raw_sd[key], value), key
        expected = ema.shadow[key[len("unet.") :]] if key.startswith("unet.") else value
        assert torch.equal(ema_sd[key], expected), key
    assert not torch.equal(ema_sd["unet.out.2.weight"], ref["unet.out.2.weight"])
    # frozen networks come from the checkpoint alone: no weight files, no random init at load
    assert torch.equal(ema_sd["id_net.input_layer.0.weight"], ref["id_net.input_layer.0.weight"])
    assert all(not p.requires_grad for p in loaded.model.id_net.parameters())

    state, param_names = read_optimizer(path, read_state(path))
    assert param_names == names
    fresh = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    fresh.load_state_dict(state)
    a, b = optimizer.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, per_param in a["state"].items():
        for k, v in per_param.items():
            assert torch.equal(v, b["state"][i][k])


@pytest.mark.slow
def test_incomplete_and_hidden_folders_are_ignored(tmp_path, trained):
    folder = checkpoints_dir(tmp_path)
    good = _save(folder, 10, trained)
    (folder / "step-00000020").mkdir()  # no state.json: a half-copied folder
    shutil.copytree(good, folder / ".tmp-step-00000030-1")  # a killed save
    assert latest_checkpoint(tmp_path) == good
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(folder / "step-00000020")
    _save(folder, 40, trained)
    assert not (folder / ".tmp-step-00000030-1").exists()  # the next save clears leftovers


@pytest.mark.slow
def test_keep_last_prunes_oldest(tmp_path, trained):
    folder = checkpoints_dir(tmp_path)
    for step in (1, 2, 3, 4):
        _save(folder, step, trained, keep_last=2)
    assert [s for s, _ in complete_checkpoints(folder)] == [3, 4]
    assert sorted(p.name for p in folder.iterdir()) == [LATEST, "step-00000003", "step-00000004"]


@pytest.mark.slow
def test_corruption_and_missing_are_clear_errors(tmp_path, trained):
    path = _save(checkpoints_dir(tmp_path), 5, trained)
    data = bytearray((path / EMA_FILE).read_bytes())
    data[-1] ^= 0xFF
    (path / EMA_FILE).write_bytes(bytes(data))
    load_checkpoint(path, ema=False)  # the raw weights are intact
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="fpsynth train"):
        load_checkpoint(tmp_path / "nowhere")
    state = json.loads((path / "state.json").read_text())
    assert set(state["files"]) >= {MODEL_FILE, EMA_FILE} and state["fpsynth_version"]

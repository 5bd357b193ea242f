"""Using published and earlier weights: the Python API, train.init_from, and train's fingerprint."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import fpsynth
from fpsynth.models.ccfexp import CCFExp
from fpsynth.models.config import tiny_model_config
from fpsynth.pipeline import load_pipeline
from fpsynth.train.init import init_model_from, resolve_init_from
from fpsynth.train.run import train_stage
from fpsynth.weights import WeightsError
from helpers.generate import save_train_checkpoint


def _crops(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    return save_train_checkpoint(ws, load_pipeline("tiny"), step=7)


# ----------------------------------------------------------------------------- the Python API


@pytest.mark.slow
def test_load_model_conditions_eps_and_sample(tiny_checkpoint, one_thread):
    model = fpsynth.load_model(tiny_checkpoint)
    assert model.profile == "fpsynth" and model.sampler == load_pipeline("tiny").train.sampler  # its run's sampler
    ids, styles = _crops(2, 0), _crops(2, 1)
    cond = model.conditions(ids, styles)
    assert cond.context.shape == (2, 2 * model.net.cfg.unet.attention_width, 147)
    x_t = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    eps = model.eps(x_t, [10, 900], cond)
    assert eps.shape == (2, 3, 112, 112) and eps.dtype == torch.float32
    torch.testing.assert_close(model.eps(x_t, 10, cond)[0], eps[0])  # one int: every item at that step
    images = model.sample(ids, styles, seed=3, steps=2)
    assert images.shape == (2, 112, 112, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(model.sample(ids, styles, seed=3, steps=2), images)  # deterministic
    # item i depends on seed + i only, not on its batch
    np.testing.assert_array_equal(model.sample(ids[1:], styles[1:], seed=4, steps=2)[0], images[1])
    assert not np.array_equal(model.sample(ids, styles, seed=5, steps=2), images)


def test_load_model_rejects_bad_images(tiny_checkpoint):
    model = fpsynth.load_model(tiny_checkpoint)
    with pytest.raises(ValueError, match="112, 112, 3"):
        model.conditions(_crops(1, 0)[:, :100], _crops(1, 1))
    with pytest.raises(ValueError, match="uint8"):
        model.conditions(_crops(1, 0).astype(np.float32), _crops(1, 1))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_load_model_on_a_hostile_file_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    plain = tmp_path / "evil.ckpt"
    plain.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    zipped = tmp_path / "evil_zip.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(2)}, "hyper_parameters": _Payload(marker)}, zipped)
    for path in (plain, zipped):
        with pytest.raises(fpsynth.errors.FpsynthError):
            fpsynth.load_model(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- train.init_from


@pytest.mark.slow
def test_init_from_a_checkpoint_folder_copies_every_tensor(tiny_checkpoint):
    torch.manual_seed(1)
    model = CCFExp(tiny_model_config())
    record = init_model_from(model, tiny_checkpoint)
    source = fpsynth.load_model(tiny_checkpoint).net  # EMA = model weights in this untrained checkpoint
    for k, v in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    assert record.kind == "fpsynth" and not record.kept and not record.unused
    assert record.loaded["unet"] == len(model.unet.state_dict())


def test_init_from_a_published_dcface_file_keeps_what_it_lacks(tmp_path):
    """The paper's protocol: a CCFExp (fpsynth profile) started from DCFace's U-Net and E_ID."""
    from fpsynth.reference import fixtures
    from helpers.published import write_published

    if not fixtures.REFERENCE_DIR.is_dir():
        pytest.skip(f"reference fixtures not found: {fixtures.REFERENCE_DIR}")
    path = write_published(tmp_path / "dcface_5x5.ckpt", fixtures.read_layout("dcface_5x5"))
    torch.manual_seed(0)
    model = CCFExp(dataclasses.replace(load_pipeline("paper").train.model))
    before = {k: v.clone() for k, v in model.fusion.state_dict().items()}
    record = init_model_from(model, resolve_init_from(str(path)))
    assert record.kind == "dcface-5x5"
    assert float(model.unet.out[2].weight.detach().abs().sum()) == 0  # the file's (zero) values
    assert float(model.context_proj.weight.detach().abs().sum()) == 0  # DCFace's cross_attn_adapter
    assert set(record.loaded) == {"unet", "id_encoder", "id_net", "context_proj"}
    assert {"exp_adapter", "face_net", "fusion", "landmark_net"} <= set(record.kept)
    assert set(record.unused) == {"style_encoder"}
    for k, v in model.fusion.state_dict().items():  # the fusion the authors never trained keeps its init
        torch.testing.assert_close(v, before[k])


def test_init_from_missing_names_the_file_the_key_and_the_source():
    with pytest.raises(WeightsError) as err:
        resolve_init_from("weights/dcface_5x5.ckpt")
    text = str(err.value)
    assert "train.init_from" in text and "dcface_5x5.ckpt" in text and "DCFace README" in text and "=none" in text
    assert resolve_init_from("none") is None and resolve_init_from(None) is None


# ----------------------------------------------------------------------------- fingerprints


def test_weight_files_and_init_from_count_by_content(tmp_path):
    weights = tmp_path / "ir50.ckpt"
    weights.write_bytes(b"first")
    init = tmp_path / "init.ckpt"
    init.write_bytes(b"one")
    cfg = load_pipeline("tiny", [f"weights.ir50_id={weights}", f"train.init_from={init}"])

    def fingerprint() -> str:
        return train_stage(cfg, tmp_path / "ws")[0].fingerprint

    first = fingerprint()
    assert first == fingerprint()
    weights.write_bytes(b"second")  # same path, other content
    second = fingerprint()
    assert second != first
    init.write_bytes(b"two")
    assert fingerprint() != second
    stage, inputs = train_stage(cfg, tmp_path / "ws")
    assert {"weights.ir50_id", "train.init_from"} <= set(stage.inputs)
    assert {"weights.ir50_id.sha256", "train.init_from.sha256"} <= set(inputs)
    scratch = load_pipeline("tiny", [f"weights.ir50_id={weights}", "train.init_from=none"])
    assert "train.init_from" not in train_stage(scratch, tmp_path / "ws")[0].inputs


def test_a_replaced_weights_file_of_the_same_size_and_times_still_counts(tmp_path, monkeypatch):
    """Big inputs are fingerprinted by size and mtime elsewhere; weights files always by content."""
    import fpsynth.stage

    monkeypatch.setattr(fpsynth.stage, "_HASH_CONTENT_BELOW", 1)  # every file counts as "big" here
    weights = tmp_path / "ir50.ckpt"
    weights.write_bytes(b"AAAA")
    cfg = load_pipeline("tiny", [f"weights.ir50_id={weights}"])
    first = train_stage(cfg, tmp_path / "ws")[0].fingerprint
    stat = weights.stat()
    weights.write_bytes(b"BBBB")  # same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # times kept, as `cp -p` would
    assert train_stage(cfg, tmp_path / "ws")[0].fingerprint != first


# ----------------------------------------------------------------------------- generate --checkpoint FILE


@pytest.mark.slow
def test_generate_with_a_published_file_imports_it_once_and_records_the_profile(tmp_path):
    """The whole path a user takes with a downloaded file (a DCFace-3x3 layout of zeros: fast to write)."""
    import pandas as pd
    from typer.testing import CliRunner

    from fpsynth.cli import app
    from fpsynth.reference import fixtures
    from helpers.generate import SMALL, copy, make_prepare
    from helpers.published import write_published

    if not fixtures.REFERENCE_DIR.is_dir():
        pytest.skip(f"reference fixtures not found: {fixtures.REFERENCE_DIR}")
    ws = tmp_path / "ws"
    make_prepare(ws / "prepare")
    published = write_published(tmp_path / "dcface_3x3.ckpt", fixtures.read_layout("dcface_3x3"))
    ids = copy(["obama.jpg"], tmp_path / "faces")
    out = tmp_path / "dataset"
    small = [*SMALL, "generate.runtime.cpu_batch_size=2"]
    args = [
        "generate",
        "--ids",
        str(ids),
        "--count",
        "2",
        "--out",
        str(out),
        "-w",
        str(ws),
        "-c",
        "tiny",
        "--checkpoint",
        str(published),
        *[a for o in small for a in ("--set", o)],
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = pd.read_parquet(out / "metadata.parquet")
    assert len(meta) == 2 and set(meta["profile"]) == {"dcface-authors"}
    assert "profile `dcface-authors`" in (out / "README.md").read_text()
    imported = list((ws / "published").iterdir())
    assert len(imported) == 1 and imported[0].name.startswith("dcface_3x3-")


# ----------------------------------------------------------------------------- profiles


def test_a_profile_name_always_says_what_the_switches_do():
    from fpsynth.config import ConfigError
    from fpsynth.models.config import FusionQuery, ModelConfig, TokenLayout
    from fpsynth.models.profiles import CCFEXP_AUTHORS, apply_profile
    from fpsynth.nets.config import LandmarkInput

    authors = apply_profile(ModelConfig(), CCFEXP_AUTHORS)
    assert (authors.fusion.query, authors.landmark_input, authors.landmark_tokens) == (
        FusionQuery.RAW,
        LandmarkInput.RGB_PM1,
        TokenLayout.VIEW,
    )
    assert apply_profile(authors, "fpsynth") == ModelConfig()  # a profile resets what it does not name
    with pytest.raises(ValueError, match="landmark_input: has rgb_pm1, profile 'fpsynth' sets bgr_01"):
        dataclasses.replace(ModelConfig(), landmark_input=LandmarkInput.RGB_PM1)
    custom = dataclasses.replace(ModelConfig(), landmark_input=LandmarkInput.RGB_PM1, profile="custom")
    assert custom.landmark_input is LandmarkInput.RGB_PM1
    with pytest.raises(ConfigError, match="profile 'ccfexp-authors' sets"):  # a name alone changes nothing silently
        load_pipeline("paper", ["train.model.profile=ccfexp-authors"])
    cfg = load_pipeline(
        "paper",
        [
            "train.model.profile=ccfexp-authors",
            "train.model.fusion.query=raw",
            "train.model.landmark_input=rgb_pm1",
            "train.model.landmark_tokens=view",
        ],
    )
    assert cfg.train.model == authors

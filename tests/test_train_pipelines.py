"""Every named pipeline loads, states exactly the paper's training or one documented change of it,
and builds its model (on the meta device: no weights, no compute)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fpsynth.config import to_dict
from fpsynth.diffusion.config import LossConfig, SamplerConfig, SecondPassConditions
from fpsynth.models.ccfexp import CCFExp
from fpsynth.models.config import ModelConfig, Variant, tiny_model_config
from fpsynth.pipeline import load_pipeline
from fpsynth.train.config import DataConfig, EMATiming, OptimConfig, Precision, TrainConfig

# file -> the [train] fields it changes relative to paper.toml
CHANGES = {
    "ablation-no-landmarks": {"model.use_landmarks": False},
    "ablation-no-cross-fusion": {"model.cross_fusion": False},
    "ablation-no-cycle": {"loss.cycle": False},
    "dcface-3x3": {
        "model.variant": "dcface",
        "model.dcface_grid": 3,
        "loss.cycle": False,
        "init_from": "weights/dcface_3x3.ckpt",
    },
    "dcface-5x5": {"model.variant": "dcface", "model.dcface_grid": 5, "loss.cycle": False},
}


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def test_paper_train_is_the_papers_setting():
    t = load_pipeline("paper").train
    assert t.model == ModelConfig() and t.model.variant is Variant.CCFEXP
    assert t.loss == LossConfig(
        lambda_id=0.05,
        gamma_lm=1.0,
        landmark_scale=10.0,
        sigma=0.3,
        cycle=True,
        second_pass_conditions=SecondPassConditions.FIRST_PASS,
    )
    assert t.optim == OptimConfig(lr=1e-4) and t.data == DataConfig(batch_size=32)
    assert (t.epochs, t.max_steps, t.precision) == (10, None, Precision.AUTO)
    assert (t.ema.power, t.ema.max_decay, t.ema.timing) == (0.75, 0.9999, EMATiming.BEFORE_STEP)  # the authors' EMA
    assert t.optim.grad_clip == 0.0  # the authors do not clip
    assert t.sampler == SamplerConfig(steps=50, eta=1.0)
    assert load_pipeline("paper").seed == 123
    assert t.init_from == "weights/dcface_5x5.ckpt"  # "after initialization from DCFace" (4.1)
    assert t == dataclasses.replace(TrainConfig(), init_from=t.init_from)  # the file spells out the defaults


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_ablations_and_baselines_change_only_what_they_say(name):
    paper, cfg = load_pipeline("paper"), load_pipeline(name)
    assert cfg.name == name
    for section in ("weights", "prepare", "generate", "report", "demo"):
        assert getattr(cfg, section) == getattr(paper, section), section
    a, b = _flat(to_dict(paper.train)), _flat(to_dict(cfg.train))
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed <= set(CHANGES[name])  # (dcface_grid = 3 is also the default)
    assert {k: b[k] for k in CHANGES[name]} == CHANGES[name]


def test_tiny_is_the_tiny_model_on_random_weights_for_a_short_run():
    cfg = load_pipeline("tiny")
    assert cfg.train.model == tiny_model_config()
    assert set(cfg.weights.random_init) == {"ir50-id", "ir50-expression", "mobilefacenet-68"}
    assert cfg.train.max_steps is not None and cfg.train.max_steps <= 100
    assert cfg.train.data.batch_size <= 8


@pytest.mark.parametrize("name", ["paper", "tiny", *sorted(CHANGES)])
def test_every_pipeline_builds_its_model(name):
    cfg = load_pipeline(name).train.model
    with torch.device("meta"):
        model = CCFExp(cfg)
    unet = sum(p.numel() for p in model.unet.parameters())
    if name != "tiny":
        assert 90e6 < unet < 100e6  # the paper's U-Net (about 94M) in every paper-size variant
    assert model.has_landmarks == (cfg.variant is Variant.CCFEXP and cfg.use_landmarks)
    assert hasattr(model, "style_encoder") == (cfg.variant is Variant.DCFACE)
    if cfg.variant is Variant.DCFACE:
        assert model.style_encoder is not None and cfg.dcface_grid in (3, 5)
    assert dataclasses.is_dataclass(cfg)

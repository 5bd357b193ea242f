"""The composed CCFExp model: configs, weight loading, ablation switches, trainability, gradients."""

import dataclasses
from pathlib import Path

import pytest
import torch

from fpsynth.config import ConfigError, from_dict, to_dict
from fpsynth.diffusion.config import LossConfig, SamplerConfig
from fpsynth.diffusion.objective import CycleObjective
from fpsynth.diffusion.samplers import item_generators, sample
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import CCFExp, build_model
from fpsynth.models.config import ModelConfig, Variant, tiny_model_config
from fpsynth.nets.config import IRLayout
from fpsynth.pipeline import load_pipeline
from fpsynth.train.config import TrainConfig
from fpsynth.weights import WeightsConfig, WeightsError

ALL_RANDOM = WeightsConfig(random_init=("ir50-id", "ir50-expression", "mobilefacenet-68"))


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _wake_zero_layers(model: CCFExp) -> None:
    """Give the zero-initialised output layers small values so every path carries gradient."""
    g = torch.Generator().manual_seed(123)
    for p in model.trainable_parameters():
        if torch.count_nonzero(p) == 0:
            p.data = torch.randn(p.shape, generator=g) * 0.02


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(),
        tiny_model_config(),
        tiny_model_config(variant=Variant.DCFACE, dcface_grid=5),
        ModelConfig(identity_ir=dataclasses.replace(ModelConfig().identity_ir, layout=IRLayout.INSIGHTFACE)),
    ],
)
def test_model_config_round_trips_through_a_checkpoint_dict(cfg):
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    assert from_dict(TrainConfig, {"model": to_dict(cfg)}).model == cfg


def test_pipeline_overrides_reach_the_model_config():
    cfg = load_pipeline(
        "paper", ["train.model.use_landmarks=false", "train.model.variant=dcface", "train.model.dcface_grid=5"]
    )
    assert cfg.train.model.variant is Variant.DCFACE and cfg.train.model.dcface_grid == 5
    assert not cfg.train.model.use_landmarks
    with pytest.raises(ConfigError, match="dcface_grid"):
        load_pipeline("paper", ["train.model.dcface_grid=4"])
    with pytest.raises(ConfigError, match="variant"):
        load_pipeline("paper", ["train.model.variant=stylegan"])


def test_model_config_rejects_inconsistent_widths():
    with pytest.raises(ValueError, match="time-embedding"):
        dataclasses.replace(tiny_model_config(), unet=ModelConfig().unet)


def test_paper_configuration_sizes():
    with torch.device("meta"):
        model = CCFExp(ModelConfig())
    counts = {
        name: sum(p.numel() for p in m.parameters())
        for name, m in {**model.trainable_modules(), **model.frozen_modules()}.items()
    }
    assert counts["unet"] == 93_563_910  # the authors' UNetModel (CCFExp.layout.json "modules")
    assert counts["context_proj"] == 512 * 1024 + 1024  # their cross_attn_adapter: one Conv1d 512 -> 2 x 512
    assert counts["id_encoder"] == counts["id_net"] + 50 * 512 + 1  # E_ID = IR-50 + positions + scale
    assert 43e6 < counts["id_net"] == counts["face_net"] < 44e6
    assert counts["exp_adapter"] == 49 + 49  # 1x1 Conv1d, 1 -> 49
    assert 0.9e6 < counts["landmark_net"] < 1.1e6
    assert set(model.trainable_modules()) == {"unet", "id_encoder", "exp_adapter", "fusion", "context_proj"}


def test_tiny_configuration_size():
    model = CCFExp(tiny_model_config())
    total = sum(p.numel() for p in model.parameters())
    assert 1e6 < total < 17e6


# ----------------------------------------------------------------------------- weights


def test_missing_weights_name_the_config_key_and_file(tmp_path: Path):
    with pytest.raises(WeightsError, match=r"weights\.ir50_id.*adaface_ir50"):
        build_model(tiny_model_config(), WeightsConfig())
    absent = tmp_path / "nowhere.ckpt"
    with pytest.raises(WeightsError, match=rf"not found: {absent}.*weights\.ir50_id"):
        build_model(tiny_model_config(), WeightsConfig(ir50_id=absent))
    with pytest.raises(WeightsError, match=r"weights\.mobilefacenet"):
        build_model(tiny_model_config(), WeightsConfig(random_init=("ir50-id", "ir50-expression")))


def test_random_initialisation_only_when_listed_and_recorded():
    _, records = build_model(tiny_model_config(), ALL_RANDOM)
    assert [(r.name, r.path, r.random_init) for r in records] == [
        ("ir50-id", None, True),
        ("ir50-expression", None, True),
        ("mobilefacenet-68", None, True),
    ]
    _, records = build_model(tiny_model_config(variant=Variant.DCFACE), ALL_RANDOM)
    assert [r.name for r in records] == ["ir50-id"]  # DCFace needs no expression or landmark network


def test_build_loads_files_and_starts_e_id_from_the_identity_weights(tmp_path: Path):
    cfg = tiny_model_config()
    donor = CCFExp(cfg)  # random tensors with exactly the published key names and the tiny shapes
    for net in (donor.id_net, donor.face_net, donor.landmark_net):
        for p in net.parameters():
            p.data.normal_(0, 0.1)
    paths = {}
    for name, net in [("id", donor.id_net), ("exp", donor.face_net), ("lm", donor.landmark_net)]:
        paths[name] = tmp_path / f"{name}.pth"
        torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, paths[name])
    model, records = build_model(
        cfg, WeightsConfig(ir50_id=paths["id"], ir50_expression=paths["exp"], mobilefacenet=paths["lm"])
    )
    assert [r.path for r in records] == [str(paths["id"]), str(paths["exp"]), str(paths["lm"])]
    assert not any(r.random_init for r in records)
    for k, v in donor.id_net.state_dict().items():
        torch.testing.assert_close(model.id_net.state_dict()[k], v)
        torch.testing.assert_close(model.id_encoder.backbone.state_dict()[k], v)  # trainable E_ID: same start
    torch.testing.assert_close(model.landmark_net.conv1.conv.weight, donor.landmark_net.conv1.conv.weight)


def test_wrong_ir_layout_error_says_which_setting_to_change(tmp_path: Path):
    cfg = tiny_model_config()
    other = CCFExp(
        dataclasses.replace(cfg, identity_ir=dataclasses.replace(cfg.identity_ir, layout=IRLayout.INSIGHTFACE))
    )
    path = tmp_path / "ir.pth"
    torch.save(other.id_net.state_dict(), path)
    with pytest.raises(WeightsError, match=r"identity_ir\.layout.*'insightface'"):
        build_model(cfg, dataclasses.replace(ALL_RANDOM, ir50_id=path))


# ----------------------------------------------------------------------------- switches and data flow


@pytest.mark.parametrize(
    "changes, n_tokens",
    [
        ({}, 147),
        ({"use_landmarks": False}, 98),
        ({"cross_fusion": False}, 147),
        ({"use_landmarks": False, "cross_fusion": False}, 98),
        ({"variant": Variant.DCFACE, "dcface_grid": 3}, 49 + 1 + 9),
        ({"variant": Variant.DCFACE, "dcface_grid": 5}, 49 + 1 + 25),
    ],
)
def test_condition_tokens_of_each_variant(changes, n_tokens):
    cfg = tiny_model_config(**changes)
    model = CCFExp(cfg).eval()
    x0, x_id = _images(2, 0), _images(2, 1)
    with torch.no_grad():
        cond = model.conditions(x_id, model.style_features(x0))
        eps = model(x0, torch.tensor([3, 700]), cond)
    assert cond.tokens.shape == (2, n_tokens, cfg.fusion.dim)
    assert cond.context.shape == (2, 2 * cfg.unet.attention_width, n_tokens)
    assert cond.id_embedding.shape == (2, cfg.unet.time_embed_dim)
    assert eps.shape == (2, 3, 112, 112)
    assert model.has_landmarks == (cfg.variant is Variant.CCFEXP and cfg.use_landmarks)


@pytest.mark.parametrize(
    "changes, streams, ring",
    [
        ({}, ("id", "exp", "lm"), (("lm", "id"), ("id", "exp"), ("exp", "lm"))),
        ({"use_landmarks": False}, ("id", "exp"), (("exp", "id"), ("id", "exp"))),
        ({"cross_fusion": False}, ("id", "exp", "lm"), None),
        ({"variant": Variant.DCFACE}, ("id", "style"), None),
    ],
)
def test_the_variant_composes_streams_and_the_ring_follows_their_order(changes, streams, ring):
    model = CCFExp(tiny_model_config(**changes))
    assert tuple(s.name for s in model.streams) == streams
    assert getattr(model.fusion, "ring", None) == ring
    # every module of a stream is on the model under its attribute, frozen or handed to the optimizer
    for part in model.parts:
        assert getattr(model, part.attribute) is part.module
        frozen, trainable = part.attribute in model.frozen_modules(), part.attribute in model.trainable_modules()
        assert frozen == part.frozen != trainable


@pytest.mark.slow
def test_frozen_networks_run_once_per_batch_and_stay_frozen():
    model = CCFExp(tiny_model_config())
    calls = {name: 0 for name in model.frozen_modules()}
    for name, m in model.frozen_modules().items():
        m.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    model.train()
    assert all(not m.training for m in model.frozen_modules().values())
    assert model.unet.training and model.id_encoder.training
    assert all(not p.requires_grad for m in model.frozen_modules().values() for p in m.parameters())
    objective = CycleObjective(model, NoiseSchedule(), LossConfig())
    x0, x_id = _images(2, 0), _images(2, 1)
    objective(x0, x_id, torch.tensor([10, 500]), torch.randn(2, 3, 112, 112))
    # id_net: features of x0 and of x_id once, then f(x0_hat) in each pass; face_net: x0 once;
    # landmark_net: x0 once (tokens and target landmarks together), then D(x0_hat) in each pass.
    assert calls == {"id_net": 4, "face_net": 1, "landmark_net": 3}


@pytest.mark.parametrize("variant", [Variant.CCFEXP, Variant.DCFACE])
@pytest.mark.slow
def test_gradients_reach_every_trainable_module_and_no_frozen_one(variant):
    torch.manual_seed(0)
    model = CCFExp(tiny_model_config(variant=variant)).train()
    _wake_zero_layers(model)
    objective = CycleObjective(model, NoiseSchedule(), LossConfig())
    x0, x_id = _images(4, 0), _images(4, 1)
    losses = objective(
        x0,
        x_id,
        torch.tensor([5, 200, 600, 950]),
        torch.randn(4, 3, 112, 112, generator=torch.Generator().manual_seed(2)),
    )
    losses.total.backward()
    no_grad = [
        f"{m}.{n}"
        for m, mod in model.trainable_modules().items()
        for n, p in mod.named_parameters()
        if p.grad is None or not torch.any(p.grad != 0)
    ]
    assert no_grad == []
    expected = {"unet", "id_encoder", "fusion", "context_proj"} | (
        {"exp_adapter"} if variant is Variant.CCFEXP else {"style_encoder"}
    )
    assert set(model.trainable_modules()) == expected
    assert model.id_encoder.scale.grad.abs().item() > 0 and model.id_encoder.pos_emb.grad.abs().sum().item() > 0
    assert all(p.grad is None for m in model.frozen_modules().values() for p in m.parameters())
    trainable = {id(p) for p in model.trainable_parameters()}
    assert all((id(p) in trainable) != (not p.requires_grad) for p in model.parameters())


@pytest.mark.slow
def test_identity_and_landmark_losses_reach_the_unet_through_the_frozen_networks():
    torch.manual_seed(0)
    model = CCFExp(tiny_model_config()).train()
    _wake_zero_layers(model)
    x0, x_id, t = _images(2, 0), _images(2, 1), torch.tensor([300, 600])
    eps = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(3))

    def unet_grad(cfg):
        model.zero_grad()
        CycleObjective(model, NoiseSchedule(), cfg)(x0, x_id, t, eps).total.backward()
        return model.unet.out[2].weight.grad.clone()

    only_mse = unet_grad(LossConfig(lambda_id=0.0, gamma_lm=0.0, cycle=False))
    assert not torch.allclose(unet_grad(LossConfig(lambda_id=1.0, gamma_lm=0.0, cycle=False)), only_mse)
    assert not torch.allclose(unet_grad(LossConfig(lambda_id=0.0, gamma_lm=1.0, cycle=False)), only_mse)


def test_trainable_state_dict_round_trip():
    a, b = CCFExp(tiny_model_config()), CCFExp(tiny_model_config())
    state = a.trainable_state_dict()
    assert not any(k.startswith(("id_net.", "face_net.", "landmark_net.")) for k in state)
    b.load_trainable_state_dict(state)
    for k, v in b.trainable_state_dict().items():
        torch.testing.assert_close(v, state[k])
    with pytest.raises(WeightsError, match="does not fit"):
        CCFExp(tiny_model_config(variant=Variant.DCFACE)).load_trainable_state_dict(state)


@pytest.mark.slow
def test_sampling_from_the_tiny_model_is_deterministic_per_seed():
    model = CCFExp(tiny_model_config()).eval()
    _wake_zero_layers(model)
    x_id, x_style = _images(2, 0), _images(2, 1)
    with torch.no_grad():
        cond = model.conditions(x_id, model.style_features(x_style))

    def run():
        return sample(lambda x, t: model(x, t, cond), NoiseSchedule(), SamplerConfig(steps=2), item_generators([5, 6]))

    first = run()
    assert first.shape == (2, 3, 112, 112) and first.abs().max() <= 1
    assert torch.equal(first, run())

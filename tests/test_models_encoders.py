"""IR-50 and MobileFaceNet: the public checkpoint layouts, input normalisation, loading formats."""

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fpsynth.nets.config import IRConfig, IRLayout
from fpsynth.nets.ir50 import IR50_EXPRESSION, IR50_ID, IResNet, to_ir_input
from fpsynth.nets.mobilefacenet import MOBILEFACENET_68, MobileFaceNet, to_landmark_input
from fpsynth.weights import WeightsError, load_into

# ----------------------------------------------------------------------------- published layouts
# Written from the public model definitions (not from fpsynth's modules): AdaFace net.py IR_50,
# TreB1eN InsightFace_Pytorch model.py Backbone(50, 'ir'), cunjian pytorch_face_landmark
# models/mobilefacenet.py MobileFaceNet([112, 112], 136).


def _bn(keys: dict, prefix: str, c: int, affine: bool = True) -> None:
    if affine:
        keys[f"{prefix}.weight"] = keys[f"{prefix}.bias"] = (c,)
    keys[f"{prefix}.running_mean"] = keys[f"{prefix}.running_var"] = (c,)
    keys[f"{prefix}.num_batches_tracked"] = ()


def public_ir_keys(layout: str, units=(3, 4, 14, 3), widths=(64, 128, 256, 512), emb=512) -> dict[str, tuple]:
    keys: dict[str, tuple] = {"input_layer.0.weight": (widths[0], 3, 3, 3), "input_layer.2.weight": (widths[0],)}
    _bn(keys, "input_layer.1", widths[0])
    i, cin = 0, widths[0]
    for n, depth in zip(units, widths):
        for _ in range(n):
            p = f"body.{i}"
            if cin != depth:
                keys[f"{p}.shortcut_layer.0.weight"] = (depth, cin, 1, 1)
                _bn(keys, f"{p}.shortcut_layer.1", depth)
            _bn(keys, f"{p}.res_layer.0", cin)
            keys[f"{p}.res_layer.1.weight"] = (depth, cin, 3, 3)
            if layout == "adaface":  # BN, conv, BN, PReLU, conv, BN
                _bn(keys, f"{p}.res_layer.2", depth)
                keys[f"{p}.res_layer.3.weight"] = (depth,)
                keys[f"{p}.res_layer.4.weight"] = (depth, depth, 3, 3)
                _bn(keys, f"{p}.res_layer.5", depth)
            else:  # BN, conv, PReLU, conv, BN
                keys[f"{p}.res_layer.2.weight"] = (depth,)
                keys[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
                _bn(keys, f"{p}.res_layer.4", depth)
            i, cin = i + 1, depth
    _bn(keys, "output_layer.0", widths[-1])
    keys["output_layer.3.weight"] = (emb, widths[-1] * 49)
    keys["output_layer.3.bias"] = (emb,)
    _bn(keys, "output_layer.4", emb, affine=layout == "insightface")
    return keys


def public_mobilefacenet_keys() -> dict[str, tuple]:
    keys: dict[str, tuple] = {}

    def block(p, cin, cout, k, groups=1, prelu=True):
        keys[f"{p}.conv.weight"] = (cout, cin // groups, k, k)
        _bn(keys, f"{p}.bn", cout)
        if prelu:
            keys[f"{p}.prelu.weight"] = (cout,)

    def depth_wise(p, cin, cout, groups):
        block(f"{p}.conv", cin, groups, 1)
        block(f"{p}.conv_dw", groups, groups, 3, groups=groups)
        block(f"{p}.project", groups, cout, 1, prelu=False)

    block("conv1", 3, 64, 3)
    block("conv2_dw", 64, 64, 3, groups=64)
    depth_wise("conv_23", 64, 64, 128)
    for j in range(4):
        depth_wise(f"conv_3.model.{j}", 64, 64, 128)
    depth_wise("conv_34", 64, 128, 256)
    for j in range(6):
        depth_wise(f"conv_4.model.{j}", 128, 128, 256)
    depth_wise("conv_45", 128, 128, 512)
    for j in range(2):
        depth_wise(f"conv_5.model.{j}", 128, 128, 256)
    block("conv_6_sep", 128, 512, 1)
    block("output_layer.conv_6_dw", 512, 512, 7, groups=512, prelu=False)
    keys["output_layer.linear.weight"] = (136, 512)
    _bn(keys, "output_layer.bn", 136)
    return keys


def _shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _random_state(layout: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g) * 0.1
    return state


@pytest.mark.parametrize("layout", ["adaface", "insightface"])
def test_ir50_matches_the_published_layout(layout):
    with torch.device("meta"):
        net = IResNet(IRConfig(layout=IRLayout(layout)))
    assert _shapes(net) == public_ir_keys(layout)
    n = sum(p.numel() for p in net.parameters())
    assert 43e6 < n < 44e6  # IR-50: about 43.6M parameters


def test_mobilefacenet_matches_the_published_layout():
    net = MobileFaceNet()
    assert _shapes(net) == public_mobilefacenet_keys()


def test_ir50_outputs_embedding_and_7x7_map_and_early_map():
    cfg = IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(16, 32, 64, 128), embedding_dim=128)
    net = IResNet(cfg).eval()
    feats = net(torch.zeros(2, 3, 112, 112), keep_early=True)
    assert feats.embedding.shape == (2, 128)
    assert feats.feature_map.shape == (2, 128, 7, 7)
    assert feats.early_map.shape == (2, 16, 56, 56)
    assert net(torch.zeros(1, 3, 112, 112)).early_map is None


def test_input_normalisations():
    # one pixel per channel: RGB (1, -1, 0) in [-1, 1]
    x = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)
    # IR-50 (AdaFace): BGR in [-1, 1]
    assert to_ir_input(x).flatten().tolist() == [0.0, -1.0, 1.0]
    # MobileFaceNet: BGR in [0, 1] (B = (0+1)/2, G = (-1+1)/2, R = (1+1)/2)
    assert to_landmark_input(x).flatten().tolist() == [0.5, 0.0, 1.0]
    # an 8-bit BGR image / 255, as the detector's own demo feeds it, is what we produce
    rgb_u8 = torch.randint(0, 256, (1, 3, 4, 4))
    ours = to_landmark_input(rgb_u8.float() / 127.5 - 1)
    torch.testing.assert_close(ours, rgb_u8.flip(1).float() / 255)


def test_mobilefacenet_outputs_68_points_and_the_7x7x512_map():
    net = MobileFaceNet().eval()
    landmarks, fmap = net(torch.zeros(2, 3, 112, 112))
    assert landmarks.shape == (2, 68, 2)
    assert fmap.shape == (2, 512, 7, 7)


# ----------------------------------------------------------------------------- loading


def _assert_loaded(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = module.state_dict()
    assert set(own) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(own[k], v, msg=k)


def test_ir50_loads_a_full_size_adaface_lightning_checkpoint(tmp_path: Path):
    # AdaFace publishes Lightning .ckpt files: state_dict keys "model.*" (backbone) and
    # "head.*" (margin head), plus pickled hyper-parameters that weights_only loading refuses.
    state = _random_state(public_ir_keys("adaface"), seed=1)
    ckpt = {
        "epoch": 25,
        "hyper_parameters": argparse.Namespace(arch="ir_50", head="adaface"),
        "state_dict": {**{f"model.{k}": v for k, v in state.items()}, "head.kernel": torch.randn(512, 10)},
    }
    path = tmp_path / "adaface_ir50_webface4m.ckpt"
    torch.save(ckpt, path)
    net = IResNet()
    record = load_into(net, IR50_ID, path)
    _assert_loaded(net, state)
    assert record.path == str(path) and not record.random_init and len(record.sha256) == 64


TINY_IR = dict(units=(1, 1, 1, 1), widths=(16, 32, 64, 128), emb=128)
TINY_IR_CFG = IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(16, 32, 64, 128), embedding_dim=128)


@pytest.mark.parametrize("fmt", ["plain", "safetensors", "dataparallel"])
def test_ir_loads_plain_safetensors_and_prefixed_state_dicts(tmp_path: Path, fmt: str):
    state = _random_state(public_ir_keys("adaface", **TINY_IR), seed=2)
    if fmt == "safetensors":
        path = tmp_path / "ir.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / "ir.pth"
        torch.save({f"module.{k}": v for k, v in state.items()} if fmt == "dataparallel" else state, path)
    net = IResNet(TINY_IR_CFG)
    load_into(net, IR50_EXPRESSION, path)
    _assert_loaded(net, state)


def test_insightface_checkpoint_without_num_batches_tracked_loads(tmp_path: Path):
    # InsightFace_Pytorch checkpoints predate BatchNorm's num_batches_tracked buffer.
    state = {
        k: v
        for k, v in _random_state(public_ir_keys("insightface", **TINY_IR), seed=3).items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "model_ir50.pth"
    torch.save(state, path)
    net = IResNet(
        IRConfig(
            layout=IRLayout.INSIGHTFACE,
            **{k: getattr(TINY_IR_CFG, k) for k in ("stage_units", "stage_channels", "embedding_dim")},
        )
    )
    load_into(net, IR50_ID, path)
    for k, v in state.items():
        torch.testing.assert_close(net.state_dict()[k], v)


def test_ir_wrong_layout_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "model_ir50.pth"
    torch.save(_random_state(public_ir_keys("insightface", **TINY_IR), seed=4), path)
    with pytest.raises(WeightsError, match="layout does not match ir50-id"):
        load_into(IResNet(TINY_IR_CFG), IR50_ID, path)


@pytest.mark.parametrize("fmt", ["pth.tar", "safetensors"])
def test_mobilefacenet_loads_its_published_checkpoint_format(tmp_path: Path, fmt: str):
    state = _random_state(public_mobilefacenet_keys(), seed=5)
    if fmt == "pth.tar":  # the repository's mobilefacenet_model_best.pth.tar: {"state_dict": ..., ...}
        path = tmp_path / "mobilefacenet_model_best.pth.tar"
        torch.save({"epoch": 100, "state_dict": state, "best_nme": torch.tensor(0.03)}, path)
    else:
        path = tmp_path / "mobilefacenet.safetensors"
        save_file(state, str(path))
    net = MobileFaceNet()
    load_into(net, MOBILEFACENET_68, path)
    _assert_loaded(net, state)


def test_mobilefacenet_rejects_another_network(tmp_path: Path):
    path = tmp_path / "not_landmarks.pth"
    torch.save(_random_state(public_ir_keys("adaface", **TINY_IR), seed=6), path)
    with pytest.raises(WeightsError, match="not a mobilefacenet-68 checkpoint"):
        load_into(MobileFaceNet(), MOBILEFACENET_68, path)

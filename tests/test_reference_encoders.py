"""Full-size parity of IR-50 and MobileFaceNet with the authors' code (shared/fixtures/reference).

Weights: the README's recipe of the published layouts, written into files of the published
containers and read through ``fpsynth.weights.load_into``; CPU float32; tolerance
max|out - ref| <= 1e-4 * max|ref| (the README's measured variation is ~2e-6).
"""

from __future__ import annotations

import pytest
import torch

from fpsynth.nets.config import IRConfig, LandmarkInput
from fpsynth.nets.ir50 import IR50_EXPRESSION, IR50_ID, IResNet
from fpsynth.nets.mobilefacenet import MOBILEFACENET_68, MobileFaceNet, to_landmark_input
from fpsynth.reference import fixtures
from fpsynth.reference.recipe import recipe_state_dict, recipe_tensor
from fpsynth.weights import load_into
from helpers.fixtures import reference_file

REL = 1e-4


def authors_pixels(u8_rgb: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> fpsynth's (B, 3, H, W) RGB [-1, 1] (= the authors' tensor)."""
    return (u8_rgb.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5


@pytest.fixture(scope="module")
def adaface_net(tmp_path_factory):
    reference_file("adaface_ir50.layout.json")
    layout = fixtures.read_layout("adaface_ir50")
    # the published container: a Lightning-style dict, state_dict = model.* (backbone) + head.*
    path = tmp_path_factory.mktemp("adaface") / "adaface_ir50_casia.ckpt"
    torch.save({"state_dict": recipe_state_dict(layout)}, path)
    net = IResNet(IRConfig())
    record = load_into(net, IR50_ID, path, verify_checksum=False)
    assert not record.random_init
    key = "model.body.21.res_layer.4.weight"
    assert torch.equal(net.state_dict()[key[len("model.") :]], recipe_tensor(key, layout[key]["shape"]))
    return net.eval()


def test_adaface_ir50_parity(adaface_net):
    reference_file("adaface_ir50.parity.io.safetensors")
    io = fixtures.read_io("adaface_ir50")
    with torch.no_grad():
        f = adaface_net(authors_pixels(io["in.image_u8_rgb"]), keep_early=True)
    norm = f.embedding.norm(dim=1, keepdim=True).clamp_min(1e-5)
    ours = {
        "out.embedding_raw": f.embedding,
        "out.embedding": f.embedding / norm,
        "out.norm": norm,
        "out.map_body2_sample0": f.early_map[:1],
        "out.map_body21": f.mid_map,
        "out.map_body23": f.feature_map,
    }
    assert set(ours) == {k for k in io if k.startswith("out.")}
    for name, value in ours.items():
        fixtures.assert_close_rel(value, io[name], REL, name)
    # the E_ID map (body[21]) is not the last stage's output
    assert fixtures.max_rel_error(f.mid_map, io["out.map_body23"]) > 0.1


def test_adaface_mid_map_is_first_unit_of_last_stage():
    cfg = IRConfig(stage_units=(1, 1, 2, 2), stage_channels=(8, 8, 16, 16), embedding_dim=16)
    net = IResNet(cfg).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        f = net(x)
        h = net.input_layer(x.flip(1))
        for unit in net.body[:5]:  # units 0..4: the first unit of stage 4 is body[4]
            h = unit(h)
    assert f.early_map is None
    assert f.mid_map.shape == (2, 16, 7, 7) and torch.equal(f.mid_map, h)
    assert torch.equal(f.feature_map, net.body[5](h))


def test_affectnet_expression_ir50_layout_loads_strictly(tmp_path):
    reference_file("IR-50_affectnet_deviation_Softmax.layout.json")
    layout = fixtures.read_layout("IR-50_affectnet_deviation_Softmax")
    assert {"head.weight", "head.bias"} <= set(layout)
    assert all(k.startswith("backbone.") for k in layout if not k.startswith("head."))
    assert layout["head.weight"]["shape"] == ["C", 512]  # the class count is undetermined
    backbone = recipe_state_dict(layout, [k for k in layout if not k.startswith("head.")])
    # a plain state dict, backbone.* + head.* (C = 7 here): the head is dropped, 'backbone.' stripped
    path = tmp_path / "IR-50_affectnet_deviation_Softmax.pth"
    torch.save({**backbone, "head.weight": torch.zeros(7, 512), "head.bias": torch.zeros(7)}, path)
    net = IResNet(IRConfig())
    load_into(net, IR50_EXPRESSION, path, drop=lambda k: k.startswith("head."), verify_checksum=False)
    ours = net.state_dict()
    assert set(ours) == {k[len("backbone.") :] for k in layout if k.startswith("backbone.")}
    key = "backbone.output_layer.3.weight"
    assert torch.equal(ours[key[len("backbone.") :]], recipe_tensor(key, layout[key]["shape"]))
    # and strictly with load_state_dict, as the authors load it (after deleting the head)
    state = {k[len("backbone.") :]: v for k, v in backbone.items()}
    IResNet(IRConfig()).load_state_dict(state, strict=True)


@pytest.fixture(scope="module")
def mobilefacenet_state(tmp_path_factory):
    reference_file("mobilefacenet_model_best.layout.json")
    layout = fixtures.read_layout("mobilefacenet_model_best")
    path = tmp_path_factory.mktemp("mfn") / "mobilefacenet_model_best.pth.tar"
    torch.save({"state_dict": recipe_state_dict(layout)}, path)
    return path


@pytest.mark.parametrize(
    "convention,group", [(LandmarkInput.RGB_PM1, "ccfexp_input"), (LandmarkInput.BGR_01, "repo_input")]
)
def test_mobilefacenet_parity(mobilefacenet_state, convention, group):
    reference_file("mobilefacenet.parity.io.safetensors")
    io = fixtures.read_io("mobilefacenet")
    net = MobileFaceNet(convention)
    load_into(net, MOBILEFACENET_68, mobilefacenet_state, verify_checksum=False)
    with torch.no_grad():
        landmarks, fmap = net.eval()(authors_pixels(io["in.image_u8_rgb"]))
    fixtures.assert_close_rel(landmarks, io[f"out.{group}.landmarks"], REL, f"{group}.landmarks")
    fixtures.assert_close_rel(fmap, io[f"out.{group}.map"], REL, f"{group}.map")
    other = "repo_input" if group == "ccfexp_input" else "ccfexp_input"
    assert fixtures.max_rel_error(landmarks, io[f"out.{other}.landmarks"]) > 1e-2


def test_landmark_input_conventions():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # R, G, B
    assert torch.equal(to_landmark_input(x, LandmarkInput.RGB_PM1), x)
    assert to_landmark_input(x, LandmarkInput.BGR_01).flatten().tolist() == [1.0, 0.5, 0.0]
    assert torch.equal(to_landmark_input(x), to_landmark_input(x, LandmarkInput.BGR_01))
    assert MobileFaceNet().input_convention is LandmarkInput.BGR_01
    assert MobileFaceNet("rgb_pm1").input_convention is LandmarkInput.RGB_PM1

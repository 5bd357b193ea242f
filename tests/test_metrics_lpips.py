"""VGG16 features loader, LPIPS v0.1 (real linear layers from the fixtures), perceptual loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fpsynth.metrics.config import Distance, PerceptualConfig
from fpsynth.metrics.perceptual import perceptual_distance
from fpsynth.nets import lpips as lpipsmod
from fpsynth.nets.loading import build_on_meta, seeded_init_
from fpsynth.nets.lpips import LPIPS, load_lpips_heads
from fpsynth.nets.vgg import VGG16Features, imagenet_normalize, load_vgg16
from fpsynth.weights import WeightsError
from helpers.fixtures import fixture_path

VGG16_FEATURE_PARAMS = 14_714_688  # torchvision's vgg16: 138,357,544 minus the classifier's 123,642,856
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    net, record = load_vgg16(None, ("vgg16",), seed=5)
    assert record.random_init
    return net


@pytest.fixture(scope="module")
def heads_path() -> Path:
    return fixture_path("weights", "lpips-v0.1", "vgg.pth")


def test_vgg16_layout_and_taps(vgg):
    state = vgg.state_dict()
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias"))
    assert sum(v.numel() for v in state.values()) == VGG16_FEATURE_PARAMS
    feats = vgg(_images(2, 0, 112), ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"))
    shapes = {k: tuple(v.shape) for k, v in feats.items()}
    assert shapes == {
        "relu1_2": (2, 64, 112, 112),
        "relu2_2": (2, 128, 56, 56),
        "relu3_3": (2, 256, 28, 28),
        "relu4_3": (2, 512, 14, 14),
        "relu5_3": (2, 512, 7, 7),
    }
    assert all((v >= 0).all() for v in feats.values())  # taps are after the ReLUs
    with pytest.raises(ValueError, match="unknown VGG16 taps"):
        vgg(_images(1, 0), ("fc7",))


def test_vgg16_loader_reads_torchvision_files(tmp_path, vgg):
    gen = torch.Generator().manual_seed(1)
    state = {k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in vgg.state_dict().items()}
    # The published file also holds the classifier (dropped by the loader; small stand-ins here).
    state |= {"classifier.0.weight": torch.zeros(8, 8), "classifier.6.bias": torch.zeros(8)}
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="397923af"):
        load_vgg16(path)  # a test-made file cannot carry the published checksum
    net, record = load_vgg16(path, verify_checksum=False)
    reference = build_on_meta(VGG16Features)
    reference.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
    x = imagenet_normalize(_images(1, 2))
    with torch.no_grad():
        torch.testing.assert_close(net(x, ("relu3_3",))["relu3_3"], reference(x, ("relu3_3",))["relu3_3"])
    assert record.path == str(path) and not record.random_init
    del state["features.28.weight"]
    torch.save(state, path)
    with pytest.raises(WeightsError, match="features.28.weight"):
        load_vgg16(path, verify_checksum=False)
    with pytest.raises(WeightsError, match="weights.vgg16"):
        load_vgg16(None)


def test_lpips_heads_load_from_the_published_file(heads_path):
    heads, record = load_lpips_heads(heads_path)
    assert record.sha256 == lpipsmod.SPEC.sha256 and record.path == str(heads_path)
    channels = [heads.head(k).model[1].weight.shape[1] for k in range(5)]
    assert channels == [64, 128, 256, 512, 512]
    assert all((heads.head(k).model[1].weight >= 0).all() for k in range(5))  # v0.1 weights are clamped >= 0


def test_lpips_heads_refuse_another_file(tmp_path, heads_path):
    copy = tmp_path / "vgg.pth"
    state = torch.load(heads_path, map_location="cpu", weights_only=True)
    torch.save(state, copy)  # same tensors, re-saved: other bytes
    with pytest.raises(WeightsError, match="sha256"):
        load_lpips_heads(copy)
    with pytest.raises(WeightsError, match="weights.lpips"):
        load_lpips_heads(None)


def test_lpips_properties_with_a_seeded_backbone(vgg, heads_path):
    heads, _ = load_lpips_heads(heads_path)
    metric = LPIPS(vgg, heads).eval()
    x, y = _images(3, 10), _images(3, 11)
    noisy = (x + 0.05 * _images(3, 12)).clamp(-1, 1)
    with torch.no_grad():  # one batched call: (x, x), (x, y), (y, x), (x, noisy)
        d = metric(torch.cat([x, x, y, x]), torch.cat([x, y, x, noisy])).view(4, 3)
    same, xy, yx, near = d
    torch.testing.assert_close(same, torch.zeros(3))
    torch.testing.assert_close(xy, yx)
    assert (xy > 0).all() and (near > 0).all()
    assert (near < xy).all()  # a slight perturbation is closer than an unrelated image


def test_lpips_against_a_direct_evaluation(vgg, heads_path):
    heads, _ = load_lpips_heads(heads_path)
    x, y = _images(2, 20), _images(2, 21)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    with torch.no_grad():
        fx, fy = vgg((x - shift) / scale, taps), vgg((y - shift) / scale, taps)
        expected = torch.zeros(2)
        for k, tap in enumerate(taps):
            nx = fx[tap] / (fx[tap].norm(dim=1, keepdim=True) + 1e-10)
            ny = fy[tap] / (fy[tap].norm(dim=1, keepdim=True) + 1e-10)
            w = heads.head(k).model[1].weight.view(1, -1, 1, 1)
            expected += ((nx - ny) ** 2 * w).sum(1).mean((1, 2))
        torch.testing.assert_close(LPIPS(vgg, heads)(x, y), expected)


def test_perceptual_distance(vgg):
    x, y = _images(2, 30), _images(2, 31)
    with torch.no_grad():
        f = vgg(imagenet_normalize(torch.cat([x, y])), ("relu1_2", "relu2_2"))
        d1 = (f["relu1_2"][:2] - f["relu1_2"][2:]) ** 2
        d2 = f["relu2_2"][:2] - f["relu2_2"][2:]
        torch.testing.assert_close(perceptual_distance(vgg, x, y), (d2**2).mean((1, 2, 3)))  # Johnson: relu2_2, MSE
        l1 = perceptual_distance(vgg, x, y, PerceptualConfig(("relu2_2",), Distance.L1))
        torch.testing.assert_close(l1, d2.abs().mean((1, 2, 3)))
        both = perceptual_distance(vgg, torch.cat([x, x]), torch.cat([y, x]), PerceptualConfig(("relu1_2", "relu2_2")))
        torch.testing.assert_close(both[:2], d1.mean((1, 2, 3)) + (d2**2).mean((1, 2, 3)))
        torch.testing.assert_close(both[2:], torch.zeros(2))


def test_seeded_init_is_deterministic():
    a, b = build_on_meta(VGG16Features), build_on_meta(VGG16Features)
    seeded_init_(a, 9)
    seeded_init_(b, 9)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)

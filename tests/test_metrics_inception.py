"""The FID Inception-v3: architecture, the .pth and TorchScript loaders, checksum, missing file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fpsynth.nets import inception
from fpsynth.nets.inception import FIDInceptionV3, is_torchscript, load_inception
from fpsynth.nets.loading import build_on_meta, missing_network, seeded_init_
from fpsynth.weights import WeightsError

# torchvision's inception_v3 has 27,161,264 parameters; without AuxLogits (3,326,696) and the
# 1000-class fc (2,049,000) that leaves 21,785,568 in the layers the FID graph shares with it.
FEATURE_LAYER_PARAMS = 21_785_568


def _random_state(seed: int) -> dict[str, torch.Tensor]:
    """A state dict in the published layout: random values, plus the keys the loader drops."""
    net = build_on_meta(FIDInceptionV3)
    seeded_init_(net, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith(("running_mean", "bias")) and "bn" in k:
            v = torch.randn(v.shape, generator=gen) * 0.1
        elif k.endswith(("running_var", "bn.weight")):
            v = torch.rand(v.shape, generator=gen) + 0.5
        state[k] = v.clone()
        if k.endswith("running_var"):  # as saved by a torchvision model of PyTorch >= 0.4.1
            state[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    state["fc.weight"] = torch.randn(1008, 2048, generator=gen) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    return state


@pytest.fixture(scope="module")
def saved_pth(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = _random_state(7)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path, state


def test_architecture_matches_torchvision_layer_for_layer():
    net = build_on_meta(FIDInceptionV3)
    state = net.state_dict()
    n = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var")))
    assert n == FEATURE_LAYER_PARAMS
    assert tuple(state["Mixed_7c.branch_pool.conv.weight"].shape) == (192, 2048, 1, 1)
    assert tuple(state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape) == (192, 192, 1, 7)
    assert tuple(state["Conv2d_1a_3x3.conv.weight"].shape) == (32, 3, 3, 3)
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool


def test_pth_loader_reads_the_published_layout(saved_pth):
    path, state = saved_pth
    net, record = load_inception(path, verify_checksum=False)
    reference = build_on_meta(FIDInceptionV3)
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.") and "num_batches" not in k})
    x = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        out, ref = net(x), reference.eval()(x)
    assert out.shape == (2, 2048)
    torch.testing.assert_close(out, ref)
    assert record.path == str(path) and not record.random_init and len(record.sha256) == 64
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_pth_checksum_is_verified(saved_pth):
    path, _ = saved_pth
    with pytest.raises(WeightsError, match="6726825d"):
        load_inception(path)


def test_wrong_layout_is_refused(tmp_path, saved_pth):
    _, state = saved_pth
    broken = dict(state)
    broken["Mixed_5b.branch_pool.conv.weight"] = torch.zeros(64, 192, 1, 1)  # pool_features 32 -> 64
    del broken["Mixed_7c.branch1x1.bn.running_mean"]
    torch.save(broken, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="layout does not match.*Mixed_7c.branch1x1.bn.running_mean.*Mixed_5b"):
        load_inception(tmp_path / "bad.pth", verify_checksum=False)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not a inception-v3-fid checkpoint"):
        load_inception(tmp_path / "other.pth", verify_checksum=False)


@pytest.mark.slow
def test_missing_file_and_explicit_random_init(tmp_path):
    with pytest.raises(WeightsError, match="weights.inception"):
        load_inception(None)
    with pytest.raises(WeightsError, match="not found"):
        load_inception(tmp_path / "absent.pth")
    missing = missing_network("fid", inception.SPEC, None)
    assert missing is not None and missing.config_key == "weights.inception"
    assert "pt_inception-2015-12-05-6726825d.pth" in missing.message
    a, rec = load_inception(None, ("inception-v3-fid",), seed=3)
    b, _ = load_inception(None, ("inception-v3-fid",), seed=3)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
    assert rec.random_init and rec.path is None


class _ScriptedInception(torch.nn.Module):
    """Mimics NVIDIA's TorchScript: [0, 255] input of any size, resized inside, ``layers`` (299 -> 2048)."""

    def __init__(self, dims: int = 2048) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, dims, 15, stride=15), torch.nn.AdaptiveAvgPool2d(1))
        self.output = torch.nn.Linear(dims, 1008)
        self.dims = dims

    def forward(
        self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False
    ) -> torch.Tensor:
        x = F.interpolate(img.to(torch.float32), size=(299, 299), mode="bilinear", align_corners=False)
        features = self.layers((x - 127.5) / 127.5).reshape(-1, self.dims)
        if return_features:
            return features
        return torch.softmax(self.output(features), dim=1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script/save, used to make the file
def test_torchscript_loader(tmp_path, saved_pth):
    torch.manual_seed(0)  # the mimic's own initialisation (test-only module)
    scripted = torch.jit.script(_ScriptedInception())
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(scripted, str(path))
    assert is_torchscript(path) and not is_torchscript(saved_pth[0])
    net, record = load_inception(path)  # no checksum is published for this file
    x = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        expected = scripted((x + 1) * 127.5, return_features=True)
        torch.testing.assert_close(net(x), expected)
    assert record.path == str(path) and len(record.sha256) == 64

    wrong = tmp_path / "wrong.pt"
    torch.jit.save(torch.jit.script(_ScriptedInception(dims=16)), str(wrong))
    with pytest.raises(WeightsError, match="expected"):
        load_inception(wrong)

"""Opening the metric networks from [weights]: a network that is not there is reported missing."""

from __future__ import annotations

import pytest
import torch

from fpsynth.metrics.config import FIDConfig, IdentityBackend, IdentityConfig
from fpsynth.metrics.suite import Opened, open_embedder, open_inception, open_lpips, open_vgg16
from fpsynth.nets.loading import MissingNetwork
from fpsynth.nets.lpips import LPIPS
from fpsynth.weights import WeightsConfig, WeightsError
from helpers.fixtures import fixture_path


def test_unconfigured_networks_are_reported_missing():
    weights = WeightsConfig()
    fid = open_inception(weights)
    assert isinstance(fid, MissingNetwork)
    assert (fid.metric, fid.network, fid.config_key, fid.status) == (
        "fid",
        "inception-v3-fid",
        "weights.inception",
        "missing",
    )
    assert fid.reason == "not configured" and "inception-2015-12-05.pt" in fid.files
    lp = open_lpips(weights)
    assert isinstance(lp, MissingNetwork) and lp.config_key == "weights.lpips"
    pl = open_vgg16(weights)
    assert isinstance(pl, MissingNetwork) and pl.metric == "perceptual" and pl.config_key == "weights.vgg16"
    d = fid.to_dict()
    assert d["status"] == "missing" and "weights.inception" in d["message"] and d["files"] == list(fid.files)


def test_a_configured_file_that_is_absent_is_missing_too(tmp_path):
    fid = open_inception(WeightsConfig(inception=tmp_path / "nowhere.pth"))
    assert isinstance(fid, MissingNetwork) and fid.reason.startswith("file not found")


def test_lpips_needs_both_files_and_names_the_absent_one():
    heads = fixture_path("weights", "lpips-v0.1", "vgg.pth")
    missing = open_lpips(WeightsConfig(lpips=heads))
    assert isinstance(missing, MissingNetwork) and missing.network == "vgg16"
    opened = open_lpips(WeightsConfig(lpips=heads, random_init=("vgg16",)), seed=1)
    assert isinstance(opened, Opened) and isinstance(opened.net, LPIPS)
    assert [(r.name, r.random_init) for r in opened.records] == [("vgg16", True), ("lpips-v0.1-vgg", False)]
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        assert opened.net(x, x).item() == 0.0


def test_random_init_only_when_listed():
    opened = open_inception(WeightsConfig(random_init=("inception-v3-fid",)), FIDConfig(), seed=2)
    assert isinstance(opened, Opened) and opened.records[0].random_init


def test_identity_never_falls_back_to_another_network(tmp_path):
    missing = open_embedder(WeightsConfig(), IdentityConfig(backend=IdentityBackend.IR50))
    assert isinstance(missing, MissingNetwork) and missing.config_key == "weights.ir50_id"  # not dlib instead
    missing = open_embedder(WeightsConfig(dlib_models=tmp_path), IdentityConfig())
    assert isinstance(missing, MissingNetwork) and missing.files == ("dlib_face_recognition_resnet_model_v1.dat",)
    assert missing.config_key == "weights.dlib_models"


def test_identity_ir50_when_supplied():
    opened = open_embedder(
        WeightsConfig(random_init=("ir50-id",)), IdentityConfig(backend=IdentityBackend.IR50, ir50_threshold=0.4)
    )
    assert isinstance(opened, Opened)
    emb = opened.net.embed(torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert emb.shape == (2, 512)
    torch.testing.assert_close(torch.from_numpy(emb).norm(dim=1), torch.ones(2))
    assert opened.net.verifier.threshold == 0.4 and opened.net.verifier.kind.value == "cosine"


def test_a_wrong_configured_file_is_an_error_not_missing(tmp_path):
    bad = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="sha256"):
        open_inception(WeightsConfig(inception=bad))

"""The real ``CycleObjective`` on real (tiny, random) modules equals Algorithm 1 assembled by hand.

The reference below calls the model's sub-networks one by one (E_ID's backbone, F_Face, F_ID,
MobileFaceNet, the expression adapter, the fusion, the context projection, the U-Net) and writes
the equations out, so it pins the wiring: which network is f and which is D_LM, which image each
one sees, which target each loss term compares with, and what the authors' variant changes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fpsynth.diffusion.config import LossConfig, SecondPassConditions
from fpsynth.diffusion.objective import CycleObjective
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import CCFExp
from fpsynth.models.config import tiny_model_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> CCFExp:
    torch.manual_seed(0)
    model = CCFExp(tiny_model_config()).eval()  # eval: E_ID's dropout and BatchNorm deterministic
    g = torch.Generator().manual_seed(1)
    for p in model.trainable_parameters():  # wake the zero-initialised output layers
        if torch.count_nonzero(p) == 0:
            p.data = torch.randn(p.shape, generator=g) * 0.02
    return model


def _batch():
    g = torch.Generator().manual_seed(2)
    x0, x_id = (torch.rand(2, 3, 112, 112, generator=g) * 2 - 1 for _ in range(2))
    return x0, x_id, torch.tensor([120, 640]), torch.randn(2, 3, 112, 112, generator=g)


def by_hand(model: CCFExp, cfg: LossConfig, x0, x_id, t, eps) -> torch.Tensor:
    T = 1000
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)[t].float().view(-1, 1, 1, 1)
    f = lambda x: model.id_net(x).embedding  # noqa: E731  the identity-loss network: the frozen ir50-id
    d = lambda x: model.landmark_net(x)[0]  # noqa: E731  D_LM: the frozen MobileFaceNet's 68 points

    def context(style):
        """U-Net conditions from the identity image and a style image, network by network."""
        ident = model.id_encoder.backbone(x_id)
        pos = model.id_encoder.pos_emb
        id_tokens = ident.mid_map.flatten(2).transpose(1, 2) + pos[1:]  # (2, 49, 128)
        stylemod = (ident.embedding + pos[0]) * model.id_encoder.scale  # (2, 128)
        deviation = model.face_net(style).embedding - model.id_net(style).embedding  # F_Face - F_ID of the STYLE
        exp_tokens = model.exp_adapter.conv(deviation[:, None, :])  # (2, 49, 128)
        lm_tokens = model.landmark_net(style)[1].flatten(2).transpose(1, 2)  # (2, 49, 512)
        fused = model.fusion({"id": id_tokens, "exp": exp_tokens, "lm": lm_tokens})  # (2, 147, 128)
        return model.context_proj(fused.transpose(1, 2)), stylemod

    def loss_terms(eps_hat, x0_hat, id_target_0):
        w = t.float() / T
        fh = f(x0_hat)
        l_id = (
            w * (1 - F.cosine_similarity(fh, f(x_id), dim=-1))
            + (1 - w) * (1 - F.cosine_similarity(fh, id_target_0, dim=-1))
        ).mean()
        l_lm = ((d(x0_hat) - d(x0)) ** 2).mean()  # against the ORIGINAL x0
        return ((eps_hat - eps) ** 2).mean() + cfg.lambda_id * l_id + cfg.gamma_lm * cfg.landmark_scale * l_lm

    def unet(x, ctx):
        return model.unet(x, t, *ctx)[:, :3]  # eps channels

    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    ctx = context(x0)
    eps_hat = unet(x_t, ctx)
    x0_hat = ((x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()).clamp(-1, 1)
    first = loss_terms(eps_hat, x0_hat, f(x0))
    x_t2 = ab.sqrt() * x0_hat + (1 - ab).sqrt() * eps
    authors = cfg.second_pass_conditions is SecondPassConditions.RECOMPUTE_FROM_X0_HAT
    eps_hat2 = unet(x_t2, context(x0_hat) if authors else ctx)
    x0_hat2 = ((x_t - (1 - ab).sqrt() * eps_hat2) / ab.sqrt()).clamp(-1, 1)  # from the FIRST x_t
    second = loss_terms(eps_hat2, x0_hat2, f(x0_hat) if authors else f(x0))
    return first + cfg.sigma * second


@pytest.mark.parametrize("variant", list(SecondPassConditions))
def test_objective_equals_algorithm_1_from_its_parts(model, variant):
    cfg = LossConfig(second_pass_conditions=variant)
    batch = _batch()
    with torch.no_grad():
        losses = CycleObjective(model, NoiseSchedule(), cfg)(*batch)
        expected = by_hand(model, cfg, *batch)
    assert losses.second is not None and losses.landmark > 0 and losses.identity > 0
    assert losses.total.item() == pytest.approx(expected.item(), rel=1e-5)
    other = LossConfig(second_pass_conditions=[v for v in SecondPassConditions if v is not variant][0])
    with torch.no_grad():
        assert by_hand(model, other, *batch).item() != pytest.approx(
            expected.item(), rel=1e-4
        )  # the test tells them apart


@pytest.mark.parametrize("variant", list(SecondPassConditions))
def test_authors_second_pass_feeds_x0_hat_with_its_gradient(model, monkeypatch, variant):
    """The authors' second-pass style image is x0_hat still attached to the first pass's U-Net, and
    the frozen networks pass its gradient on (their weights stay frozen); Algorithm 1 never asks."""
    seen = []
    real = model.style_features_with_grad

    def spy(x):
        features = real(x)
        seen.append((x, features))
        return features

    monkeypatch.setattr(model, "style_features_with_grad", spy)
    CycleObjective(model, NoiseSchedule(), LossConfig(second_pass_conditions=variant))(*_batch())
    if variant is SecondPassConditions.FIRST_PASS:
        assert seen == []
        return
    ((x, features),) = seen
    assert x.requires_grad and x.grad_fn is not None  # x0_hat, not detached
    assert features.deviation.requires_grad and features.landmark_tokens.requires_grad
    (grad,) = torch.autograd.grad(features.deviation.sum() + features.landmark_tokens.sum(), x)
    assert grad.abs().max() > 0
    assert all(p.grad is None for m in model.frozen_modules().values() for p in m.parameters())

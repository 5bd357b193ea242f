"""Closed-form pins of the condition encoders: the fusion ring, E_ID, E_Exp and E_LM's input.

Each expected value is computed here by hand (a softmax of two logits, a sine table in NumPy, the
network's layers run one by one), not by the code under test. ``tests/test_reference_ccfexp*.py``
prove parity with the authors' modules on their data; these pin the equations themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fpsynth.models.ccfexp import CCFExp
from fpsynth.models.config import FusionConfig, FusionQuery, ModelConfig, tiny_model_config
from fpsynth.models.fusion import RING_WITH_LANDMARKS, RING_WITHOUT_LANDMARKS, CrossFusion, RingAttention
from fpsynth.models.identity import IdentityEncoder
from fpsynth.nets.config import IRConfig, LandmarkInput
from fpsynth.nets.mobilefacenet import MobileFaceNet

pytestmark = pytest.mark.usefixtures("one_thread")  # faster on a shared CPU (the depth-wise MobileFaceNet)


def _images(n: int, seed: int, size: int = 112) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ----------------------------------------------------------------------------- cross-fusion (Eq. 5-6)


def _set(linear: torch.nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(torch.zeros(weight.shape[0]) if bias is None else bias)


C = math.sqrt(2) * math.log(3)  # with head width 2: softmax([C / sqrt(2), 0]) = (3/4, 1/4)


@pytest.mark.parametrize(
    "query, w_q, weight",
    [(FusionQuery.RAW, None, 0.75), (FusionQuery.PROJECTED, None, 0.75), (FusionQuery.PROJECTED, 2.0, 0.9)],
)
def test_ring_attention_heads_keys_values_and_projection_closed_form(query, w_q, weight):
    """D = 4 in 2 heads of 2 channels. The query [C, 0, 0, C] meets s1 = [1, 0, 0, 1] and s2 = [0, 1, 1, 0]:
    head 0 (channels 0-1) scores s1 by C, s2 by 0; head 1 (channels 2-3) the same, so each head
    weighs s1 by softmax([C / sqrt(2), 0])[0] = 3/4 (9/10 when W^Q = 2 I doubles the logits)."""
    att = RingAttention(4, 4, FusionConfig(dim=4, heads=2, query=query))
    if query is FusionQuery.PROJECTED:  # Eq. 6's W^Q starts as the identity (the authors' raw queries)
        assert torch.equal(att.q.weight, torch.eye(4)) and torch.equal(att.q.bias, torch.zeros(4))
        if w_q is not None:
            _set(att.q, w_q * torch.eye(4))
    _set(att.kv, torch.cat([torch.eye(4), 2 * torch.eye(4)]))  # keys = first D outputs, values = last D (x2)
    _set(att.proj, torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([0.1, 0.0, 0.0, 0.0]))
    q = torch.tensor([[[C, 0.0, 0.0, C]]])  # (B=1, N_q=1, 4)
    s = torch.tensor([[[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]]])  # (1, N_s=2, 4)
    w = weight
    heads = torch.tensor([2 * w, 2 * (1 - w), 2 * (1 - w), 2 * w])  # head 0: w v1 + (1-w) v2 on channels 0-1
    expected = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0])) @ heads + torch.tensor([0.1, 0.0, 0.0, 0.0])
    with torch.no_grad():
        out = att(q, s)
    assert out.shape == (1, 1, 4)
    torch.testing.assert_close(out[0, 0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "ring, sizes, expected",
    [
        # ID queries attend to expression, expression to landmarks, landmarks to identity; outputs in
        # the order of the key/value streams (id, exp, lm), i.e. the queries lm, id, exp.
        (RING_WITH_LANDMARKS, {"id": 3, "exp": 2, "lm": 1}, ["id"] * 1 + ["exp"] * 3 + ["lm"] * 2),
        (RING_WITHOUT_LANDMARKS, {"id": 3, "exp": 2}, ["id"] * 2 + ["exp"] * 3),
    ],
)
def test_ring_direction_and_output_order(ring, sizes, expected):
    """Uniform attention (keys 0) and values = the source tokens: every output token is the mean of
    the stream it attended to; streams of 3, 2 and 1 tokens say which stream asked."""
    cfg = FusionConfig(dim=4, heads=2, query=FusionQuery.RAW)
    fusion = CrossFusion({name: 4 for name in sizes}, ring, cfg)
    for att in fusion.att.values():
        _set(att.kv, torch.cat([torch.zeros(4, 4), torch.eye(4)]))
        _set(att.proj, torch.eye(4))
    code = {"id": torch.tensor([1.0, 0, 0, 0]), "exp": torch.tensor([0, 1.0, 0, 0]), "lm": torch.tensor([0, 0, 1.0, 0])}
    streams = {}
    for name, n in sizes.items():  # tokens code[name] + a zero-mean wobble, so each stream's mean is its code
        wobble = (torch.linspace(-0.5, 0.5, n) if n > 1 else torch.zeros(1))[:, None] * torch.tensor([0, 0, 0, 1.0])
        streams[name] = (code[name] + wobble)[None]  # (1, n, 4)
    with torch.no_grad():
        out = fusion(streams)
    assert out.shape == (1, len(expected), 4)
    torch.testing.assert_close(out[0], torch.stack([code[s] for s in expected]), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- E_ID (Eq. 3)


def test_identity_position_table_and_scale():
    enc = IdentityEncoder(tiny_model_config().identity_ir, ModelConfig().id_scale_init)
    assert ModelConfig().id_scale_init == 0.001 and enc.scale.tolist() == [pytest.approx(0.001)]
    e = enc.pos_emb.shape[1]
    assert enc.pos_emb.shape == (50, 128) and e == 128  # f_ID and 49 map tokens share one table
    p, i = np.arange(50)[:, None], np.arange(0, e, 2)[None, :]
    angle = p / 10000.0 ** (i / e)  # DCFace's positionalencoding1d, then - 0.5
    table = np.empty((50, e))
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    np.testing.assert_allclose(enc.pos_emb.detach().numpy(), table - 0.5, atol=1e-5, rtol=0)  # float32 angles


def test_identity_tokens_come_from_body_21_and_f_id_from_the_last_stage():
    """Full-size IR-50: the 49 tokens are the map after body[21] (first unit of stage 4), one token
    per position in row-major order; f_ID is the output layer on body[23]'s map."""
    torch.manual_seed(0)
    enc = IdentityEncoder(IRConfig(), 0.001).eval()
    x = _images(1, 3)
    with torch.no_grad():
        emb, tokens = enc(x)
        h, maps = enc.backbone.input_layer(x.flip(1)), []  # AdaFace IR-50s read BGR
        for unit in enc.backbone.body:
            h = unit(h)
            maps.append(h)
        raw_f = enc.backbone.output_layer(maps[23])
    assert len(maps) == 24 and maps[21].shape == (1, 512, 7, 7)
    pos = enc.pos_emb.detach()
    by_hand = torch.stack([maps[21][0, :, r, c] for r in range(7) for c in range(7)])[None] + pos[1:]
    torch.testing.assert_close(tokens, by_hand, rtol=1e-5, atol=1e-5)
    last = torch.stack([maps[23][0, :, r, c] for r in range(7) for c in range(7)])[None] + pos[1:]
    assert (tokens - last).abs().max() > 1e-2  # not the last stage's map
    torch.testing.assert_close(emb, (raw_f + pos[0]) * 0.001, rtol=1e-5, atol=1e-8)


# ----------------------------------------------------------------------------- E_Exp (Eq. 4)


def test_expression_deviation_is_face_minus_id_of_the_style_image_raw():
    torch.manual_seed(0)
    model = CCFExp(tiny_model_config()).eval()
    x0 = _images(2, 0)
    with torch.no_grad():
        dev = model.style_features(x0).deviation
        face, ident = model.face_net(x0).embedding, model.id_net(x0).embedding
        tokens = model.exp_adapter(dev)
    torch.testing.assert_close(dev, face - ident)  # F_Face(style) - F_ID(style), this sign
    assert not torch.allclose(dev, ident - face)
    assert (face.norm(dim=1) - 1).abs().min() > 0.1  # raw BatchNorm1d outputs, not unit vectors
    w, b = model.exp_adapter.conv.weight[:, 0, 0], model.exp_adapter.conv.bias  # (49,), (49,)
    torch.testing.assert_close(tokens, w[None, :, None] * dev[:, None, :] + b[None, :, None])  # token i = w_i dev + b_i
    assert tokens.shape == (2, 49, 128)


# ----------------------------------------------------------------------------- E_LM / D_LM input


def _raw_mobilefacenet(net: MobileFaceNet, fed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's layers one by one on exactly ``fed`` (no input convention)."""
    h = fed
    for name in ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5", "conv_6_sep"):
        h = getattr(net, name)(h)
    return net.output_layer(h).view(-1, 68, 2), h


@pytest.mark.parametrize("convention", list(LandmarkInput))
def test_landmark_network_input_inside_the_models_forward(convention):
    torch.manual_seed(0)
    profile = "fpsynth" if convention is LandmarkInput.BGR_01 else "custom"
    model = CCFExp(tiny_model_config(landmark_input=convention, profile=profile)).eval()
    x = _images(2, 5)
    fed = {
        LandmarkInput.BGR_01: x[:, [2, 1, 0]] * 0.5 + 0.5,  # what it was trained on: BGR in [0, 1]
        LandmarkInput.RGB_PM1: x,
    }[convention]  # the authors' code: the RGB [-1, 1] tensor unchanged
    with torch.no_grad():
        landmarks, fmap = _raw_mobilefacenet(model.landmark_net, fed)
        other, _ = _raw_mobilefacenet(
            model.landmark_net, x if convention is LandmarkInput.BGR_01 else x[:, [2, 1, 0]] * 0.5 + 0.5
        )
        torch.testing.assert_close(model.detect_landmarks(x), landmarks)  # D_LM of the landmark loss
        style = model.style_features(x)  # E_LM of the conditions
    torch.testing.assert_close(style.landmark_tokens, fmap.flatten(2).transpose(1, 2))
    assert (landmarks - other).abs().max() > 0.1 * landmarks.abs().max()  # the convention changes the answer

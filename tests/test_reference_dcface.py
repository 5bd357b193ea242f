"""Parity with the authors' DCFace code on its reduced reference set, through the import key map.

dcface_{3x3,5x5}_reduced.parity.safetensors hold ``external_mapping.*`` and ``label_mapping.*``
under the authors' names; the U-Net is CCFExp_reduced's (same class and config). Both go through
``fpsynth.published.mapping`` as a downloaded dcface_*.ckpt would, into fpsynth's DCFace variant with
the ``dcface-authors`` profile; the frozen recognition network is replaced by the reference's
``in.early_map`` (its full-size parity is tests/test_reference_encoders.py).
"""

from __future__ import annotations

import pytest
import torch

from fpsynth.models.ccfexp import CCFExp, StyleFeatures
from fpsynth.models.config import FusionConfig, ModelConfig, UNetConfig, Variant
from fpsynth.models.profiles import DCFACE_AUTHORS, apply_profile
from fpsynth.nets.config import IRConfig
from fpsynth.published.mapping import DCFACE_3X3, DCFACE_5X5, detect_kind, map_published
from fpsynth.reference import fixtures

if not fixtures.REFERENCE_DIR.is_dir():
    pytest.skip(f"reference fixtures not found: {fixtures.REFERENCE_DIR}", allow_module_level=True)

IR = IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(64, 64, 64, 128), embedding_dim=128)  # early map: 64 wide
LOOKUPS = ("id_net.", "id_encoder.backbone.")  # frozen / E_ID backbones: the reference fed their outputs


def _model(grid: int) -> CCFExp:
    cfg = apply_profile(
        ModelConfig(
            variant=Variant.DCFACE,
            dcface_grid=grid,
            unet=UNetConfig(model_channels=32, channel_mult=(1, 1, 1, 1, 1, 1), num_head_channels=16),
            identity_ir=IR,
            expression_ir=IR,
            fusion=FusionConfig(dim=128, heads=4),
        ),
        DCFACE_AUTHORS,
    )
    weights = fixtures.read_weights(f"dcface_{grid}x{grid}_reduced")
    unet = {k: v for k, v in fixtures.read_weights("CCFExp_reduced").items() if k.startswith("ema_model.")}
    state = {**weights, **unet}
    kind = detect_kind({k: tuple(v.shape) for k, v in state.items()})
    assert kind == {3: DCFACE_3X3, 5: DCFACE_5X5}[grid]
    mapped = map_published(state, kind)
    torch.manual_seed(0)
    model = CCFExp(cfg).eval()
    result = model.load_state_dict(mapped.tensors, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(LOOKUPS) for k in result.missing_keys)
    return model


@pytest.mark.parametrize("grid", [3, 5])
def test_style_tokens_conditions_and_eps(grid):
    io, unet_io = fixtures.read_io("dcface_reduced"), fixtures.read_io("CCFExp_reduced")
    model = _model(grid)
    with torch.no_grad():
        id_embedding, id_tokens = model.id_encoder.tokens(io["in.id_feature"], io["in.id_spatial21"])
        style = StyleFeatures(deviation=None, landmark_tokens=None, early_map=io["in.early_map"])
        cond = model.conditions_from_tokens(id_embedding, id_tokens, style)
        eps = model(unet_io["unet.in.x_t"], unet_io["unet.in.timesteps"], cond)
        style_tokens = model.style_encoder(io["in.early_map"])
    g = f"g{grid}.out."
    fixtures.assert_close_rel(style_tokens, io[g + "style_tokens"], name=g + "style_tokens")
    fixtures.assert_close_rel(cond.context, io[g + "cross_attn"], name=g + "cross_attn")
    fixtures.assert_close_rel(cond.id_embedding, io[g + "stylemod"], name=g + "stylemod")
    fixtures.assert_close_rel(eps, io[g + "eps"], name=g + "eps")

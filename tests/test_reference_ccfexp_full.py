"""Parity with the authors' full-size CCFExp on recipe weights (CCFExp_full), through the import map.

Every key of CCFExp.layout.json goes through ``fpsynth.published.mapping`` and the import's
shape check, exactly as a downloaded CCFExp.ckpt would; the keys that influence the outputs carry
the reference README's recipe values (the others, the non-EMA copy and the identity-loss IR-50,
are left by the import and given as shapes only). Then identity image + style image -> every
condition stream -> the fused tokens -> eps, compared in float32 on CPU within the README's
1e-4 x max |ref|.
"""

from __future__ import annotations

import pytest
import torch

from fpsynth.data.pixels import to_unit
from fpsynth.models.ccfexp import CCFExp
from fpsynth.published.importer import model_config_for
from fpsynth.published.mapping import CCFEXP, check_against, map_published
from fpsynth.reference import fixtures
from fpsynth.reference.recipe import recipe_tensor

if not fixtures.REFERENCE_DIR.is_dir():
    pytest.skip(f"reference fixtures not found: {fixtures.REFERENCE_DIR}", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def io():
    return fixtures.read_io("CCFExp_full")


@pytest.fixture(scope="module")
def model():
    layout = fixtures.read_layout("CCFExp")
    used = tuple(fixtures.read_json("CCFExp_full")["weights"]["keys_used_prefixes"])
    state = {
        k: recipe_tensor(k, v["shape"], v["dtype"]) if k.startswith(used) else torch.empty(v["shape"], device="meta")
        for k, v in layout.items()
    }
    mapped = map_published(state, CCFEXP)
    assert set(mapped.left) == {"model.", "recognition_model."}
    assert len(mapped.tensors) + sum(n for n, _ in mapped.left.values()) == len(layout)
    with torch.device("meta"):
        m = CCFExp(model_config_for(CCFEXP))
    check_against(mapped, m.state_dict(), CCFEXP)
    m.load_state_dict(mapped.tensors, strict=True, assign=True)
    return m.eval()


def test_every_stream_the_fused_tokens_and_eps(model, io):
    torch.set_num_threads(2)
    x_id, x_style = to_unit(io["in.id_image_u8_rgb"].numpy()), to_unit(io["in.style_image_u8_rgb"].numpy())
    with torch.no_grad():
        stylemod, id_tokens = model.id_encoder(x_id)
        cond = model.conditions(x_id, model.style_features(x_style))
        pred = model.predict(io["in.x_t"], io["in.timesteps"], cond)
        outs = {
            "id_embedding_raw": model.id_encoder.backbone(x_id).embedding,
            "id_tokens": id_tokens,
            "stylemod": stylemod,
            "face_f": model.face_net(x_style).embedding,
            "id_f": model.id_net(x_style).embedding,
            "lm_map": model.landmark_net(x_style)[1],
            "fused": cond.tokens.transpose(1, 2),
            "eps": pred.eps,
            "variance": pred.variance,
        }
    for name, out in outs.items():
        fixtures.assert_close_rel(out, io[f"out.{name}"], name=f"out.{name}")

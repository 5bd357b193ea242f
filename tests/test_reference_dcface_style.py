"""DCFace's style encoder (PatchStatEncoder) against the authors' ExternalMappingV4Dropout outputs
(shared/fixtures/reference, set dcface_reduced: out_channel 128, k = 3 and 5)."""

from __future__ import annotations

import pytest
import torch

from fpsynth.models.config import PatchStats
from fpsynth.models.dcface import AUTHORS_KEYS, PatchStatEncoder, from_authors_state_dict
from fpsynth.reference import fixtures
from helpers.fixtures import reference_file

REL = 1e-4


def authors_encoder(k: int, stats: PatchStats = PatchStats.MEAN_MINUS_SQUARE) -> PatchStatEncoder:
    reference_file(f"dcface_{k}x{k}_reduced.parity.safetensors")
    weights = fixtures.read_weights(f"dcface_{k}x{k}_reduced")
    enc = PatchStatEncoder(64, 128, k, stats=stats, style_dropout=0.3)
    enc.load_state_dict(from_authors_state_dict(weights), strict=True)
    return enc.eval()


@pytest.fixture(scope="module")
def io():
    reference_file("dcface_reduced.parity.io.safetensors")
    return fixtures.read_io("dcface_reduced")


@pytest.mark.parametrize("k", [3, 5])
def test_style_tokens_match_the_authors(io, k):
    enc = authors_encoder(k)
    with torch.no_grad():
        tokens = enc(io["in.early_map"])
    assert tokens.shape == (2, 1 + k * k, 128)
    fixtures.assert_close_rel(tokens, io[f"g{k}.out.style_tokens"], REL, f"g{k}.out.style_tokens")


@pytest.mark.parametrize("k", [3, 5])
def test_std_statistic_differs_from_the_authors(io, k):
    enc = authors_encoder(k, PatchStats.STD)
    with torch.no_grad():
        tokens = enc(io["in.early_map"])
    assert torch.isfinite(tokens).all()
    assert fixtures.max_rel_error(tokens, io[f"g{k}.out.style_tokens"]) > 0.1


def test_rename_table_covers_the_encoder_and_skips_the_adapter():
    enc = PatchStatEncoder(64, 128, 3)
    assert sorted(AUTHORS_KEYS.values()) == sorted(enc.state_dict())
    state = {f"external_mapping.{k}": torch.zeros(1) for k in AUTHORS_KEYS}
    state["external_mapping.cross_attn_adapter.weight"] = torch.zeros(1)
    state["label_mapping.pos_emb.0"] = torch.zeros(1)
    assert sorted(from_authors_state_dict(state)) == sorted(AUTHORS_KEYS.values())
    with pytest.raises(KeyError):
        from_authors_state_dict({"external_mapping.conv_1.weight": torch.zeros(1)})


def test_defaults_and_positional_call():
    enc = PatchStatEncoder(16, 32, 5)  # how fpsynth.models.ccfexp builds it
    assert enc.stats is PatchStats.STD and enc.dropout.p == 0.3
    assert enc.eval()(torch.randn(2, 16, 56, 56)).shape == (2, 26, 32)


@pytest.mark.parametrize("k,side", [(3, 54), (5, 55)])
def test_dropout_on_the_resized_style_map_in_training_only(k, side):
    torch.manual_seed(0)
    enc = PatchStatEncoder(16, 32, k, stats=PatchStats.STD, style_dropout=0.3)
    seen = []
    enc.dropout.register_forward_hook(
        lambda mod, inp, out: seen.append((inp[0].shape, (out == 0).float().mean().item()))
    )
    x = torch.randn(4, 16, 56, 56)
    enc.train()
    a, b = enc(x), enc(x)
    assert seen[0][0] == (4, 16, side, side)  # dropout acts on the resized input map
    assert 0.25 < seen[0][1] < 0.35
    assert not torch.allclose(a, b)  # two draws of the mask
    enc.eval()
    with torch.no_grad():
        c, d = enc(x), enc(x)
    assert torch.equal(c, d) and seen[-1][1] == 0.0
    # without dropout, training mode is deterministic too (BatchNorm uses batch statistics)
    enc.dropout.p = 0.0
    enc.train()
    assert torch.equal(enc(x), enc(x))

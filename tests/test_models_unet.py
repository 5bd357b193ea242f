"""The U-Net: paper-configuration size and shapes (on the meta device: no compute), conditioning."""

import math

import pytest
import torch

from fpsynth.models.config import UNetConfig, tiny_model_config
from fpsynth.models.unet import UNet, timestep_embedding

# DCFace's U-Net (base 128, mults 1,1,2,2,4,4, one res block per level, scale-shift norm, resblock
# up/down, learned variance) has 93,563,910 parameters, as the authors' UNetModel
# (CCFExp.layout.json); the condition tokens arrive already projected (CCFExp.context_proj), so no
# attention layer has an encoder_kv of its own.
PAPER_UNET_PARAMS = 93_563_910

# Output of every block for one 112x112 image, written out by hand from the architecture:
# levels 112, 56, 28, 14, 7, 7 with widths 128, 128, 256, 256, 512, 512.
EXPECTED_INPUT_SHAPES = [
    (128, 112, 112),  # 0 stem conv
    (128, 112, 112),  # 1 level 0 res
    (128, 56, 56),  # 2 down
    (128, 56, 56),  # 3 level 1 res
    (128, 28, 28),  # 4 down
    (256, 28, 28),  # 5 level 2 res
    (256, 14, 14),  # 6 down
    (256, 14, 14),  # 7 level 3 res
    (256, 7, 7),  # 8 down
    (512, 7, 7),  # 9 level 4 res + attention (ds=16)
    (512, 7, 7),  # 10 level 4 "down" block, resampling skipped
    (512, 7, 7),  # 11 level 5 res
]
EXPECTED_MIDDLE_SHAPE = (512, 7, 7)
EXPECTED_OUTPUT_SHAPES = [
    (512, 7, 7),  # 0 level 5
    (512, 7, 7),  # 1 level 5, "up" block with resampling skipped
    (512, 7, 7),  # 2 level 4 + attention
    (512, 14, 14),  # 3 level 4 + attention, up
    (256, 14, 14),  # 4 level 3
    (256, 28, 28),  # 5 level 3, up
    (256, 28, 28),  # 6 level 2
    (256, 56, 56),  # 7 level 2, up
    (128, 56, 56),  # 8 level 1
    (128, 112, 112),  # 9 level 1, up
    (128, 112, 112),  # 10 level 0
    (128, 112, 112),  # 11 level 0
]


@pytest.fixture(scope="module")
def paper_unet_meta():
    with torch.device("meta"):
        return UNet(UNetConfig())


def test_paper_unet_parameter_count(paper_unet_meta):
    n = sum(p.numel() for p in paper_unet_meta.parameters())
    assert n == PAPER_UNET_PARAMS
    assert not any("encoder_kv" in name for name, _ in paper_unet_meta.named_parameters())
    assert 93e6 < n < 96e6  # "about 94M"


def test_paper_unet_every_block_shape(paper_unet_meta):
    unet, seen = paper_unet_meta, {}
    hooks = [
        b.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("in", i), tuple(o.shape[1:])))
        for i, b in enumerate(unet.input_blocks)
    ]
    hooks.append(unet.middle_block.register_forward_hook(lambda m, a, o: seen.__setitem__("mid", tuple(o.shape[1:]))))
    hooks += [
        b.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("out", i), tuple(o.shape[1:])))
        for i, b in enumerate(unet.output_blocks)
    ]
    x = torch.empty(1, 3, 112, 112, device="meta")
    t = torch.zeros(1, dtype=torch.long, device="meta")
    out = unet(x, t, torch.empty(1, 1024, 147, device="meta"), torch.empty(1, 512, device="meta"))
    for h in hooks:
        h.remove()
    assert tuple(out.shape) == (1, 6, 112, 112)
    assert [seen[("in", i)] for i in range(len(unet.input_blocks))] == EXPECTED_INPUT_SHAPES
    assert seen["mid"] == EXPECTED_MIDDLE_SHAPE
    assert [seen[("out", i)] for i in range(len(unet.output_blocks))] == EXPECTED_OUTPUT_SHAPES


def test_attention_only_at_7x7_with_64_channel_heads_and_guided_diffusion_names(paper_unet_meta):
    attn = {name: m for name, m in paper_unet_meta.named_modules() if name.endswith(".qkv")}
    assert sorted(attn) == sorted(
        ["input_blocks.9.1.qkv", "middle_block.1.qkv", "output_blocks.2.1.qkv", "output_blocks.3.1.qkv"]
    )
    assert all(m.in_channels == 512 and m.out_channels == 3 * 512 for m in attn.values())
    assert UNetConfig().attention_width == 512  # one shared context of 2 x 512 channels feeds all four
    assert paper_unet_meta.middle_block[1].heads == 512 // 64
    keys = set(paper_unet_meta.state_dict())
    for key in [
        "time_embed.0.weight",
        "time_embed.2.weight",
        "input_blocks.0.0.weight",
        "input_blocks.1.0.in_layers.2.weight",
        "input_blocks.1.0.emb_layers.1.weight",
        "input_blocks.1.0.out_layers.3.weight",
        "input_blocks.5.0.skip_connection.weight",
        "middle_block.1.qkv.weight",
        "middle_block.1.proj_out.weight",
        "out.2.weight",
    ]:
        assert key in keys
    # scale-shift norm: the embedding projection gives 2C values
    assert paper_unet_meta.input_blocks[1][0].emb_layers[1].out_features == 2 * 128


def test_timestep_embedding_closed_form():
    emb = timestep_embedding(torch.tensor([0, 10]), 4)
    # dim 4: frequencies exp(-ln(1e4) * [0, 1] / 2) = [1, 0.01]; layout [cos, cos, sin, sin]
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0], [math.cos(10), math.cos(0.1), math.sin(10), math.sin(0.1)]])
    torch.testing.assert_close(emb, expected)


def _randomize_zero_layers(unet: UNet, gen: torch.Generator) -> None:
    # proj_out and the last convs start at zero; give them values so conditioning is visible
    for p in unet.parameters():
        if torch.count_nonzero(p) == 0:
            p.data = torch.randn(p.shape, generator=gen) * 0.05


def test_tiny_unet_uses_context_tokens_and_the_added_embedding():
    cfg = tiny_model_config().unet
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    unet = UNet(cfg).eval()
    _randomize_zero_layers(unet, gen)
    x = torch.randn(2, 3, 112, 112, generator=gen)
    t = torch.tensor([5, 900])
    ctx = torch.randn(2, 2 * cfg.attention_width, 147, generator=gen)  # projected condition tokens
    add = torch.randn(2, cfg.time_embed_dim, generator=gen)
    with torch.no_grad():
        base = unet(x, t, ctx, add)
        assert base.shape == (2, 6, 112, 112)
        assert not torch.allclose(base, unet(x, t, ctx * 2, add))
        assert not torch.allclose(base, unet(x, t, ctx, add * 2))
        assert not torch.allclose(base, unet(x, t.flip(0), ctx, add))
        # samples are independent: changing item 1's tokens leaves item 0 alone
        ctx2 = ctx.clone()
        ctx2[1] += 1
        torch.testing.assert_close(unet(x, t, ctx2, add)[0], base[0])


def test_unet_config_validation():
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(model_channels=48, norm_groups=32)
    with pytest.raises(ValueError, match="skip_resample_levels"):
        UNetConfig(skip_resample_levels=(5,))

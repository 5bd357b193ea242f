"""The noise-prediction U-Net: the DCFace/ADM (guided-diffusion) family at 112x112.

Paper configuration (``UNetConfig()``): base 128 channels, multipliers (1, 1, 2, 2, 4, 4), one
residual block per level, scale-shift norm, residual up/down-sampling with the fifth
downsampling skipped so the levels run at 112, 56, 28, 14, 7, 7, attention at the first 7x7
level (ds=16: down path, middle block, up path) with 64-channel heads, 6 output channels.

Conditioning (GLIDE style, as the authors' ``crossatt_and_stylemod``): the condition tokens arrive
already projected to 2C channels by ONE shared 1x1 Conv1d outside the U-Net (``CCFExp.context_proj``,
the authors' ``cross_attn_adapter``), and that one tensor is joined to the image tokens' keys and
values in every attention layer, split per head (head h: channels [2hc, 2hc + c) are keys, the next
c values). Hence every attention layer has the same width C (``UNetConfig.attention_width``). A
per-sample vector (the scaled identity feature f_ID, "stylemod") is added to the time embedding.

Module and parameter names follow guided-diffusion (``time_embed``, ``input_blocks.N``,
``middle_block``, ``output_blocks.N``, ``out``; ``in_layers``/``emb_layers``/``out_layers``/
``skip_connection`` in residual blocks; ``norm``/``qkv``/``proj_out`` in attention, with the
legacy head-major qkv order) so that published DCFace/ADM checkpoints map by key renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fpsynth.models.config import UNetConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps ``t`` (B,) -> (B, dim), [cos | sin] as in ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so the residual branch it ends starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimestepBlock(nn.Module):
    """Marks a layer whose forward takes the time embedding: ``forward(x, emb)``."""


class AttentionBlock(nn.Module):
    """Self-attention over the image tokens, with condition tokens joined to keys and values.

    x (B, C, H, W), context (B, 2C, L) projected condition tokens -> (B, C, H, W). Heads of
    ``head_channels``.
    """

    def __init__(self, channels: int, head_channels: int, norm_groups: int) -> None:
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"attention width {channels} is not divisible by head width {head_channels}")
        self.heads = channels // head_channels
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)  # (B, C, T)
        n, ch = b * self.heads, c // self.heads
        qkv = self.qkv(self.norm(x))  # (B, 3C, T), head-major: [q k v] of head 0, then head 1, ...
        q, k, v = qkv.reshape(n, 3 * ch, -1).split(ch, dim=1)  # each (B*heads, ch, T)
        if context is not None:
            ek, ev = context.reshape(n, 2 * ch, -1).split(ch, dim=1)  # (B*heads, ch, L)
            k = torch.cat([ek, k], dim=-1)  # (B*heads, ch, L+T)
            v = torch.cat([ev, v], dim=-1)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B*heads, T, ch)
        h = h.transpose(1, 2).reshape(b, c, -1)  # (B, C, T)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class ResBlock(TimestepBlock):
    """Residual block with scale-shift norm; optionally resamples (x2 up or /2 down) inside."""

    def __init__(
        self,
        channels: int,
        emb_dim: int,
        out_channels: int,
        dropout: float,
        norm_groups: int,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.GroupNorm(norm_groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.updown = up or down
        self.h_upd: nn.Module
        self.x_upd: nn.Module
        if up:
            self.h_upd = nn.Upsample(scale_factor=2, mode="nearest")
            self.x_upd = nn.Upsample(scale_factor=2, mode="nearest")
        elif down:
            self.h_upd, self.x_upd = nn.AvgPool2d(2), nn.AvgPool2d(2)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))  # scale and shift
        self.out_layers = nn.Sequential(
            nn.GroupNorm(norm_groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:  # resample between the activation and the conv, skip path alike
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        scale, shift = self.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)  # each (B, C_out, 1, 1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        h = self.out_layers[1:](h)
        return self.skip_connection(x) + h


class TimestepEmbedSequential(nn.Sequential):
    """Runs its layers in order, handing the time embedding / the context to those that take it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, TimestepBlock):
                x = layer(x, emb)
            elif isinstance(layer, AttentionBlock):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class UNet(nn.Module):
    """eps/variance prediction: ``unet(x_t, t, context, emb_add) -> (B, out_channels, H, W)``."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc, ted, g, drop = cfg.model_channels, cfg.time_embed_dim, cfg.norm_groups, cfg.dropout

        def res(cin: int, cout: int, **kw: bool) -> ResBlock:
            return ResBlock(cin, ted, cout, drop, g, **kw)

        def attn(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, cfg.num_head_channels, g)

        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))

        ch = mc * cfg.channel_mult[0]
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_chans, ds, last = [ch], 1, len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_ds:
                    layers.append(attn(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != last:
                # The block exists even where the resampling is skipped (DCFace's layout), and ds
                # doubles regardless, so the two 7x7 levels are ds=16 and ds=32.
                down = level not in cfg.skip_resample_levels
                self.input_blocks.append(TimestepEmbedSequential(res(ch, ch, down=down)))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(res(ch, ch), attn(ch), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_ds:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=(level - 1) not in cfg.skip_resample_levels))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(
            nn.GroupNorm(g, ch), nn.SiLU(), zero_module(nn.Conv2d(ch, cfg.out_channels, 3, padding=1))
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor | None = None, emb_add: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, in, H, W), t (B,) int, context (B, 2 * attention_width, L) projected condition
        tokens, emb_add (B, 4*base) -> (B, out, H, W)."""
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))  # (B, 4*base)
        if emb_add is not None:
            emb = emb + emb_add
        ctx = context
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, ctx)
            hs.append(h)
        h = self.middle_block(h, emb, ctx)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb, ctx)
        return self.out(h)

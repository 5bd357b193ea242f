"""Model configuration (stored inside every checkpoint so loading never drifts).

``ModelConfig`` is a frozen dataclass of plain values: ``fpsynth.config.to_dict`` turns it into a
dict for a checkpoint and ``fpsynth.config.from_dict(ModelConfig, d)`` rebuilds it. The defaults
are the paper configuration (CCFExp on the DCFace/ADM U-Net, about 94M U-Net parameters);
:func:`tiny_model_config` is the small configuration the tests and the demo use.

The ablation switches of the paper's Table 1 are top-level fields so that an ablation pipeline
file states one line: ``use_landmarks``, ``cross_fusion`` and ``variant``/``dcface_grid`` (the
DCFace baseline); "no cycle" is a loss setting (``fpsynth.diffusion.config.LossConfig.cycle``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fpsynth.models.profiles import profile_mismatches
from fpsynth.models.switches import FusionQuery, PatchStats, TokenLayout, Variant
from fpsynth.nets.config import IRConfig, LandmarkInput


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """The DCFace/ADM (guided-diffusion) U-Net at 112x112."""

    image_size: int = 112
    in_channels: int = 3
    out_channels: int = 6  # epsilon (3) + learned-range variance (3); only epsilon is trained
    model_channels: int = 128  # base width; the time embedding is 4x this
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 1
    # Levels whose downsampling (and the matching upsampling) is skipped: with (4,) the levels run
    # at 112, 56, 28, 14, 7, 7, as in DCFace.
    skip_resample_levels: tuple[int, ...] = (4,)
    # Downsampling rates ("ds", doubled at every level even where the resampling is skipped) that
    # get attention: 16 is the first 7x7 level, in the down path, the up path and the middle block.
    attention_ds: tuple[int, ...] = (16,)
    num_head_channels: int = 64
    dropout: float = 0.0
    norm_groups: int = 32

    def __post_init__(self) -> None:
        if any(not 0 <= lvl < len(self.channel_mult) - 1 for lvl in self.skip_resample_levels):
            raise ValueError(
                f"skip_resample_levels {self.skip_resample_levels} must name levels 0..{len(self.channel_mult) - 2}"
            )
        widths = {self.model_channels * m for m in self.channel_mult}
        bad = sorted(w for w in widths if w % self.norm_groups)
        if bad:
            raise ValueError(f"channel widths {bad} are not divisible by norm_groups={self.norm_groups}")
        downs = len(self.channel_mult) - 1 - len(self.skip_resample_levels)
        if self.image_size % (2**downs):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**{downs}")
        widths = {self.model_channels * m for i, m in enumerate(self.channel_mult) if 2**i in self.attention_ds}
        widths.add(self.model_channels * self.channel_mult[-1])  # the middle block's attention
        if len(widths) != 1:
            raise ValueError(
                f"attention layers of widths {sorted(widths)}: one shared projection of the condition "
                f"tokens feeds every attention layer, so attention_ds must pick levels of the middle width"
            )

    @property
    def attention_width(self) -> int:
        """C of every attention layer; the projected condition tokens have 2C channels."""
        return self.model_channels * self.channel_mult[-1]

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    """Cross-fusion (paper 3.3): ring attention between the condition token streams."""

    dim: int = 512  # width of the query/key/value spaces (Eq. 6) and of the fused tokens
    heads: int = 4  # the authors' code uses 4 heads
    query: FusionQuery = FusionQuery.PROJECTED  # Eq. 6's W^Q; RAW = the authors' code


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    variant: Variant = Variant.CCFEXP
    # The next two switch parts of the ccfexp variant; the dcface variant has neither part.
    use_landmarks: bool = True  # ablation "no landmarks" (CCFExp^1): ID <-> expression only
    cross_fusion: bool = True  # ablation "no cross-fusion" (CCFExp^3): plain concatenation
    dcface_grid: int = 3  # DCFace baseline: k of the k x k patch statistics (3 or 5)
    unet: UNetConfig = UNetConfig()
    # E_ID (trainable) and F_ID / f (frozen, the identity loss) share the ir50-id architecture.
    identity_ir: IRConfig = IRConfig()
    expression_ir: IRConfig = IRConfig()  # F_Face (ir50-expression)
    expression_tokens: int = 49  # E_Exp: 1x1 Conv1d, 1 -> this many channels
    id_scale_init: float = 0.001  # learnable scale of f_ID before it joins the time embedding
    fusion: FusionConfig = FusionConfig()
    # Where the paper and the authors' code disagree the paper is the default and the code's way
    # a switch; the ``ccfexp-authors`` / ``dcface-authors`` profiles (fpsynth.models.profiles) set them.
    landmark_input: LandmarkInput = LandmarkInput.BGR_01  # what E_LM / D_LM are fed
    landmark_tokens: TokenLayout = TokenLayout.TRANSPOSE  # E_LM's 7x7x512 map -> 49 tokens
    dcface_stats: PatchStats = PatchStats.STD  # DCFace baseline: the second patch statistic
    dcface_style_dropout: float = 0.3  # DCFace baseline: dropout on the style map (training only)
    profile: str = "fpsynth"  # names the switches above: fpsynth, ccfexp-authors, dcface-authors or custom

    def __post_init__(self) -> None:
        if self.dcface_grid not in (3, 5):
            raise ValueError(f"dcface_grid must be 3 or 5 (the paper's grids), got {self.dcface_grid}")
        emb = self.identity_ir.embedding_dim
        if emb != self.unet.time_embed_dim:
            raise ValueError(
                f"identity_ir.embedding_dim ({emb}) must equal the U-Net time-embedding width "
                f"4 * unet.model_channels ({self.unet.time_embed_dim}): f_ID is added to it"
            )
        if emb != self.identity_ir.stage_channels[-1]:
            raise ValueError(
                f"identity_ir.embedding_dim ({emb}) must equal its last stage width "
                f"({self.identity_ir.stage_channels[-1]}): f_ID and the 49 map tokens share one position embedding"
            )
        if self.expression_ir.embedding_dim != emb:
            raise ValueError("expression_ir.embedding_dim must equal identity_ir.embedding_dim (F_Face - F_ID)")
        if self.fusion.dim % self.fusion.heads:
            raise ValueError(f"fusion.dim {self.fusion.dim} is not divisible by fusion.heads {self.fusion.heads}")
        wrong = profile_mismatches(self)
        if wrong:
            raise ValueError(
                "the profile name must say what the switches do (it is recorded in checkpoints, metadata "
                f"and reports): {'; '.join(wrong)}. Set the profile's switches, or profile = 'custom'"
            )


def tiny_model_config(**changes: Any) -> ModelConfig:
    """The small configuration of tests and the demo (about 10M parameters in all).

    Same structure as the paper's (six levels, 7x7 attention with condition tokens, three token
    streams, IR and MobileFaceNet key layouts) at a quarter of the width: base 32, time embedding
    128, IR stages of one unit each and widths 16..128 with a 128-d embedding.
    """
    cfg = ModelConfig(
        unet=UNetConfig(model_channels=32, num_head_channels=32),
        identity_ir=IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(16, 32, 64, 128), embedding_dim=128),
        expression_ir=IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(16, 32, 64, 128), embedding_dim=128),
        fusion=FusionConfig(dim=128, heads=4),
    )
    return dataclasses.replace(cfg, **changes) if changes else cfg

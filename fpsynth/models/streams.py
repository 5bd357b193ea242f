"""Condition streams: the token sources of the U-Net's conditions, composed by the model variant.

A stream is a frozen extractor on the style image x0 and/or a trainable adapter, which together
give one stream of condition tokens (B, N, width) for the fusion:

    stream       frozen part (x0, no grad)               trainable part               tokens
    id           F_ID = ir50-id (id_net)                 E_ID on x_id (id_encoder)    (B, 49, E)
    exp          F_Face = ir50-expression (face_net)     E_Exp's Conv1d (exp_adapter) (B, 49, E)
    lm           E_LM = MobileFaceNet (landmark_net)     none                         (B, 49, 512)
    style        the early map of F_ID's pass            PatchStatEncoder             (B, 1 + k^2, D)

:data:`VARIANTS` lists each variant's streams; their order is the order of the fused tokens, and
the cross-fusion ring runs along it (:func:`fpsynth.models.fusion.ring_of`: each stream's tokens
are the keys and values of the stream before it). A stream names the model attributes of its
modules (``Part.attribute``, the first part of their state-dict keys, which the published
checkpoints' rename table in ``fpsynth.published.mapping`` relies on); the model creates the parts
in stream order (seeded initialisation follows creation order) and registers them under those
names, so the streams themselves hold no module.

The identity stream is every variant's first: its frozen ir50-id is also the identity-loss
network f, and its one pass over x0 (the model's) is handed to the other streams' extractors
(F_Face - F_ID needs F_ID(x0); DCFace's style is the early map of the same pass).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from fpsynth.models.config import ModelConfig
from fpsynth.models.dcface import PatchStatEncoder
from fpsynth.models.expression import ExpressionAdapter, expression_deviation
from fpsynth.models.identity import IdentityEncoder
from fpsynth.models.switches import TokenLayout, Variant
from fpsynth.models.tokens import map_to_tokens
from fpsynth.nets.ir50 import IR50_EXPRESSION, IR50_ID, IResNet, IRFeatures
from fpsynth.nets.mobilefacenet import MOBILEFACENET_68, MobileFaceNet
from fpsynth.weights import WeightSpec

LANDMARK_MAP_CHANNELS = 512  # MobileFaceNet's conv_6_sep width


@dataclasses.dataclass
class StyleFeatures:
    """What the frozen extractors take from the style image x0 (no grad), one field per kind;
    a stream's ``extract`` fills its fields and its ``tokens`` reads them."""

    deviation: torch.Tensor | None  # (B, E) F_Face(x0) - F_ID(x0)            [exp]
    landmark_tokens: torch.Tensor | None  # (B, 49, 512) E_LM(x0), laid out by cfg.landmark_tokens [lm]
    early_map: torch.Tensor | None  # (B, C1, 56, 56) ir50-id first stage        [style]
    landmarks: torch.Tensor | None = None  # (B, 68, 2) D_LM(x0): the landmark loss's target [lm]


@dataclasses.dataclass(frozen=True)
class Part:
    """One module of a stream, registered on the model as ``attribute``."""

    attribute: str  # the model attribute, hence the state-dict prefix (published mapping, checkpoints)
    module: nn.Module
    frozen: bool  # frozen: eval mode, no grad, not in checkpoints; else handed to the optimizer
    weights: WeightSpec | None = None  # the pretrained file it is loaded from (frozen parts)
    ir_layout_hint: bool = False  # an IR-50: a layout mismatch names the other published layout


class ConditionStream:
    """One stream of condition tokens. Subclasses set ``name`` and the four methods they need."""

    name: ClassVar[str]  # the stream's key in the fusion ("id", "exp", ...)
    uses_early_map: ClassVar[bool] = False  # asks F_ID's pass over x0 for its early map

    def __init__(self, cfg: ModelConfig, width: int | None = None) -> None:
        self.cfg = cfg
        self._width = width  # set from outside: a frozen extractor replaced by a lookup of another width

    def width(self) -> int:
        """d_s: the width of its tokens."""
        return self._width if self._width is not None else self.own_width()

    def parts(self) -> list[Part]:
        """Its modules, built now, in creation order."""
        return []

    def own_width(self) -> int:
        """d_s as its own modules make it."""
        raise NotImplementedError

    def extract(self, model: nn.Module, x0: torch.Tensor, ident: IRFeatures) -> dict[str, torch.Tensor]:
        """Frozen features of x0 (StyleFeatures fields by name); ``ident`` is F_ID(x0)."""
        return {}

    def tokens(self, model: nn.Module, id_tokens: torch.Tensor, style: StyleFeatures) -> torch.Tensor:
        """(B, N, width) tokens; ``id_tokens`` are E_ID's (B, 49, E), computed once by the model."""
        raise NotImplementedError


class IdentityStream(ConditionStream):
    """E_ID (paper Eq. 3, :mod:`fpsynth.models.identity`): its 49 tokens; f_ID goes to the time embedding."""

    name = "id"

    def parts(self) -> list[Part]:
        return [
            Part("id_encoder", IdentityEncoder(self.cfg.identity_ir, self.cfg.id_scale_init), frozen=False),
            # frozen F_ID, the identity-loss f and DCFace's style map; also E_ID's starting weights
            Part("id_net", IResNet(self.cfg.identity_ir), frozen=True, weights=IR50_ID, ir_layout_hint=True),
        ]

    def own_width(self) -> int:
        return self.cfg.identity_ir.stage_channels[-1]

    def tokens(self, model: nn.Module, id_tokens: torch.Tensor, style: StyleFeatures) -> torch.Tensor:
        return id_tokens


class ExpressionStream(ConditionStream):
    """E_Exp (paper Eq. 4, :mod:`fpsynth.models.expression`): Conv1d[F_Face(x0) - F_ID(x0)]."""

    name = "exp"

    def parts(self) -> list[Part]:
        return [
            Part("exp_adapter", ExpressionAdapter(self.cfg.expression_tokens), frozen=False),
            Part("face_net", IResNet(self.cfg.expression_ir), True, IR50_EXPRESSION, ir_layout_hint=True),  # F_Face
        ]

    def own_width(self) -> int:
        return self.cfg.identity_ir.embedding_dim

    def extract(self, model: nn.Module, x0: torch.Tensor, ident: IRFeatures) -> dict[str, torch.Tensor]:
        face_net = model.get_submodule("face_net")
        assert isinstance(face_net, IResNet)
        return {"deviation": expression_deviation(face_net, ident.embedding, x0)}

    def tokens(self, model: nn.Module, id_tokens: torch.Tensor, style: StyleFeatures) -> torch.Tensor:
        return model.get_submodule("exp_adapter")(style.deviation)


class LandmarkStream(ConditionStream):
    """E_LM: the frozen MobileFaceNet's 7x7x512 map as 49 tokens, no adapter. The same network is
    D_LM, so its pass over x0 also gives the landmark loss's target."""

    name = "lm"

    def parts(self) -> list[Part]:
        return [Part("landmark_net", MobileFaceNet(self.cfg.landmark_input), frozen=True, weights=MOBILEFACENET_68)]

    def own_width(self) -> int:
        return LANDMARK_MAP_CHANNELS

    def extract(self, model: nn.Module, x0: torch.Tensor, ident: IRFeatures) -> dict[str, torch.Tensor]:
        landmarks, lm_map = model.get_submodule("landmark_net")(x0)
        layout: TokenLayout = self.cfg.landmark_tokens
        return {"landmark_tokens": map_to_tokens(lm_map, layout), "landmarks": landmarks}  # (B, 49, 512), (B, 68, 2)

    def tokens(self, model: nn.Module, id_tokens: torch.Tensor, style: StyleFeatures) -> torch.Tensor:
        assert style.landmark_tokens is not None
        return style.landmark_tokens


class PatchStyleStream(ConditionStream):
    """DCFace's style (:mod:`fpsynth.models.dcface`): k x k patch statistics of F_ID's early map of x0."""

    name = "style"
    uses_early_map = True

    def parts(self) -> list[Part]:
        cfg = self.cfg
        encoder = PatchStatEncoder(
            cfg.identity_ir.stage_channels[0],
            cfg.fusion.dim,
            cfg.dcface_grid,
            stats=cfg.dcface_stats,
            style_dropout=cfg.dcface_style_dropout,
        )
        return [Part("style_encoder", encoder, frozen=False)]

    def own_width(self) -> int:
        return self.cfg.fusion.dim

    def extract(self, model: nn.Module, x0: torch.Tensor, ident: IRFeatures) -> dict[str, torch.Tensor]:
        assert ident.early_map is not None
        return {"early_map": ident.early_map}

    def tokens(self, model: nn.Module, id_tokens: torch.Tensor, style: StyleFeatures) -> torch.Tensor:
        return model.get_submodule("style_encoder")(style.early_map)


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """A variant: its streams in fused-token (ring) order, and whether they may cross-fuse."""

    streams: tuple[type[ConditionStream], ...]
    cross_fusion: bool  # False: always concatenated (ModelConfig.cross_fusion does not apply)


VARIANTS: dict[Variant, VariantSpec] = {
    Variant.CCFEXP: VariantSpec((IdentityStream, ExpressionStream, LandmarkStream), cross_fusion=True),
    Variant.DCFACE: VariantSpec((IdentityStream, PatchStyleStream), cross_fusion=False),
}
# Streams a ModelConfig switch leaves out (the ablation "no landmarks", CCFExp^1).
OPTIONAL: dict[type[ConditionStream], str] = {LandmarkStream: "use_landmarks"}


def streams_of(cfg: ModelConfig, widths: Mapping[str, int] | None = None) -> tuple[ConditionStream, ...]:
    """The streams of ``cfg``'s variant that its switches keep, in order; ``widths`` (stream name ->
    token width) replaces a stream's own width."""
    widths = widths or {}
    return tuple(
        kind(cfg, widths.get(kind.name))
        for kind in VARIANTS[cfg.variant].streams
        if kind not in OPTIONAL or getattr(cfg, OPTIONAL[kind])
    )

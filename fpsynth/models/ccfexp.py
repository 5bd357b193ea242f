"""CCFExp: the triple-condition denoiser, composed from ModelConfig, and its weight loading.

Data flow for a batch of (style image x0, identity image x_id), all (B, 3, 112, 112) RGB [-1, 1]:

    frozen (no grad, once per batch)        trainable
    F_ID(x0), F_Face(x0) -> deviation -> ExpressionAdapter -> exp tokens (B, 49, E) ---+
    E_LM(x0) 7x7x512 map -> lm tokens (B, 49, 512) ------------------------------------+--> fusion -> (B, 147, D)
                                       E_ID(x_id) -> id tokens (B, 49, E) -------------+        |
                                                  -> scaled f_ID (B, 4*base) ---+   context_proj (Conv1d D -> 2C)
    U-Net(x_t, t, context (B, 2C, 147), f_ID added to the time embedding) -> eps (B, 3, 112, 112)
                                                              [+ learned-range variance (B, 3, 112, 112)]

Module names follow the authors' where they have a counterpart, so published checkpoints map by a
rename table (``fpsynth.published.mapping``); the switches of ``ModelConfig`` that differ between
the paper and the authors' code are set together by a profile (``fpsynth.models.profiles``).

The conditions are a list of condition streams (``fpsynth.models.streams``: a frozen extractor
and/or a trainable adapter -> tokens), composed by the variant: identity, expression, landmarks
for CCFExp (landmarks dropped by ``use_landmarks = false``); identity and the patch statistics of
the frozen ir50-id's early map of x0 for DCFace. The fused tokens, and the cross-fusion ring,
follow the streams' order. The frozen networks also serve the losses: ``recognize`` is the
identity-loss network f (ir50-id), ``detect_landmarks`` is D_LM (the same MobileFaceNet as E_LM).

Typical use (training step; see ``fpsynth.diffusion.objective`` for the whole of Algorithm 1):

    model, records = build_model(cfg.train.model, cfg.weights)
    frozen = model.frozen_features(x0, x_id)        # StyleFeatures + LossTargets
    cond = model.conditions(x_id, frozen.style)     # trainable encoders, once per batch
    eps_hat = model(x_t, t, cond)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from fpsynth.models.config import ModelConfig
from fpsynth.models.fusion import ConcatFusion, CrossFusion, ring_of
from fpsynth.models.identity import IdentityEncoder
from fpsynth.models.streams import LANDMARK_MAP_CHANNELS, VARIANTS, LandmarkStream, Part, StyleFeatures, streams_of
from fpsynth.models.unet import UNet
from fpsynth.nets.ir50 import IResNet
from fpsynth.weights import LoadRecord, WeightsConfig, WeightsError, WeightSpec, load_into


@dataclasses.dataclass
class LossTargets:
    """Frozen-network outputs on the clean images that the losses compare against (no grad).

    Made here, by :meth:`CCFExp.frozen_features`, and read by ``fpsynth.diffusion.cycle``: the
    model that computes them sits below the losses that use them."""

    id_of_xid: torch.Tensor  # (B, E) f(x_id)
    id_of_x0: torch.Tensor  # (B, E) f(x0)
    landmarks_of_x0: torch.Tensor | None  # (B, 68, 2) D_LM(x0); None when there is no landmark loss


@dataclasses.dataclass
class FrozenFeatures:
    style: StyleFeatures
    targets: LossTargets


@dataclasses.dataclass
class Conditions:
    """Output of the trainable condition encoders, fed to every U-Net call of a batch."""

    tokens: torch.Tensor  # (B, L, D) fused: 147 (ccfexp), 98 (no landmarks), 49 + 1 + k^2 (dcface)
    context: torch.Tensor  # (B, 2C, L) the tokens through context_proj: keys/values of every attention layer
    id_embedding: torch.Tensor  # (B, 4*base) scale * (f_ID + P_0), added to the time embedding ("stylemod")


@dataclasses.dataclass
class Prediction:
    eps: torch.Tensor  # (B, 3, H, W)
    variance: torch.Tensor  # (B, 3, H, W) learned-range interpolation values (not trained by the losses)


class CCFExp(nn.Module):
    # The identity stream is every variant's first (fpsynth.models.streams): these two are always there.
    id_encoder: IdentityEncoder  # E_ID, trainable
    id_net: IResNet  # frozen: F_ID, the identity-loss f, DCFace's style map

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unet = UNet(cfg.unet)
        # The streams' modules, created in stream order (seeded init) and registered under their
        # attribute names (state-dict keys): unet, id_encoder, id_net, exp_adapter, face_net, landmark_net.
        # The landmark width through this module's name: the reduced reference test sets it to its lookups' 128.
        self.streams = streams_of(cfg, {LandmarkStream.name: LANDMARK_MAP_CHANNELS})
        self.parts: tuple[Part, ...] = tuple(part for stream in self.streams for part in stream.parts())
        for part in self.parts:
            self.add_module(part.attribute, part.module)
        widths = {stream.name: stream.width() for stream in self.streams}  # in fused-token order
        if VARIANTS[cfg.variant].cross_fusion and cfg.cross_fusion:
            self.fusion: nn.Module = CrossFusion(widths, ring_of(tuple(widths)), cfg.fusion)
        else:
            self.fusion = ConcatFusion(widths, cfg.fusion.dim)
        # ONE projection of the fused tokens for every attention layer (the authors' cross_attn_adapter)
        self.context_proj = nn.Conv1d(cfg.fusion.dim, 2 * cfg.unet.attention_width, 1)
        for module in self.frozen_modules().values():
            module.requires_grad_(False)
            module.eval()

    # ------------------------------------------------------------------ bookkeeping

    @property
    def has_landmarks(self) -> bool:
        """True when E_LM conditions the model and D_LM's landmark loss applies."""
        return hasattr(self, "landmark_net")

    def frozen_modules(self) -> dict[str, nn.Module]:
        """The streams' frozen networks, in stream order (id_net, face_net, landmark_net)."""
        return {part.attribute: part.module for part in self.parts if part.frozen}

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Every module the optimizer must see, in this order (parameter order, checkpoint keys): the
        U-Net, the streams' adapters (E_ID with its scale and positions first), fusion, context_proj."""
        adapters = {part.attribute: part.module for part in self.parts if not part.frozen}
        return {"unet": self.unet, **adapters, "fusion": self.fusion, "context_proj": self.context_proj}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.trainable_modules().values() for p in m.parameters()]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State of the trainable modules only (checkpoints need not repeat the frozen weights)."""
        return {f"{name}.{k}": v for name, m in self.trainable_modules().items() for k, v in m.state_dict().items()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Strict inverse of :meth:`trainable_state_dict`."""
        own = self.trainable_state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise WeightsError(
                f"checkpoint does not fit this model config: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        for name, module in self.trainable_modules().items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def train(self, mode: bool = True) -> CCFExp:
        """Train mode for the trainable parts; the frozen networks always stay in eval mode."""
        super().train(mode)
        for module in self.frozen_modules().values():
            module.eval()
        return self

    # ------------------------------------------------------------------ frozen features

    @torch.no_grad()
    def style_features(self, x0: torch.Tensor) -> StyleFeatures:
        """x0 (B, 3, 112, 112) style images -> frozen features (computed once per batch)."""
        return self._frozen_on_style(x0)[0]

    def style_features_with_grad(self, x: torch.Tensor) -> StyleFeatures:
        """:meth:`style_features` of an image that carries gradient (the authors' cycle variant feeds
        x0_hat): the frozen weights stay frozen, the gradients reach ``x``."""
        return self._frozen_on_style(x)[0]

    @torch.no_grad()
    def frozen_features(self, x0: torch.Tensor, x_id: torch.Tensor) -> FrozenFeatures:
        """Style features and loss targets, one pass of each frozen network over x0 and x_id."""
        style, id_of_x0, landmarks = self._frozen_on_style(x0)
        targets = LossTargets(id_of_xid=self.id_net(x_id).embedding, id_of_x0=id_of_x0, landmarks_of_x0=landmarks)
        return FrozenFeatures(style, targets)

    def _frozen_on_style(self, x0: torch.Tensor) -> tuple[StyleFeatures, torch.Tensor, torch.Tensor | None]:
        """One pass of F_ID over x0, shared by the streams' extractors (each frozen network runs once)."""
        ident = self.id_net(x0, keep_early=any(stream.uses_early_map for stream in self.streams))
        found: dict[str, torch.Tensor] = {}
        for stream in self.streams:
            found.update(stream.extract(self, x0, ident))
        style = StyleFeatures(**{field.name: found.get(field.name) for field in dataclasses.fields(StyleFeatures)})
        return style, ident.embedding, style.landmarks

    # ------------------------------------------------------------------ trainable conditions and denoising

    def conditions(self, x_id: torch.Tensor, style: StyleFeatures) -> Conditions:
        """Trainable encoders: identity image + frozen style features -> U-Net conditions."""
        id_embedding, id_tokens = self.id_encoder(x_id)  # (B, E), (B, 49, E)
        return self.conditions_from_tokens(id_embedding, id_tokens, style)

    def conditions_from_tokens(
        self, id_embedding: torch.Tensor, id_tokens: torch.Tensor, style: StyleFeatures
    ) -> Conditions:
        """E_ID's outputs (B, E), (B, 49, E) + frozen style features -> fused tokens and U-Net context."""
        streams = {stream.name: stream.tokens(self, id_tokens, style) for stream in self.streams}
        tokens = self.fusion(streams)  # (B, L, D)
        context = self.context_proj(tokens.transpose(1, 2))  # (B, 2C, L)
        return Conditions(tokens=tokens, context=context, id_embedding=id_embedding)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions) -> Prediction:
        """x_t (B, 3, H, W), t (B,) int -> eps and the variance channels."""
        out = self.unet(x_t, t, cond.context, cond.id_embedding)
        eps, variance = out.split(3, dim=1)
        return Prediction(eps, variance)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        """x_t (B, 3, H, W), t (B,) int -> predicted noise eps (B, 3, H, W)."""
        return self.predict(x_t, t, cond).eps

    # ------------------------------------------------------------------ frozen networks used by the losses

    def recognize(self, x: torch.Tensor) -> torch.Tensor:
        """The identity-loss network f (frozen ir50-id): (B, 3, 112, 112) -> (B, E); grads reach x."""
        return self.id_net(x).embedding

    def detect_landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """D_LM (frozen MobileFaceNet): (B, 3, 112, 112) -> (B, 68, 2) in [0, 1]; grads reach x."""
        if not self.has_landmarks:
            raise ValueError("this model has no landmark network (use_landmarks is off or the variant is dcface)")
        return self.get_submodule("landmark_net")(x)[0]


# ---------------------------------------------------------------------- building with pretrained weights


def _load(module: nn.Module, spec: WeightSpec, path: Path | None, weights: WeightsConfig, hint: str = "") -> LoadRecord:
    try:
        return load_into(module, spec, path, weights.random_init)
    except WeightsError as exc:
        if hint and "layout does not match" in str(exc):
            raise WeightsError(f"{exc}. {hint}") from exc
        raise


def build_model(cfg: ModelConfig, weights: WeightsConfig) -> tuple[CCFExp, list[LoadRecord]]:
    """CCFExp with its pretrained networks loaded; one LoadRecord per pretrained network.

    ir50-id fills the frozen F_ID/f AND is the starting point of the trainable E_ID; ir50-expression
    fills F_Face; mobilefacenet-68 fills E_LM/D_LM. A missing file is a ``WeightsError`` naming the
    file and the config key; random initialisation happens only for networks listed in
    ``weights.random_init``, and the record says so.
    """
    model = CCFExp(cfg)
    other = "insightface" if cfg.identity_ir.layout.value == "adaface" else "adaface"
    hint = (
        f"If the file is an IR-50 of the other published layout, set "
        f"train.model.identity_ir.layout (and expression_ir.layout) to '{other}'"
    )
    records = []
    for part in model.parts:  # the streams' pretrained networks, in stream order
        if part.weights is not None:
            path = getattr(weights, part.weights.config_key.removeprefix("weights."))
            records.append(_load(part.module, part.weights, path, weights, hint if part.ir_layout_hint else ""))
    model.id_encoder.backbone.load_state_dict(model.id_net.state_dict())  # E_ID starts from the same weights
    return model, records

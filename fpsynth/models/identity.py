"""E_ID, the identity encoder (paper Eq. 3): a TRAINABLE IR-50 on the identity image.

E_ID(x_id) = Concat[f_ID, Flatten(I_ID)] + P_emb: the 512-d output f_ID and the 49 tokens of the
"intermediate" 7x7x512 map I_ID share one learnable position table (50 rows, initialised from a sine table as
DCFace does). The two parts go to different places: f_ID, times a learnable scalar that starts at
0.001 (so the pretrained U-Net is barely disturbed at first), is added to the time embedding; the
49 tokens go to the cross-fusion. I_ID is the map after the FIRST unit of the last stage (body[21]
in IR-50), as in the authors' code (return_spatial [21]) and the paper ("intermediate layer
features"), not the last stage's output. The backbone starts from the ir50-id weights (the authors' code
started it from random weights, a defect not repeated here: see ``build_model``).
"""

from __future__ import annotations

import torch
from torch import nn

from fpsynth.models.tokens import map_to_tokens, sinusoidal_table
from fpsynth.nets.config import IRConfig
from fpsynth.nets.ir50 import IResNet


class IdentityEncoder(nn.Module):
    def __init__(self, cfg: IRConfig, scale_init: float) -> None:
        super().__init__()
        self.backbone = IResNet(cfg)
        self.pos_emb = nn.Parameter(sinusoidal_table(1 + 49, cfg.embedding_dim) - 0.5)  # (50, E)
        self.scale = nn.Parameter(torch.tensor([scale_init]))

    def forward(self, x_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_id (B, 3, 112, 112) -> scaled f_ID (B, E) for the time embedding, tokens (B, 49, E)."""
        feats = self.backbone(x_id)
        return self.tokens(feats.embedding, feats.mid_map)

    def tokens(self, embedding: torch.Tensor, mid_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw f_ID (B, E) and I_ID (B, E, 7, 7) -> (f_ID + P_0) * scale (B, E), I_ID tokens + P_1.. (B, 49, E)."""
        tokens = torch.cat([embedding[:, None], map_to_tokens(mid_map)], dim=1)  # (B, 50, E)
        tokens = tokens + self.pos_emb
        return tokens[:, 0] * self.scale, tokens[:, 1:]

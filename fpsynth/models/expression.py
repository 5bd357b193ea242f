"""E_Exp, the expression encoder (paper Eq. 4): E_Exp(x0) = Conv[F_Face(x0) - F_ID(x0)].

F_Face (ir50-expression, trained for expression on AffectNet) and F_ID (ir50-id) are two FROZEN
IR-50s with the same structure; their 512-d outputs differ by what the expression adds to the
identity (the DLN deviation idea). The deviation is computed once per batch by
``CCFExp.style_features``; the only trainable part is the 1x1 Conv1d that spreads it over 49
tokens (1 -> 49 channels: token i = w_i * deviation + b_i). The authors never handed this
adapter to the optimizer; here it is in ``CCFExp.trainable_modules()``.
"""

from __future__ import annotations

import torch
from torch import nn

from fpsynth.nets.ir50 import IResNet


def expression_deviation(face_net: IResNet, id_embedding: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """F_Face(x) - F_ID(x): (B, E) raw embeddings; ``id_embedding`` is F_ID(x), computed by the caller.

    No gradient reaches the frozen weights; whether one reaches ``x`` is the caller's (no_grad) choice.
    """
    return face_net(x).embedding - id_embedding


class ExpressionAdapter(nn.Module):
    """deviation (B, E) -> expression tokens (B, num_tokens, E)."""

    def __init__(self, num_tokens: int = 49) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, num_tokens, kernel_size=1)

    def forward(self, deviation: torch.Tensor) -> torch.Tensor:
        return self.conv(deviation[:, None, :])  # (B, 1, E) -> (B, num_tokens, E)

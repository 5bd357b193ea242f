"""Cross-fusion of the condition token streams (paper 3.3, Eq. 5-6), and the plain alternative.

Each stream (identity, expression, landmarks) has its own query/key/value projections (Eq. 6,
multi-head). Streams attend to one another in a ring: Q_ID attends to the expression's keys and
values, Q_Exp to the landmarks', Q_LM to the identity's (Eq. 5). The three outputs (49 tokens
each) are concatenated to 147 tokens, normalised and projected to the U-Net's condition width.
Without landmarks (ablation CCFExp^1) the ring is ID <-> Exp: 98 tokens. Ablation "no
cross-fusion" (CCFExp^3) and the DCFace baseline use :class:`ConcatFusion`: every stream
normalised and projected to the condition width on its own, then concatenated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fpsynth.models.config import FusionConfig

# (query stream, key/value stream) pairs, in output order.
RING_WITH_LANDMARKS = (("id", "exp"), ("exp", "lm"), ("lm", "id"))
RING_WITHOUT_LANDMARKS = (("id", "exp"), ("exp", "id"))


class CrossFusion(nn.Module):
    def __init__(self, stream_dims: dict[str, int], ring: tuple[tuple[str, str], ...], cfg: FusionConfig, cond_dim: int) -> None:
        super().__init__()
        missing = {s for pair in ring for s in pair} - set(stream_dims)
        if missing:
            raise ValueError(f"ring names streams {sorted(missing)} that have no width")
        self.ring, self.heads, self.dim = ring, cfg.heads, cfg.dim
        self.qkv = nn.ModuleDict({name: nn.Linear(d, 3 * cfg.dim) for name, d in stream_dims.items()})
        self.norm = nn.LayerNorm(cfg.dim)
        self.proj = nn.Linear(cfg.dim, cond_dim)

    def forward(self, streams: dict[str, torch.Tensor]) -> torch.Tensor:
        """streams name -> (B, N, d_name) -> condition tokens (B, sum of query N, cond_dim)."""
        q, k, v = {}, {}, {}
        for name, tokens in streams.items():
            b, n, _ = tokens.shape
            heads = self.qkv[name](tokens).view(b, n, 3, self.heads, self.dim // self.heads)
            q[name], k[name], v[name] = heads.permute(2, 0, 3, 1, 4)  # each (B, heads, N, dim/heads)
        outs = []
        for query, source in self.ring:
            h = F.scaled_dot_product_attention(q[query], k[source], v[source])  # (B, heads, N_q, dim/heads)
            outs.append(h.transpose(1, 2).flatten(2))  # (B, N_q, dim)
        return self.proj(self.norm(torch.cat(outs, dim=1)))


class ConcatFusion(nn.Module):
    def __init__(self, stream_dims: dict[str, int], cond_dim: int) -> None:
        super().__init__()
        self.proj = nn.ModuleDict(
            {name: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cond_dim)) for name, d in stream_dims.items()}
        )

    def forward(self, streams: dict[str, torch.Tensor]) -> torch.Tensor:
        """streams name -> (B, N, d_name) -> (B, sum N, cond_dim), in the order of ``stream_dims``."""
        return torch.cat([proj(streams[name]) for name, proj in self.proj.items()], dim=1)

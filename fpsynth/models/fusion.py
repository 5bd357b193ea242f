"""Cross-fusion of the condition token streams (paper 3.3, Eq. 5-6), and the plain alternative.

Streams attend to one another in a ring (Eq. 5): Q_ID attends to the expression's keys and
values, Q_Exp to the landmarks', Q_LM to the identity's. The structure follows the authors'
``Condition_Adapter`` so that published weights map by name (checked on their reference outputs):
one attention per KEY/VALUE stream s, ``att[s]`` = ``kv`` (Linear d_s -> 2D, keys are the first D
channels, values the last D) + ``proj`` (Linear D -> D) over ``heads`` heads, no LayerNorm, no
residual. The outputs are concatenated in the order of their key/value streams (id, exp, lm), i.e.
the queries lm, id, exp: (B, 147, D). The U-Net's shared projection (``CCFExp.context_proj``) takes
it from there.

Queries (``FusionQuery``): the paper's Eq. 6 has Q = F W^Q per stream (``PROJECTED``, the default:
``att[s].q`` projects the QUERY stream's tokens; it starts as the identity where the widths agree,
so a published model fine-tuned with it starts from exactly the authors' function); the authors'
code uses the query stream's raw tokens (``RAW``), which needs every stream to be D wide.

Without landmarks (ablation CCFExp^1) the ring is ID <-> Exp: 98 tokens. Ablation "no
cross-fusion" (CCFExp^3) and the DCFace baseline use :class:`ConcatFusion`: the streams' tokens
concatenated as they are (the authors' DCFace), a stream of another width than D first projected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fpsynth.models.config import FusionConfig, FusionQuery


def ring_of(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The ring along the streams' order: (query stream, key/value stream) pairs in output order (the
    key/value streams' order); each stream's queries attend to the next stream (the last's to the first)."""
    return tuple((names[i - 1], names[i]) for i in range(len(names)))


RING_WITH_LANDMARKS = ring_of(("id", "exp", "lm"))  # (lm, id), (id, exp), (exp, lm)
RING_WITHOUT_LANDMARKS = ring_of(("id", "exp"))  # (exp, id), (id, exp)


class RingAttention(nn.Module):
    """One query stream attending to one key/value stream: (B, N_q, d_q), (B, N_s, d_s) -> (B, N_q, D)."""

    def __init__(self, query_dim: int, source_dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.heads, self.dim = cfg.heads, cfg.dim
        if cfg.query is FusionQuery.PROJECTED:
            self.q = nn.Linear(query_dim, cfg.dim)
            if query_dim == cfg.dim:  # start as the authors' raw queries
                nn.init.eye_(self.q.weight)
                nn.init.zeros_(self.q.bias)
        elif query_dim != cfg.dim:
            raise ValueError(f"raw fusion queries need streams of width fusion.dim={cfg.dim}, got {query_dim}")
        self.kv = nn.Linear(source_dim, 2 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, query: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        b, n, _ = query.shape
        hd = self.dim // self.heads
        q = self.q(query) if hasattr(self, "q") else query
        k, v = self.kv(source).chunk(2, dim=-1)  # each (B, N_s, D)
        q = q.view(b, n, self.heads, hd).transpose(1, 2)  # (B, heads, N_q, hd)
        k = k.view(b, -1, self.heads, hd).transpose(1, 2)  # (B, heads, N_s, hd)
        v = v.view(b, -1, self.heads, hd).transpose(1, 2)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N_q, hd), scale 1/sqrt(hd)
        return self.proj(h.transpose(1, 2).reshape(b, n, self.dim))


class CrossFusion(nn.Module):
    def __init__(self, stream_dims: dict[str, int], ring: tuple[tuple[str, str], ...], cfg: FusionConfig) -> None:
        super().__init__()
        missing = {s for pair in ring for s in pair} - set(stream_dims)
        if missing:
            raise ValueError(f"ring names streams {sorted(missing)} that have no width")
        self.ring = ring
        self.att = nn.ModuleDict(
            {source: RingAttention(stream_dims[query], stream_dims[source], cfg) for query, source in ring}
        )

    def forward(self, streams: dict[str, torch.Tensor]) -> torch.Tensor:
        """streams name -> (B, N, d_name) -> fused tokens (B, sum of query N, D)."""
        return torch.cat([self.att[source](streams[query], streams[source]) for query, source in self.ring], dim=1)


class ConcatFusion(nn.Module):
    def __init__(self, stream_dims: dict[str, int], dim: int) -> None:
        super().__init__()
        self.order = tuple(stream_dims)
        self.proj = nn.ModuleDict({name: nn.Linear(d, dim) for name, d in stream_dims.items() if d != dim})

    def forward(self, streams: dict[str, torch.Tensor]) -> torch.Tensor:
        """streams name -> (B, N, d_name) -> (B, sum N, D), in the order of ``stream_dims``."""
        return torch.cat(
            [self.proj[name](streams[name]) if name in self.proj else streams[name] for name in self.order], dim=1
        )

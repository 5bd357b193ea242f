"""Frozen IR-50 features of face crops, for the ``ir50`` grader (a linear head on them).

The network is the identity IR-50 of ``weights.ir50_id`` (:mod:`fpsynth.nets.ir50`), loaded by
:func:`fpsynth.weights.load_into` (strict keys and shapes, nothing unpickled), frozen and in eval
mode, so the features of a crop do not depend on the batch or the seed. A recognition embedding
is trained to ignore expression; its left-right difference ``e(x) - e(flip x)`` is not, since a
palsy makes the two sides differ, so both are kept by default (``ir50.mirror``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fpsynth.nets.ir50 import IR50_ID, IResNet
from fpsynth.utility.config import Ir50GraderConfig
from fpsynth.weights import LoadRecord, load_into


def load_ir50(
    cfg: Ir50GraderConfig, path: Path | None, random_init: tuple[str, ...] = ()
) -> tuple[IResNet, LoadRecord]:
    """The frozen network of ``path`` (weights.ir50_id); a WeightsError (one line) when it is unset or wrong."""
    net = IResNet(cfg.network)
    record = load_into(net, IR50_ID, path, random_init)
    return net.to(torch.device(cfg.device)).eval().requires_grad_(False), record


@torch.no_grad()
def ir50_features(images: np.ndarray, net: IResNet, cfg: Ir50GraderConfig) -> np.ndarray:
    """(N, 112, 112, 3) uint8 RGB crops -> (N, 2E) float32 [e(x), e(x) - e(flip x)] with ``cfg.mirror``,
    else (N, E) e(x); e is the L2-normalised embedding (E = 512 for IR-50)."""
    device = next(net.parameters()).device
    dim = cfg.network.embedding_dim * (2 if cfg.mirror else 1)
    out = np.zeros((len(images), dim), np.float32)
    for i in range(0, len(images), cfg.batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + cfg.batch_size])).to(device)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # (B, 3, 112, 112) RGB in [-1, 1]
        e = F.normalize(net(x).embedding.float(), dim=1)  # (B, E)
        if cfg.mirror:
            e = torch.cat([e, e - F.normalize(net(x.flip(3)).embedding.float(), dim=1)], 1)  # (B, 2E)
        out[i : i + len(x)] = e.cpu().numpy()
    return out

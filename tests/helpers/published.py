"""Files laid out exactly as the published checkpoints (test_published_import, test_published_use).

:func:`write_published` writes a real ``torch.save`` of a Lightning-style dict whose
``state_dict`` has every key and shape of a reference ``*.layout.json``; the tensors are zeros
expanded to their shapes (stride 0), so a 400 MB layout costs a few kilobytes until an import
writes it. The default hyper-parameters hold the kinds of objects the real files pickle
(functools.partial, a config class pickled by reference), which the loader must refuse.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from pathlib import Path

import torch


class DictConfigStandIn:
    """Pickled by reference like OmegaConf's DictConfig: the loader must not import or build it."""

    def __init__(self, content: dict) -> None:
        self._content = content


def write_published(path: Path, layout: dict, *, drop=(), extra=(), reshape=None, hyper=None) -> Path:
    state = OrderedDict()
    for key, spec in layout.items():
        if key in drop:
            continue
        shape = (reshape or {}).get(key, spec["shape"])
        dtype = torch.long if spec["dtype"] in ("int64", "I64") else torch.float32
        state[key] = torch.zeros((), dtype=dtype).expand(shape)
    for key in extra:
        state[key] = torch.zeros(3)
    hyper = (
        hyper
        if hyper is not None
        else {
            "unet_config": DictConfigStandIn({"model_params": {"num_channels": 128}}),
            "optimizer": functools.partial(torch.optim.AdamW, lr=1e-4),
        }
    )
    torch.save(
        {
            "epoch": 9,
            "global_step": 12345,
            "pytorch-lightning_version": "1.7.1",
            "state_dict": state,
            "hyper_parameters": hyper,
        },
        path,
    )
    return path

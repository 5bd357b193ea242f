"""Loading the metric networks, and the structured result of a metric whose network is missing.

Metric networks are inference-only and are built on the meta device, then either filled from
their file or, when ``weights.random_init`` lists them (tests, tiny/demo configs), from a seeded
``torch.Generator``: construction never touches the global RNG and never initialises twice.

Two things differ from :func:`fpsynth.weights.load_into`, hence this module:
- published files carry keys the metric does not use (VGG16's ``classifier.*``, Inception's
  ``fc.*`` and old BatchNorm ``num_batches_tracked`` counters): they are dropped by name, and
  every remaining key and shape must still match exactly;
- torch-hub files publish only the first 8 hex digits of their sha256 in the file name
  (``vgg16-397923af.pth``): a spec's ``sha256`` may be such a prefix and is checked as one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from fpsynth.seeds import torch_generator
from fpsynth.weights import LoadRecord, WeightSpec, load_into

M = TypeVar("M", bound=nn.Module)


@dataclasses.dataclass(frozen=True)
class MissingNetwork:
    """A metric that was not computed because its network file is not configured or absent.

    The report shows it as missing, naming the file and the config key; it is never replaced
    by another network.
    """

    metric: str  # e.g. "fid", "lpips"
    network: str  # registry name, e.g. "inception-v3-fid"
    config_key: str  # where the user sets the path, e.g. "weights.inception"
    files: tuple[str, ...]  # the file names the network is published under
    source: str  # where to get it
    reason: str  # "not configured" or "file not found: PATH"
    status: str = "missing"

    @property
    def message(self) -> str:
        return (
            f"{self.metric}: {self.network} {self.reason}; set `{self.config_key}` to "
            f"{' or '.join(self.files)} (from {self.source})"
        )

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "files": list(self.files), "message": self.message}


def missing_network(
    metric: str, spec: WeightSpec, path: Path | None, random_init: tuple[str, ...] = ()
) -> MissingNetwork | None:
    """None when ``spec``'s network can be built (file present, or random init allowed), else why not."""
    if path is None:
        if spec.name in random_init:
            return None
        reason = "not configured"
    elif Path(path).expanduser().is_file():
        return None
    else:
        reason = f"file not found: {path}"
    return MissingNetwork(metric, spec.name, spec.config_key, spec.files, spec.source, reason)


def build_on_meta(factory: Callable[[], M]) -> M:
    """Construct a module without allocating or initialising it (storage is filled afterwards)."""
    with torch.device("meta"):
        module = factory()
    return module.to_empty(device="cpu")


def seeded_init_(module: nn.Module, seed: int) -> None:
    """Deterministic random weights from ``seed`` (He-normal convolutions/linears, identity norms)."""
    gen = torch_generator(seed, "weights-init")
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and tensor.dim() > 1:
                nn.init.kaiming_normal_(tensor, nonlinearity="relu", generator=gen)
            elif leaf in ("weight", "running_var"):  # norm scales and variances
                tensor.fill_(1.0)
            else:  # biases, running means, counters
                tensor.zero_()


def load_network(
    module: M,
    spec: WeightSpec,
    path: Path | None,
    random_init: tuple[str, ...] = (),
    *,
    drop: Callable[[str], bool] = lambda key: False,
    verify_checksum: bool = True,
    seed: int = 0,
) -> tuple[M, LoadRecord]:
    """Fill ``module`` (built by :func:`build_on_meta`) from ``spec``'s file, strictly.

    Keys for which ``drop(key)`` is true are discarded from the file first; every other key of
    the file and of the module must match by name and shape. With no file and ``spec.name`` in
    ``random_init`` the module gets :func:`seeded_init_` weights instead. Returns the module in
    eval mode with gradients off for its parameters, and what was loaded.
    """
    record = load_into(module, spec, path, random_init, drop=drop, verify_checksum=verify_checksum)
    if record.random_init:
        seeded_init_(module, seed)
    return _frozen(module), record


def _frozen(module: M) -> M:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module

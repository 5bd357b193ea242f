"""Profiles: named sets of the model and sampler switches where the paper and the authors' code differ.

``fpsynth`` (the default) is the paper wherever it speaks and the authors' code where it is silent.
``ccfexp-authors`` and ``dcface-authors`` compute what the authors' published code computes, so an
imported ``CCFExp.ckpt`` / ``dcface_*.ckpt`` generates what it generated for them (checked against
their reference outputs, ``tests/test_reference_*.py``). An imported checkpoint carries its profile;
checkpoints, ``metadata.parquet``, the dataset card and the report name it.

| switch                     | paper / fpsynth             | authors' code                  |
|----------------------------|-----------------------------|--------------------------------|
| fusion.query               | Q = F W^Q (Eq. 6)           | raw tokens                     |
| landmark_input             | BGR [0, 1] (its training)   | RGB [-1, 1]                    |
| landmark_tokens            | one token per position      | channel-major buffer reshaped  |
| dcface_stats               | mean and std                | mean and mean - E[x^2]         |
| sampler.direction_eps      | network eps (both)          | network eps                    |
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from fpsynth.models.switches import FusionQuery, PatchStats, TokenLayout, Variant
from fpsynth.nets.config import LandmarkInput

if TYPE_CHECKING:  # the config checks its profile with this module, so only annotations name it
    from fpsynth.models.config import ModelConfig

DEFAULT = "fpsynth"
CCFEXP_AUTHORS = "ccfexp-authors"
DCFACE_AUTHORS = "dcface-authors"

# Field -> value of ModelConfig (``fusion`` fields are nested) for each profile.
_MODEL_SWITCHES: dict[str, dict[str, Any]] = {
    DEFAULT: {},
    CCFEXP_AUTHORS: {
        "fusion.query": FusionQuery.RAW,
        "landmark_input": LandmarkInput.RGB_PM1,
        "landmark_tokens": TokenLayout.VIEW,
    },
    DCFACE_AUTHORS: {"dcface_stats": PatchStats.MEAN_MINUS_SQUARE},
}
PROFILES = tuple(_MODEL_SWITCHES)
# fpsynth's value of every switch a profile may set (the ModelConfig defaults)
_DEFAULTS: dict[str, Any] = {
    "landmark_input": LandmarkInput.BGR_01,
    "landmark_tokens": TokenLayout.TRANSPOSE,
    "dcface_stats": PatchStats.STD,
    "fusion.query": FusionQuery.PROJECTED,
}
CUSTOM = "custom"  # any mix of switches, named as such in every record


def _value(cfg: ModelConfig, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def profile_mismatches(cfg: ModelConfig) -> list[str]:
    """The switches of ``cfg`` that contradict its ``profile`` name ('key: has X, profile sets Y')."""
    if cfg.profile == CUSTOM:
        return []
    if cfg.profile not in _MODEL_SWITCHES:
        return [f"profile: unknown name {cfg.profile!r} (one of {', '.join((*PROFILES, CUSTOM))})"]
    wanted = dict(_DEFAULTS)
    wanted.update(_MODEL_SWITCHES[cfg.profile])
    return [
        f"{k}: has {_value(cfg, k).value}, profile {cfg.profile!r} sets {v.value}"
        for k, v in wanted.items()
        if _value(cfg, k) != v
    ]


def apply_profile(cfg: ModelConfig, name: str) -> ModelConfig:
    """``cfg`` with every switch of profile ``name`` set and ``cfg.profile = name``.

    Switches a profile does not name are reset to fpsynth's defaults, so a profile always means
    the same behaviour whatever ``cfg`` held before. ``custom`` is any mix set by hand.
    """
    if name not in _MODEL_SWITCHES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    changes: dict[str, Any] = {"profile": name}
    fusion = cfg.fusion
    for key, value in {**_DEFAULTS, **_MODEL_SWITCHES[name]}.items():
        if key.startswith("fusion."):
            fusion = dataclasses.replace(fusion, **{key.split(".", 1)[1]: value})
        else:
            changes[key] = value
    return dataclasses.replace(cfg, fusion=fusion, **changes)


def profile_for_variant(variant: Variant) -> str:
    """The authors' profile of a published checkpoint of this variant."""
    return CCFEXP_AUTHORS if variant is Variant.CCFEXP else DCFACE_AUTHORS

"""Key maps from the authors' published checkpoints to fpsynth's CCFExp.

A published Lightning checkpoint's ``state_dict`` holds the authors' Trainer modules. Each source
prefix is either MAPPED onto an fpsynth module (by a prefix rename, sometimes with a per-key table)
or deliberately LEFT with the reason. Any key that is neither is an error naming it: a file that
is not what its kind says never loads half-way.

CCFExp.ckpt (GaoVix/CCFExp, Trainer of ``src/trainer.py``):

| source                                | fpsynth                  | what it is                            |
|---------------------------------------|--------------------------|---------------------------------------|
| ema_model.averaged_model.*            | unet.*                   | the EMA U-Net (generation uses it)    |
| label_mapping.backbone.backbone.*     | id_encoder.backbone.*    | E_ID (trainable IR-50)                |
| label_mapping.pos_emb.0 / scaler.0    | id_encoder.pos_emb/scale | E_ID position table and f_ID scale    |
| id_model.backbone.*                   | id_net.*                 | F_ID (frozen, expression deviation)   |
| face_model.backbone.*                 | face_net.*               | F_Face (frozen)                       |
| landmark_detector.*                   | landmark_net.*           | E_LM / D_LM (frozen MobileFaceNet)    |
| emotion_adapter.*                     | exp_adapter.conv.*       | Conv1d(1, 49, 1)                      |
| condition_adapter.att_{id,em,lm}.*    | fusion.att.{id,exp,lm}.* | cross-fusion (Condition_Adapter)      |
| cross_attn_adapter.*                  | context_proj.*           | the shared Conv1d D -> 2C             |

Left: ``model.*`` (the non-EMA U-Net copy; the authors generate with the EMA copy) and
``recognition_model.*`` (the identity-loss IR-50, adaface_ir50_casia like id_model: fpsynth's
identity loss uses id_net).

dcface_3x3.ckpt / dcface_5x5.ckpt (mk-minchul/dcface): the U-Net and ``label_mapping`` as above,
``recognition_model.backbone.*`` -> id_net (frozen; its map after body[2] is the style map),
``external_mapping.*`` -> style_encoder (``fpsynth.models.dcface.AUTHORS_KEYS``) and
``external_mapping.cross_attn_adapter.*`` -> context_proj. Left: ``model.*``,
``recognition_model.center.*`` (class centres of the identity loss, unused here) and
``recognition_model_eval.*`` (an IR-101 used only for the authors' evaluation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from fpsynth.errors import FpsynthError


class MappingError(FpsynthError, ValueError):
    """A published file with keys that belong nowhere, or without keys its kind must have."""


CCFEXP = "ccfexp"
DCFACE_3X3 = "dcface-3x3"
DCFACE_5X5 = "dcface-5x5"
KINDS = (CCFEXP, DCFACE_3X3, DCFACE_5X5)

NON_EMA = "the non-EMA U-Net copy (generation uses the EMA copy, as the authors' sampler does)"

# (source prefix, fpsynth prefix) in the order they are tried; the longest match wins.
_COMMON = (
    ("ema_model.averaged_model.", "unet."),
    ("label_mapping.backbone.backbone.", "id_encoder.backbone."),
    ("label_mapping.pos_emb.0", "id_encoder.pos_emb"),
    ("label_mapping.scaler.0", "id_encoder.scale"),
)
_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    CCFEXP: _COMMON
    + (
        ("id_model.backbone.", "id_net."),
        ("face_model.backbone.", "face_net."),
        ("landmark_detector.", "landmark_net."),
        ("emotion_adapter.", "exp_adapter.conv."),
        ("condition_adapter.att_id.", "fusion.att.id."),
        ("condition_adapter.att_em.", "fusion.att.exp."),
        ("condition_adapter.att_lm.", "fusion.att.lm."),
        ("cross_attn_adapter.", "context_proj."),
    ),
    "dcface": _COMMON
    + (
        ("recognition_model.backbone.", "id_net."),
        ("external_mapping.cross_attn_adapter.", "context_proj."),
        ("external_mapping.", "style_encoder."),
    ),
}
_LEFT: dict[str, tuple[tuple[str, str], ...]] = {
    CCFEXP: (
        ("model.", NON_EMA),
        (
            "recognition_model.",
            "the identity-loss IR-50 (adaface_ir50_casia, as id_model): fpsynth's identity loss uses id_net",
        ),
    ),
    "dcface": (
        ("model.", NON_EMA),
        ("recognition_model.center.", "class centres of the authors' identity loss (not used by fpsynth)"),
        ("recognition_model_eval.", "the IR-101 of the authors' evaluation (not part of the generator)"),
    ),
}


def _family(kind: str) -> str:
    if kind not in KINDS:
        raise MappingError(f"unknown published kind {kind!r}; expected one of {', '.join(KINDS)}")
    return CCFEXP if kind == CCFEXP else "dcface"


def detect_kind(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """The kind of a published state dict (key -> shape): CCFExp by its fusion keys, the DCFace grid
    by the rows of its style position table."""
    if any(k.startswith("condition_adapter.") for k in shapes):
        return CCFEXP
    table = "external_mapping.pos_emb_0.0"
    if table in shapes:
        rows = shapes[table]
        grid = {10: DCFACE_3X3, 26: DCFACE_5X5}.get(int(rows[0]))
        if grid is None:
            raise MappingError(f"{table} has {rows[0]} rows: neither 1 + 3*3 nor 1 + 5*5 (DCFace's grids)")
        return grid
    raise MappingError(
        "not a published CCFExp or DCFace checkpoint: neither condition_adapter.* nor "
        "external_mapping.pos_emb_0.0 is among its keys"
    )


@dataclasses.dataclass
class Mapped:
    """The result of mapping a published state dict."""

    tensors: dict[str, torch.Tensor]  # fpsynth key -> tensor
    sources: dict[str, str]  # fpsynth key -> source key
    left: dict[str, tuple[int, str]]  # source prefix -> (number of keys, reason)


def _rename(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    best = max((r for r in rules if key.startswith(r[0])), key=lambda r: len(r[0]), default=None)
    return None if best is None else best[1] + key[len(best[0]) :]


def _style_encoder_rename(key: str) -> str:
    """external_mapping.<authors' name> -> style_encoder.<fpsynth name> (fpsynth.models.dcface)."""
    from fpsynth.models.dcface import AUTHORS_KEYS

    suffix = key[len("style_encoder.") :]
    if suffix not in AUTHORS_KEYS:
        raise MappingError(f"external_mapping.{suffix}: no counterpart in fpsynth's DCFace style encoder")
    return "style_encoder." + AUTHORS_KEYS[suffix]


EMA_FOR_TRAINING = "the EMA copy of the U-Net (training starts from the trained copy, as the authors' trainer does)"


def map_published(state: Mapping[str, torch.Tensor], kind: str, unet: str = "ema") -> Mapped:
    """Rename every key of a published ``state_dict``; raise naming any key with no place.

    ``unet="ema"`` takes the EMA U-Net (generation); ``unet="trained"`` the non-EMA copy ``model.*``
    (the starting point of training, ``train.init_from``), leaving the EMA copy instead.
    """
    family = _family(kind)
    renames, lefts = _RENAMES[family], _LEFT[family]
    if unet == "trained":
        renames = tuple((p, q) for p, q in renames if p != "ema_model.averaged_model.") + (("model.", "unet."),)
        lefts = tuple((p, why) for p, why in lefts if p != "model.") + (("ema_model.", EMA_FOR_TRAINING),)
    elif unet != "ema":
        raise ValueError(f"unet must be 'ema' or 'trained', got {unet!r}")
    tensors, sources, stray = {}, {}, []
    left: dict[str, tuple[int, str]] = {}  # prefix -> (tensors left out, why)
    for key, value in state.items():
        reason = next(((p, why) for p, why in lefts if key.startswith(p)), None)
        if reason is not None:
            n, why = left.get(reason[0], (0, reason[1]))
            left[reason[0]] = (n + 1, why)
            continue
        new = _rename(key, renames)
        if new is None:
            stray.append(key)
            continue
        if new.startswith("style_encoder."):
            new = _style_encoder_rename(new)
        if new.endswith("num_batches_tracked"):
            value = value.to(torch.long)
        tensors[new], sources[new] = value, key
    if stray:
        raise MappingError(f"{len(stray)} key(s) of a {kind} checkpoint belong nowhere: {', '.join(stray[:8])}")
    return Mapped(tensors, sources, left)


def check_against(mapped: Mapped, own: Mapping[str, torch.Tensor], kind: str) -> None:
    """Every fpsynth key of the model present with its shape, no mapped key unknown to the model."""
    missing = sorted(set(own) - set(mapped.tensors))
    unexpected = sorted(set(mapped.tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(mapped.tensors) if tuple(own[k].shape) != tuple(mapped.tensors[k].shape))
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append("unexpected " + ", ".join(f"{k} (from {mapped.sources[k]})" for k in unexpected[:8]))
    if wrong:
        problems.append(
            "wrong shape "
            + ", ".join(
                f"{mapped.sources[k]} {tuple(mapped.tensors[k].shape)} vs {k} {tuple(own[k].shape)}" for k in wrong[:8]
            )
        )
    if problems:
        raise MappingError(f"the {kind} checkpoint does not fit fpsynth's model: " + "; ".join(problems))

"""MEEI inputs (``--meei``): the standard set as published, or per-movement clips by name.

Above both :mod:`fpsynth.data.sources` (the walk, the path rules) and
:mod:`fpsynth.data.standard_set` (the published layout), which it chooses between.
"""

from __future__ import annotations

import re
from pathlib import Path

from fpsynth.data.config import MeeiLayout, MovementsConfig, SourcesConfig
from fpsynth.data.reasons import Reason
from fpsynth.data.sources import Found, Kind, slug, walk
from fpsynth.data.standard_set import discover_standard_set, find_sheets, is_standard_set

_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}


def discover_meei(root: Path, cfg: SourcesConfig, movements: MovementsConfig | None = None) -> list[Found]:
    """MEEI inputs: the standard set as published (:mod:`fpsynth.data.standard_set`) or per-movement
    clips named by ``meei_pattern``, as ``sources.meei_layout`` says (auto: by the video names)."""
    tree = walk(root)
    files = tree.files
    layout = cfg.meei_layout
    if layout is MeeiLayout.STANDARD_SET or (layout is MeeiLayout.AUTO and is_standard_set(root, files, cfg)):
        return discover_standard_set(root, files, cfg, movements or MovementsConfig()) + tree.rows("meei")
    sheets = set(find_sheets(files))  # a grades table beside the clips: read by prepare, not an input
    pattern = re.compile(cfg.meei_pattern, re.IGNORECASE)
    found = tree.rows("meei")
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".pts" or path in sheets:
            continue  # a photo's annotation sidecar, a grades spreadsheet
        kind = Kind.VIDEO if suffix in cfg.video_extensions else Kind.PHOTO if suffix in cfg.image_extensions else None
        if kind is None:
            found.append(
                Found(
                    "meei",
                    (path,),
                    reason=Reason.UNSUPPORTED,
                    detail=f"extension '{suffix}' is neither a video nor an image",
                )
            )
            continue
        m = pattern.match(path.relative_to(root).with_suffix("").as_posix())
        if m is None or not m.groupdict().get("subject"):
            found.append(
                Found(
                    "meei",
                    (path,),
                    reason=Reason.PATH_PATTERN,
                    detail="path does not match sources.meei_pattern (<subject>/<expression>[_<side>])",
                )
            )
            continue
        groups = m.groupdict()
        side = groups.get("side")
        found.append(
            Found(
                "meei",
                (path,),
                kind,
                groups["subject"],
                slug(groups.get("expression") or ""),
                _SIDES.get(side.lower()) if side else None,
            )
        )
    return found

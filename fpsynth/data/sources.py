"""Finding the inputs of ``fpsynth prepare`` and what their paths say.

- MEEI-style (``--meei``): ``ROOT/<subject>/<expression>[_<side>].<video or image>``, parsed by
  ``sources.meei_pattern`` (a regex with named groups ``subject``, ``expression``, ``side``); or
  the MEEI standard set as published (one video per participant, photos, an XLSX of grades:
  :mod:`fpsynth.data.standard_set`), chosen by ``sources.meei_layout``.
- AFLFP-style (``--aflfp``): ``ROOT/<subject>/<expression>/<NNN>[_<phase>].<image>`` with an iBUG
  ``.pts`` beside each image; files sorted by name are in temporal order. One expression folder
  is one sequence.
- Plain photos (``--images``): every image below ROOT; the subject is the first folder under
  ROOT, or the file's own name for photos lying directly in ROOT.

Discovery never fails on a bad file: files that fit no layout come back with a reason. A photo
with a ``.pts`` beside it is aligned from that annotation instead of a detector, in every layout.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from pathlib import Path

from fpsynth.data.config import MeeiLayout, MovementsConfig, SourcesConfig
from fpsynth.data.reasons import Reason
from fpsynth.errors import FpsynthError


class SourceError(FpsynthError, FileNotFoundError):
    """An input folder that is missing, not a folder, or holds nothing usable."""


class Kind(str, enum.Enum):
    VIDEO = "video"  # a clip: 32 frames picked from its motion curve
    PHOTO = "photo"  # a single image
    SEQUENCE = "sequence"  # an AFLFP expression folder: annotated images in temporal order


@dataclasses.dataclass(frozen=True)
class Found:
    """A discovered input (original names: private until pseudonymised)."""

    dataset: str  # "meei" | "aflfp" | "images"
    files: tuple[Path, ...]
    kind: Kind | None = None  # None: unusable as found (see reason)
    subject: str | None = None
    expression: str = "unknown"
    side: str | None = None
    phases: tuple[str | None, ...] = ()  # per file, from AFLFP names
    reason: Reason | None = None
    detail: str = ""
    segment: bool = False  # a standard-set video: one participant's whole sequence of movements
    note: tuple[str, str] | None = None  # (reason, detail): a row about a usable input (photo_NN labels)


_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}
_AFLFP_NAME = re.compile(r"^\d+(?:[_-](?P<phase>neutral|onset|mid|development|peak|dissipation))?$", re.IGNORECASE)


def slug(text: str) -> str:
    """Lower-case [a-z0-9_] form of an expression name ('Big Smile' -> 'big_smile')."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unknown"


def _files(root: Path) -> list[Path]:
    """Every visible file below ``root`` (hidden files and folders skipped), sorted.

    Symbolic links to folders are followed (data trees are often assembled from links). Broken
    links are kept: they are inputs the user meant, and reading them yields an "unreadable_file"
    row instead of silence.
    """
    out = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [Path(folder) / n for n in names if not n.startswith(".")]
    return sorted(out)


def files_below(root: Path) -> list[Path]:
    """Every visible file below ``root``, sorted (as discovery sees them)."""
    return _files(Path(root))


def check_root(root: Path, flag: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise SourceError(f"{flag} {root}: folder does not exist")
    if not root.is_dir():
        raise SourceError(f"{flag} {root}: not a folder (give the folder that holds the subject folders)")
    return root


def discover_meei(root: Path, cfg: SourcesConfig, movements: MovementsConfig | None = None) -> list[Found]:
    """MEEI inputs: the standard set as published (:mod:`fpsynth.data.standard_set`) or per-movement
    clips named by ``meei_pattern``, as ``sources.meei_layout`` says (auto: by the video names)."""
    from fpsynth.data.standard_set import discover_standard_set, find_sheets, is_standard_set

    files = _files(root)
    layout = cfg.meei_layout
    if layout is MeeiLayout.STANDARD_SET or (layout is MeeiLayout.AUTO and is_standard_set(root, files, cfg)):
        return discover_standard_set(root, files, cfg, movements or MovementsConfig())
    sheets = set(find_sheets(files))  # a grades table beside the clips: read by prepare, not an input
    pattern = re.compile(cfg.meei_pattern, re.IGNORECASE)
    found = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".pts" or path in sheets:
            continue  # a photo's annotation sidecar, a grades spreadsheet
        kind = Kind.VIDEO if suffix in cfg.video_extensions else Kind.PHOTO if suffix in cfg.image_extensions else None
        if kind is None:
            found.append(Found("meei", (path,), reason=Reason.UNSUPPORTED, detail=f"extension '{suffix}' is neither a video nor an image"))
            continue
        m = pattern.match(path.relative_to(root).with_suffix("").as_posix())
        if m is None or not m.groupdict().get("subject"):
            found.append(Found("meei", (path,), reason=Reason.PATH_PATTERN,
                               detail="path does not match sources.meei_pattern (<subject>/<expression>[_<side>])"))
            continue
        groups = m.groupdict()
        side = groups.get("side")
        found.append(Found("meei", (path,), kind, groups["subject"], slug(groups.get("expression") or ""),
                           _SIDES.get(side.lower()) if side else None))
    return found


def discover_aflfp(root: Path, cfg: SourcesConfig) -> list[Found]:
    groups: dict[tuple[str, str], list[Path]] = {}
    found = []
    for path in _files(root):
        suffix = path.suffix.lower()
        if suffix == ".pts":
            continue
        parts = path.relative_to(root).parts
        if suffix not in cfg.image_extensions:
            found.append(Found("aflfp", (path,), reason=Reason.UNSUPPORTED, detail=f"extension '{suffix}' is not an image"))
        elif len(parts) != 3:
            found.append(Found("aflfp", (path,), reason=Reason.PATH_PATTERN,
                               detail="expected <subject>/<expression>/<NNN>[_<phase>].<image>"))
        else:
            groups.setdefault((parts[0], parts[1]), []).append(path)
    for (subject, expression), files in sorted(groups.items()):
        files.sort(key=lambda p: p.name)
        phases = tuple(_aflfp_phase(p.stem) for p in files)
        found.append(Found("aflfp", tuple(files), Kind.SEQUENCE, subject, slug(expression), phases=phases))
    return found


def _aflfp_phase(stem: str) -> str | None:
    m = _AFLFP_NAME.match(stem)
    phase = m.group("phase").lower() if m and m.group("phase") else None
    return "development" if phase == "mid" else phase


def discover_images(root: Path, cfg: SourcesConfig) -> list[Found]:
    found = []
    for path in _files(root):
        suffix = path.suffix.lower()
        if suffix == ".pts":
            continue
        if suffix not in cfg.image_extensions:
            found.append(Found("images", (path,), reason=Reason.UNSUPPORTED, detail=f"extension '{suffix}' is not an image"))
            continue
        parts = path.relative_to(root).parts
        subject = parts[0] if len(parts) > 1 else path.stem
        found.append(Found("images", (path,), Kind.PHOTO, subject))
    return found


def pts_sidecar(image: Path) -> Path | None:
    """The ``.pts`` beside an image (same stem), if any."""
    for candidate in (image.with_suffix(".pts"), image.with_suffix(".PTS")):
        if candidate.is_file():
            return candidate
    return None

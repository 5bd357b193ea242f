"""The MEEI Facial Palsy Photo and Video Standard Set as published, read by ``--meei DIR``.

The download holds, per participant, ONE video of the whole sequence of movements and 8
expression photos, plus one XLSX of grades. Participants are known by keys that carry their
palsy type and severity category (``mildflaccid4``, ``nearnormalflaccid3``,
``synkinetic_complete5``, ``normal2``): the key is the subject.

Accepted as it comes: videos and photos side by side in one folder (``DIR/mildflaccid4.mp4``,
``DIR/mildflaccid4_1.jpg``...) or a folder per participant (``DIR/mildflaccid4/...``), at any
depth (type folders above are fine); the XLSX anywhere below DIR (:func:`find_sheets`). The set
is recognised by its video names (:func:`is_standard_set`); ``sources.meei_layout`` forces it.

- A video's participant is its file name (or its folder's, when the file has a generic name);
  the video is cut into movements (``Found.segment``, :mod:`fpsynth.data.session`).
- A photo belongs to the participant whose key starts its name (the longest one), else to its
  folder's participant. The rest of the name gives the expression when it is a word
  (``mildflaccid4_smile.jpg``); numbered photos (``_1`` ... ``_8``) take the movements list in
  their numeric order when there are as many as the list has names; otherwise they are
  ``photo_01``... in that order and a ``movement_count`` row says so (never a guessed label).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from fpsynth.data.config import MEEI_PATTERN, MovementsConfig, SourcesConfig
from fpsynth.data.grades import SHEET_SUFFIXES
from fpsynth.data.reasons import Reason
from fpsynth.data.scores import GRADED, norm
from fpsynth.data.sources import Found, Kind, slug

# Severity words of the keys (the paper's categories without their dash), longest first:
# "nearnormal" before "normal".
_CATEGORIES = tuple(sorted(((c.replace("-", ""), c) for c in GRADED), key=lambda wc: -len(wc[0])))
# Palsy-type words: "nonflaccid" (the paper's other name for synkinetic) before "flaccid".
_TYPES = (
    ("nonflaccid", "synkinetic"),
    ("synkinetic", "synkinetic"),
    ("synkinesis", "synkinetic"),
    ("flaccid", "flaccid"),
)


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    palsy_type: str  # flaccid | synkinetic | normal | unknown
    category: str | None  # the severity word of the key (near-normal, mild, ...); None when it has none


def parse_key(key: str) -> KeyInfo:
    """Palsy type and severity category written in a participant key (case, digits and
    separators ignored): ``synkinetic_complete5`` -> (synkinetic, complete)."""
    letters = re.sub(r"[^a-z]", "", key.lower())
    palsy = "unknown"
    for word, kind in _TYPES:
        if word in letters:
            palsy, letters = kind, letters.replace(word, "", 1)
            break
    category = next((name for word, name in _CATEGORIES if word in letters), None)
    if palsy == "unknown" and category == "normal" and letters.strip() in ("normal", "normals"):
        palsy = "normal"  # a normal participant (normal3); "nearnormal3" alone stays unknown
    if palsy == "unknown" and letters in ("control", "controls"):
        palsy, category = "normal", "normal"
    return KeyInfo(palsy, category)


def looks_like_key(name: str) -> bool:
    """A participant key: a palsy type or 'normal' in it and a number at its end."""
    return bool(re.search(r"\d$", name)) and parse_key(name).palsy_type != "unknown"


def is_standard_set(root: Path, files: list[Path], cfg: SourcesConfig) -> bool:
    """Whether a tree is the published set: some video is named like a key (``mildflaccid4.mp4``).

    Subject folders named like keys are not enough (clips ``flaccid3/smile.mp4`` stay clips), and
    a ``meei_pattern`` of one's own says the tree is clips named by it. Set
    ``sources.meei_layout = "standard_set"`` for a set whose videos have other names.
    """
    if cfg.meei_pattern != MEEI_PATTERN:
        return False
    return any(p.suffix.lower() in cfg.video_extensions and looks_like_key(p.stem) for p in files)


def find_sheets(files: list[Path]) -> list[Path]:
    """The spreadsheets among ``files`` (Excel's '~$' lock files are not)."""
    return [p for p in files if p.suffix.lower() in SHEET_SUFFIXES and not p.name.startswith("~$")]


def _remainder(stem: str, key: str) -> str | None:
    """What follows ``key`` at the start of ``stem`` (case and separators ignored), or None."""
    want, got, pos = norm(key), "", 0
    while pos < len(stem) and len(got) < len(want):
        ch = stem[pos].lower()
        if ch.isalnum():
            got += ch
        pos += 1
    if got != want:
        return None
    rest = stem[pos:]
    if want and want[-1].isdigit() and rest[:1].isdigit():
        return None  # mildflaccid12 is not a photo of mildflaccid1
    return rest.strip(" _-.")


def discover_standard_set(root: Path, files: list[Path], cfg: SourcesConfig, movements: MovementsConfig) -> list[Found]:
    found: list[Found] = []
    keys: dict[str, str] = {}  # norm(key) -> the key as first written (a video's name wins)
    videos, photos = [], []
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".pts" or path in find_sheets([path]):
            continue
        if suffix in cfg.video_extensions:
            folder = path.parent.name if path.parent != root else None
            generic = folder and not looks_like_key(path.stem) and looks_like_key(folder)
            key = folder if generic and folder else path.stem
            keys.setdefault(norm(key), key)
            videos.append((path, key))
        elif suffix in cfg.image_extensions:
            photos.append(path)
        else:
            found.append(
                Found(
                    "meei",
                    (path,),
                    reason=Reason.UNSUPPORTED,
                    detail=f"extension '{suffix}' is neither a video, an image nor a spreadsheet",
                )
            )
    for path, key in videos:
        found.append(Found("meei", (path,), Kind.VIDEO, keys[norm(key)], "video", segment=True))
    by_participant: dict[str, list[tuple[Path, str]]] = {}
    for path in photos:
        key, rest = _photo_key(path, root, keys)
        keys.setdefault(norm(key), key)
        by_participant.setdefault(keys[norm(key)], []).append((path, rest))
    for key, items in by_participant.items():
        found += _photos_of(key, items, movements)
    return found


def _photo_key(path: Path, root: Path, keys: dict[str, str]) -> tuple[str, str]:
    """(participant key, rest of the name) of a photo."""
    for k in sorted(keys, key=len, reverse=True):
        rest = _remainder(path.stem, k)
        if rest is not None:
            return keys[k], rest
    if path.parent != root and looks_like_key(path.parent.name):  # DIR/<key>/<anything>.jpg
        rest = _remainder(path.stem, path.parent.name)
        return path.parent.name, path.stem if rest is None else rest
    m = re.match(r"^(?P<key>.*?\d+)[ _-]+(?P<rest>[^ _-]+)$", path.stem)  # key_3, key-smile
    return (m.group("key"), m.group("rest")) if m else (path.stem, "")


def _photos_of(key: str, items: list[tuple[Path, str]], movements: MovementsConfig) -> list[Found]:
    """Found photos of one participant, with their expressions (see the module's notes)."""
    named = [(p, r) for p, r in items if r and not r.isdigit()]
    numbered = sorted(
        ((p, r) for p, r in items if not r or r.isdigit()), key=lambda pr: (int(pr[1]) if pr[1] else -1, pr[0].name)
    )
    out = [Found("meei", (p,), Kind.PHOTO, key, slug(r)) for p, r in named]
    if len(numbered) == len(movements.names):
        return out + [Found("meei", (p,), Kind.PHOTO, key, name) for (p, _), name in zip(numbered, movements.names)]
    note = None
    for k, (p, _) in enumerate(numbered, start=1):
        if k == 1:
            note = (
                Reason.MOVEMENT_COUNT.value,
                f"{len(movements.names)} numbered photos expected per participant (one per entry of "
                f"prepare.movements.names), found {len(numbered)}: labelled photo_01..photo_{len(numbered):02d} "
                "in name order, not named",
            )
        out.append(Found("meei", (p,), Kind.PHOTO, key, f"photo_{k:02d}", note=note if k == 1 else None))
    return out

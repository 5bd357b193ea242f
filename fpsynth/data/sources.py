"""Finding the inputs of ``fpsynth prepare`` and what their paths say.

- MEEI-style (``--meei``): ``ROOT/<subject>/<expression>[_<side>].<video or image>``, parsed by
  ``sources.meei_pattern`` (a regex with named groups ``subject``, ``expression``, ``side``); or
  the MEEI standard set as published (one video per participant, photos, an XLSX of grades:
  :mod:`fpsynth.data.standard_set`), chosen by ``sources.meei_layout`` (:mod:`fpsynth.data.meei`).
- AFLFP-style (``--aflfp``): ``ROOT/<subject>/<expression>/<NNN>[_<phase>].<image>`` with an iBUG
  ``.pts`` beside each image; files sorted by name are in temporal order. One expression folder
  is one sequence.
- Plain photos (``--images``): every image below ROOT; the subject is the first folder under
  ROOT, or the file's own name for photos lying directly in ROOT.

Discovery never fails on a bad file: files that fit no layout come back with a reason. A photo
with a ``.pts`` beside it is aligned from that annotation instead of a detector, in every layout.
The walk (:func:`walk`) takes each real file once and never opens one: links are followed but no
folder twice, special files and folders of fpsynth outputs come back as reason rows, and
:func:`take_once` keeps a file given under two flags in the first one's input only.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import stat
from pathlib import Path

from fpsynth.data.config import SourcesConfig
from fpsynth.data.reasons import Reason
from fpsynth.errors import FpsynthError
from fpsynth.outputs import read_record


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


_AFLFP_NAME = re.compile(r"^\d+(?:[_-](?P<phase>neutral|onset|mid|development|peak|dissipation))?$", re.IGNORECASE)


def slug(text: str) -> str:
    """Lower-case [a-z0-9_] form of an expression name ('Big Smile' -> 'big_smile')."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unknown"


FileId = tuple[int, int]  # (st_dev, st_ino): one real file or folder, whatever the path to it


# Why the walk leaves a path out (Walk.rows)
_SPECIAL = "a FIFO, socket or device, not a regular file: never opened"
_DUPLICATE = "the same file as another input below this folder (a link): taken once"
_STAGE_FOLDER = "a folder of fpsynth outputs (it holds a stage.json): its files are not inputs"


@dataclasses.dataclass(frozen=True)
class Walk:
    """What lies below an input folder, each real file and folder taken once.

    Folders are walked in rounds by the number of folder links on the way: every folder reachable
    without a link is walked before any link is followed, and a link to a folder walked
    already (a loop, or a second way into the tree) is not followed. So a file's first folder (its
    subject) is the one it really lies in, never a link's name.
    """

    files: list[Path]  # regular files and broken links (a broken link reads as an "unreadable_file" row), sorted
    special: list[Path]  # FIFOs, sockets, devices: listed for a row, never opened
    duplicates: list[Path]  # a second path to a file in `files` (a file link, a hard link)
    stage_folders: list[Path]  # sub-folders holding a fpsynth stage record: outputs, not inputs

    def rows(self, dataset: str) -> list[Found]:
        """A reason row for each path the walk left out on purpose."""
        return [
            Found(dataset, (p,), reason=reason, detail=detail)
            for paths, reason, detail in (
                (self.special, Reason.SPECIAL_FILE, _SPECIAL),
                (self.duplicates, Reason.DUPLICATE, _DUPLICATE),
                (self.stage_folders, Reason.STAGE_FOLDER, _STAGE_FOLDER),
            )
            for p in paths
        ]


def walk(root: Path) -> Walk:
    """Every visible file below ``root`` (hidden files and folders skipped), each real one once.

    Links are followed (data trees are often assembled from them) but never twice to one folder,
    so a link loop ends. A folder holding a fpsynth stage record (a workspace's ``prepare/``,
    ``generate/``... anywhere in the tree) is not walked. Special files are listed apart, so that
    nothing opens a FIFO (which blocks) or a device.
    """
    root = Path(root)
    walked: set[FileId] = set()
    found: dict[FileId, list[tuple[int, bool, Path]]] = {}  # file id -> (link depth, via a file link, path)
    files, special, stage_folders = [], [], []
    frontier, depth = [root], 0
    while frontier:
        links: list[Path] = []  # folder links met at this depth: followed at the next
        stack = sorted(frontier, reverse=True)
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError:  # vanished or unreadable folder: nothing below it can be read
                continue
            if (st.st_dev, st.st_ino) in walked:
                continue
            walked.add((st.st_dev, st.st_ino))
            if folder != root and _is_stage_folder(folder):
                stage_folders.append(folder)
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                try:
                    target = entry.stat()  # follows links
                except OSError:  # a broken link: kept, so that reading it yields a row
                    files.append(path)
                    continue
                if stat.S_ISDIR(target.st_mode):
                    (links if entry.is_symlink() else stack).append(path)
                elif stat.S_ISREG(target.st_mode):
                    found.setdefault((target.st_dev, target.st_ino), []).append((depth, entry.is_symlink(), path))
                else:
                    special.append(path)
        frontier, depth = links, depth + 1
    duplicates = []
    for paths in found.values():
        first, *others = sorted(paths)  # the path with the fewest links wins
        files.append(first[2])
        duplicates += [p for _, _, p in others]
    return Walk(sorted(files), sorted(special), sorted(duplicates), sorted(stage_folders))


def _is_stage_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a fpsynth stage record (a JSON object naming its stage and fingerprint)."""
    data = read_record(folder, max_bytes=1 << 20)  # an input tree may hold anything named stage.json
    return data is not None and "stage" in data and "fingerprint" in data


def files_below(root: Path) -> list[Path]:
    """Every visible file below ``root``, sorted (as discovery sees them)."""
    return walk(Path(root)).files


def check_root(root: Path, flag: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise SourceError(f"{flag} {root}: folder does not exist")
    if not root.is_dir():
        raise SourceError(f"{flag} {root}: not a folder (give the folder that holds the subject folders)")
    return root


def check_roots(roots: dict[str, Path], workspace: Path) -> dict[str, Path]:
    """:func:`check_root` of each ``{flag name: folder}``, and no input folder holding the workspace
    or lying in the prepare stage folder (its outputs would be read as inputs, or deleted as stale
    crops). Refused up front, before anything is read or written."""
    checked = {name: check_root(path, f"--{name}") for name, path in roots.items()}
    ws = Path(workspace).expanduser().resolve()
    for name, root in checked.items():
        real = root.resolve()
        if ws == real or real in ws.parents:
            raise SourceError(
                f"--{name} {root}: the workspace {workspace} lies inside it, so prepare would read its own "
                f"outputs as inputs; give a workspace outside the input folders (-w ../workspace), or move "
                f"the inputs into a sub-folder and give that"
            )
        if ws / "prepare" == real or ws / "prepare" in real.parents:
            raise SourceError(
                f"--{name} {root}: lies inside the prepare stage folder {Path(workspace) / 'prepare'}, whose "
                f"crops prepare replaces; copy the inputs elsewhere, or use another workspace"
            )
    return checked


def take_once(found: list[Found]) -> list[Found]:
    """Each real file in one found input only (the first, in order: ``--meei``, ``--aflfp``,
    ``--images``); a later path to a file already taken (one folder given to two flags, or a
    link from one tree into another) becomes a ``duplicate_file`` row of its own."""
    taken: set[FileId] = set()
    out = []
    for f in found:
        if f.kind is None:
            out.append(f)
            continue
        keep: list[int] = []
        dups: list[int] = []
        for i, path in enumerate(f.files):
            try:
                st = os.stat(path)
                file_id = (st.st_dev, st.st_ino)
            except OSError:  # unreadable: its own row comes from reading it
                keep.append(i)
                continue
            (dups if file_id in taken else keep).append(i)
            taken.add(file_id)
        if keep:
            out.append(
                f
                if not dups
                else dataclasses.replace(
                    f,
                    files=tuple(f.files[i] for i in keep),
                    phases=tuple(f.phases[i] for i in keep) if f.phases else (),
                )
            )
        out += [
            Found(
                f.dataset,
                (f.files[i],),
                reason=Reason.DUPLICATE,
                detail="the same file as an input taken already (a folder given twice, or a link): taken once",
            )
            for i in dups
        ]
    return out


def discover_aflfp(root: Path, cfg: SourcesConfig) -> list[Found]:
    groups: dict[tuple[str, str], list[Path]] = {}
    tree = walk(root)
    found = tree.rows("aflfp")
    for path in tree.files:
        suffix = path.suffix.lower()
        if suffix == ".pts":
            continue
        parts = path.relative_to(root).parts
        if suffix not in cfg.image_extensions:
            found.append(
                Found("aflfp", (path,), reason=Reason.UNSUPPORTED, detail=f"extension '{suffix}' is not an image")
            )
        elif len(parts) != 3:
            found.append(
                Found(
                    "aflfp",
                    (path,),
                    reason=Reason.PATH_PATTERN,
                    detail="expected <subject>/<expression>/<NNN>[_<phase>].<image>",
                )
            )
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
    tree = walk(root)
    found = tree.rows("images")
    for path in tree.files:
        suffix = path.suffix.lower()
        if suffix == ".pts":
            continue
        if suffix not in cfg.image_extensions:
            found.append(
                Found("images", (path,), reason=Reason.UNSUPPORTED, detail=f"extension '{suffix}' is not an image")
            )
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

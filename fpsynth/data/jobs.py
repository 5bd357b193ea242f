"""What every kind of job shares: its context, its result, and the rows and crops it makes.

The per-kind handlers (photos and annotated sequences in :mod:`fpsynth.data.process`, videos in
:mod:`fpsynth.data.clip`, movement sessions in :mod:`fpsynth.data.session`) build on this module,
which imports none of them. Crops are written atomically under deterministic names, so a job
that is killed and redone leaves exactly what an uninterrupted run leaves.
"""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path
from typing import Any

import numpy as np

from fpsynth.data.align import Aligned
from fpsynth.data.codec import encode_png
from fpsynth.data.config import PrepareConfig
from fpsynth.data.faces import FaceBackend, get_backend
from fpsynth.data.pseudonyms import Job
from fpsynth.data.quality import Quality
from fpsynth.data.sources import Found
from fpsynth.errors import FpsynthError
from fpsynth.stage import atomic_write_bytes

CROPS_DIR = "crops"


class CropWriteError(FpsynthError):
    """A crop could not be written (disk full, read-only, no permission, I/O error): the machine's
    state, not the input's, so the run stops and the job stays unfinished for the rerun."""


_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full: free space",
    errno.EDQUOT: "the disk quota is used up: free space",
    errno.EROFS: "the file system is read-only: give a writable workspace (-w)",
    errno.EACCES: "no permission to write there: fix the folder's permissions or give another workspace (-w)",
    errno.EPERM: "no permission to write there: fix the folder's permissions or give another workspace (-w)",
    errno.EIO: "the disk reported an I/O error: check it",
    errno.ENOTDIR: "a file stands where a folder of crops belongs: move it away",
    errno.EEXIST: "a file stands where a folder of crops belongs: move it away",
}


@dataclasses.dataclass(frozen=True)
class Context:
    cfg: PrepareConfig
    out_dir: Path  # the stage folder; crops go to out_dir / crops / <subject> / <input> / NNNNN.png
    dlib_models: Path | None = None

    def backend(self) -> FaceBackend:
        return get_backend(self.cfg.faces, self.dlib_models)


@dataclasses.dataclass(frozen=True)
class Face68:
    """Where a crop's landmarks came from and what the detector said."""

    landmarks: np.ndarray  # (68, 2) source pixels
    bbox: np.ndarray  # (4,) source pixels (landmark extent for annotations)
    source: str  # "detected" | "tracked" | "still" (last fit kept, data/still.py) | "annotation"
    det_score: float | None = None
    n_faces: int | None = None


@dataclasses.dataclass(frozen=True)
class Result:
    frames: list[dict[str, Any]]
    rejects: list[dict[str, Any]]


# --------------------------------------------------------------------------- rows


def unusable_row(input_id: str, found: Found) -> dict[str, Any]:
    """The rejects row of an input discovery could not use (it never became a job: no subject)."""
    assert found.reason is not None  # discovery gives every input it cannot use a reason
    return {
        "input": input_id,
        "dataset": found.dataset,
        "subject": None,
        "frame_start": None,
        "frame_end": None,
        "reason": found.reason.value,
        "detail": found.detail,
    }


def reject_row(job: Job, reason: str, detail: str, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    return {
        "input": job.input,
        "dataset": job.dataset,
        "subject": job.subject,
        "frame_start": start,
        "frame_end": start if end is None else end,
        "reason": reason,
        "detail": detail,
    }


def crop_path(job: Job, index: int, clip: str | None = None) -> str:
    """Crop location relative to the stage folder (``clip``: a movement of the job, default the job)."""
    return f"{CROPS_DIR}/{job.subject}/{clip or job.input}/{index:05d}.png"


def write_crop(ctx: Context, rel: str, crop: np.ndarray) -> None:
    data = encode_png(crop, ctx.cfg.png_compression)
    path = ctx.out_dir / rel
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # never a reject row: the input is fine, and the rerun must retry it
        what = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        advice = _WRITE_ADVICE.get(exc.errno or 0, "fix the cause")
        raise CropWriteError(
            f"prepare stopped: cannot write the crop {path} ({exc.strerror or exc}, {what}); "
            f"{advice}, then run the same command again: it redoes only the unfinished inputs"
        ) from None


def frame_row(
    job: Job,
    index: int,
    aligned: Aligned,
    face: Face68,
    q: Quality,
    size: tuple[int, int],
    time_s: float | None = None,
    phase: str | None = None,
    motion: float | None = None,
    clip: str | None = None,
    expression: str | None = None,
) -> dict[str, Any]:
    """One frames-manifest row (subject-level fields: severity, scores and split, come later).

    ``clip`` and ``expression``: those of a movement cut from the job's video (default: the job's).
    """
    clip = clip or job.input
    return {
        "frame_id": f"{clip}-{index:05d}",
        "path": crop_path(job, index, clip),
        "subject": job.subject,
        "dataset": job.dataset,
        "kind": job.kind.value,
        "clip": clip,
        "expression": expression or job.expression,
        "side": job.side,
        "frame_index": index,
        "time_s": time_s,
        "phase": phase,
        "motion": motion,
        "landmarks": aligned.landmarks.reshape(-1).astype(np.float32),
        "bbox": np.asarray(face.bbox, np.float32),
        "affine": aligned.matrix.reshape(-1).astype(np.float32),
        "landmark_source": face.source,
        "det_score": face.det_score,
        "n_faces": face.n_faces,
        "blur": q.blur,
        "interocular": q.interocular,
        "yaw": q.yaw,
        "width": size[1],
        "height": size[0],
    }

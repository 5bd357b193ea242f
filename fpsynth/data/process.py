"""One job (a photo, an annotated sequence, a clip) -> aligned crops on disk + manifest rows.

:func:`run_job` is what the worker processes execute. It returns plain row dicts (frames and
rejects) and writes only crops, atomically, under deterministic names, so a job that is killed
and redone leaves exactly what an uninterrupted run leaves. Rows hold pseudonyms only; the
original paths stay inside the job.
"""

from __future__ import annotations

import dataclasses
import errno
import traceback
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fpsynth.data.align import Aligned, align
from fpsynth.data.config import PrepareConfig
from fpsynth.data.faces import FaceBackend, detect_faces, get_backend
from fpsynth.data.images import read_image
from fpsynth.data.motion import label_phases, motion_curve
from fpsynth.data.privacy import Job
from fpsynth.data.pts import check_in_frame, read_pts
from fpsynth.data.quality import Quality, assess, check, dominant_face
from fpsynth.data.reasons import Reason, Rejected
from fpsynth.data.sources import Kind, pts_sidecar
from fpsynth.errors import FpsynthError
from fpsynth.stage import atomic_write_bytes

CROPS_DIR = "crops"
INTERNAL_ERROR = "internal_error"  # a bug met on this input; the run goes on and the row says so


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


def run_job(job: Job, ctx: Context) -> Result:
    """Process one job; bad input becomes rejects rows, never an exception."""
    result = _run(job, ctx)
    if job.note is not None:
        result.rejects.append(reject_row(job, *job.note))
    return result


def _run(job: Job, ctx: Context) -> Result:
    try:
        if job.kind is Kind.VIDEO:
            from fpsynth.data.clip import process_clip

            return process_clip(job, ctx)
        if job.kind is Kind.SEQUENCE:
            return _process_sequence(job, ctx)
        return _process_photo(job, ctx)
    except Rejected as r:
        return Result([], [reject_row(job, r.reason.value, r.detail)])
    except FpsynthError:  # the set-up is wrong (a backend's files, say), not this input: stop the run
        raise
    except Exception as exc:  # noqa: BLE001 - one bad input must not end a long run; the row says what happened
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        for path in job.files:  # keep original paths out of the shareable manifest
            detail = detail.replace(path, "<input>")
        return Result([], [reject_row(job, INTERNAL_ERROR, detail)])


# --------------------------------------------------------------------------- rows


def reject_row(job: Job, reason: str, detail: str, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    return {"input": job.input, "dataset": job.dataset, "subject": job.subject, "frame_start": start,
            "frame_end": start if end is None else end, "reason": reason, "detail": detail}


def crop_path(job: Job, index: int, clip: str | None = None) -> str:
    """Crop location relative to the stage folder (``clip``: a movement of the job, default the job)."""
    return f"{CROPS_DIR}/{job.subject}/{clip or job.input}/{index:05d}.png"


def write_crop(ctx: Context, rel: str, crop: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, ctx.cfg.png_compression])
    if not ok:  # encoding a valid uint8 array cannot fail short of a broken OpenCV
        raise RuntimeError("PNG encoding failed")
    path = ctx.out_dir / rel
    try:
        atomic_write_bytes(path, buf.tobytes())
    except OSError as exc:  # never a reject row: the input is fine, and the rerun must retry it
        what = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        advice = _WRITE_ADVICE.get(exc.errno, "fix the cause")
        raise CropWriteError(f"prepare stopped: cannot write the crop {path} ({exc.strerror or exc}, {what}); "
                             f"{advice}, then run the same command again: it redoes only the unfinished inputs") from None


def frame_row(job: Job, index: int, aligned: Aligned, face: Face68, q: Quality, size: tuple[int, int],
              time_s: float | None = None, phase: str | None = None, motion: float | None = None,
              clip: str | None = None, expression: str | None = None) -> dict[str, Any]:
    """One frames-manifest row (subject-level fields: severity, scores and split, come later).

    ``clip`` and ``expression``: those of a movement cut from the job's video (default: the job's).
    """
    clip = clip or job.input
    return {
        "frame_id": f"{clip}-{index:05d}", "path": crop_path(job, index, clip), "subject": job.subject,
        "dataset": job.dataset, "kind": job.kind.value, "clip": clip, "expression": expression or job.expression,
        "side": job.side, "frame_index": index, "time_s": time_s, "phase": phase, "motion": motion,
        "landmarks": aligned.landmarks.reshape(-1).astype(np.float32),
        "bbox": np.asarray(face.bbox, np.float32), "affine": aligned.matrix.reshape(-1).astype(np.float32),
        "landmark_source": face.source, "det_score": face.det_score, "n_faces": face.n_faces,
        "blur": q.blur, "interocular": q.interocular, "yaw": q.yaw, "width": size[1], "height": size[0],
    }


# --------------------------------------------------------------------------- photos


def find_face(backend: FaceBackend, rgb: np.ndarray, ctx: Context) -> Face68:
    """The one dominant face of a photo (detector), or :class:`Rejected`."""
    fc = ctx.cfg.faces
    faces = detect_faces(backend, rgb, fc.photo_max_side, fc.photo_upsample)
    face = dominant_face(faces, backend.min_score, ctx.cfg.quality)
    n_faces = sum(f.score >= backend.min_score for f in faces)
    return Face68(face.landmarks, face.bbox, "detected", face.score, n_faces)


def annotated_face(pts: Path, size: tuple[int, int]) -> Face68:
    """The landmarks of a ``.pts`` beside an image of ``size`` (H, W), checked against its frame."""
    lm = check_in_frame(read_pts(pts), size)
    return Face68(lm, np.concatenate([lm.min(0), lm.max(0)]), "annotation")


def _process_photo(job: Job, ctx: Context) -> Result:
    path = Path(job.files[0])
    rgb = read_image(path, ctx.cfg.max_image_pixels)
    pts = pts_sidecar(path)
    face = annotated_face(pts, rgb.shape[:2]) if pts else find_face(ctx.backend(), rgb, ctx)
    aligned = align(rgb, face.landmarks)
    q = assess(face.landmarks, aligned.crop)
    check(q, ctx.cfg.quality)
    write_crop(ctx, crop_path(job, 0), aligned.crop)
    return Result([frame_row(job, 0, aligned, face, q, rgb.shape[:2])], [])


# --------------------------------------------------------------------------- annotated sequences


def _process_sequence(job: Job, ctx: Context) -> Result:
    """AFLFP expression folder: align every annotated image; phases from names, else the curve."""
    kept, rejects = [], []
    for index, file in enumerate(job.files):
        path = Path(file)
        try:
            pts = pts_sidecar(path)
            if pts is None:
                raise Rejected(Reason.MISSING_ANNOTATION, "no .pts with the image's name beside it")
            rgb = read_image(path, ctx.cfg.max_image_pixels)
            face = annotated_face(pts, rgb.shape[:2])
            aligned = align(rgb, face.landmarks)
            q = assess(face.landmarks, aligned.crop)
            check(q, ctx.cfg.quality)
        except Rejected as r:
            rejects.append(reject_row(job, r.reason.value, r.detail, index))
            continue
        kept.append((index, aligned, face, q, rgb.shape[:2]))
    if not kept:
        return Result([], rejects)
    curve, _ = motion_curve(np.stack([k[2].landmarks for k in kept]), ctx.cfg.video)
    inferred = label_phases(curve, ctx.cfg.video)
    rows = []
    for (index, aligned, face, q, size), motion, phase in zip(kept, curve, inferred):
        named = job.phases[index] if index < len(job.phases) else None
        write_crop(ctx, crop_path(job, index), aligned.crop)
        rows.append(frame_row(job, index, aligned, face, q, size, phase=named or phase, motion=float(motion)))
    return Result(rows, rejects)

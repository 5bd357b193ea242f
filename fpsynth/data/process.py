"""One job (a photo, an annotated sequence, a clip) -> aligned crops on disk + manifest rows.

:func:`run_job` is what the worker processes execute. It returns plain row dicts (frames and
rejects) and writes only crops, atomically, under deterministic names, so a job that is killed
and redone leaves exactly what an uninterrupted run leaves. Rows hold pseudonyms only; the
original paths stay inside the job. What the kinds share (context, result, row builders, the
crop writer) is in :mod:`fpsynth.data.jobs`.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np

from fpsynth.data.align import align
from fpsynth.data.faces import FaceBackend, detect_faces
from fpsynth.data.images import read_image
from fpsynth.data.jobs import Context, Face68, Result, crop_path, frame_row, reject_row, write_crop
from fpsynth.data.motion import label_phases, motion_curve
from fpsynth.data.pseudonyms import Job
from fpsynth.data.pts import check_in_frame, read_pts
from fpsynth.data.quality import assess, check, dominant_face
from fpsynth.data.reasons import Reason, Rejected
from fpsynth.data.sources import Kind, pts_sidecar
from fpsynth.errors import FpsynthError

INTERNAL_ERROR = "internal_error"  # a bug met on this input; the run goes on and the row says so


def run_job(job: Job, ctx: Context) -> Result:
    """Process one job; bad input becomes rejects rows, never an exception."""
    result = _run(job, ctx)
    if job.note is not None:
        result.rejects.append(reject_row(job, *job.note))
    return result


def _run(job: Job, ctx: Context) -> Result:
    try:
        if job.kind is Kind.VIDEO and job.segment:  # a session of movements, cut into clips
            from fpsynth.data.session import process_session

            return process_session(job, ctx)
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

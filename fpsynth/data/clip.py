"""A video clip -> its 32 aligned frames, picked from the landmark motion curve.

One decoding pass; about ``analyse_fps`` frames per second are analysed, the others only decoded
(a coarse pass is enough to pick 32 frames). The detector runs on every ``detect_every``-th
analysed frame, on a copy shrunk to ``faces.video_max_side`` (and at photo settings when that
finds nothing, for small faces); between detections the 68 landmarks are refitted in a box
carried along from the previous frame's landmarks (tracking), which costs about a millisecond. Every analysed frame is
aligned and gated on quality; the motion curve and phases come from the frames that pass, and
only the picked frames are written. Rejected frames are reported as runs of equal reason.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from fpsynth.data.align import Aligned, align
from fpsynth.data.config import VideoConfig
from fpsynth.data.faces import FaceBackend, box_anchor, box_from_landmarks, detect_faces
from fpsynth.data.motion import label_phases, motion_curve, pick_frames
from fpsynth.data.privacy import Job
from fpsynth.data.process import Context, Face68, Result, crop_path, frame_row, reject_row, write_crop
from fpsynth.data.quality import Quality, assess, check, dominant_face
from fpsynth.data.reasons import Reason, Rejected
from fpsynth.data.video import VideoDecoder


@dataclasses.dataclass(frozen=True)
class Candidate:
    index: int
    face: Face68
    aligned: Aligned
    quality: Quality


class _Tracker:
    """Landmarks of one face across frames: detector every n frames, refit in a carried box between."""

    def __init__(self, backend: FaceBackend, ctx: Context) -> None:
        self.backend, self.ctx = backend, ctx
        self.every = ctx.cfg.video.detect_every
        self.since = self.every  # detect on the first frame
        self.face: Face68 | None = None  # the last frame's face (None: lost)
        self.anchor: np.ndarray | None = None
        self.lost: Rejected | None = None  # why the last detection found no usable face

    def step(self, rgb: np.ndarray) -> Face68:
        """Face of this frame, or :class:`Rejected` (the last detection's reason while lost)."""
        if self.since >= self.every:
            self.since = 0
            self._detect(rgb)
        self.since += 1
        if self.face is None:
            raise self.lost or Rejected(Reason.NO_FACE)
        if self.face.source == "detected" and self.since == 1:
            return self.face
        bbox = box_from_landmarks(self.face.landmarks, self.anchor)
        self.face = Face68(self.backend.landmarks(rgb, bbox), bbox, "tracked", self.face.det_score, self.face.n_faces)
        return self.face

    def _detect(self, rgb: np.ndarray) -> None:
        fc = self.ctx.cfg.faces
        faces = detect_faces(self.backend, rgb, fc.video_max_side, fc.video_upsample)
        if not any(f.score >= self.backend.min_score for f in faces):  # small face? search as for a photo
            faces = detect_faces(self.backend, rgb, fc.photo_max_side, fc.photo_upsample)
        try:
            best = dominant_face(faces, self.backend.min_score, self.ctx.cfg.quality)
        except Rejected as r:
            self.face, self.lost = None, r
            return
        n_faces = sum(f.score >= self.backend.min_score for f in faces)
        self.face = Face68(best.landmarks, best.bbox, "detected", best.score, n_faces)
        self.anchor = box_anchor(best.landmarks, best.bbox)
        self.lost = None


def process_clip(job: Job, ctx: Context) -> Result:
    vc = ctx.cfg.video
    decoder = VideoDecoder(Path(job.files[0]))
    info = decoder.info
    stride = analysis_stride(info.fps, min(info.frame_count, vc.max_frames or info.frame_count), vc)
    tracker = _Tracker(ctx.backend(), ctx)
    candidates: list[Candidate] = []
    failures: list[tuple[int, Rejected]] = []
    size = (info.height, info.width)
    for index, rgb in decoder.frames(lambda i: i % stride == 0, vc.max_frames):
        size = rgb.shape[:2]
        try:
            face = tracker.step(rgb)
            aligned = align(rgb, face.landmarks)
            q = assess(face.landmarks, aligned.crop)
            check(q, ctx.cfg.quality)
        except Rejected as r:
            failures.append((index, r))
            continue
        candidates.append(Candidate(index, face, aligned, q))
    if decoder.decoded == 0:
        raise Rejected(Reason.NO_FRAMES, "the file opens as a video but no frame decodes")

    rejects = [reject_row(job, reason, detail, a, b) for a, b, reason, detail in _runs(failures, stride)]
    short = decoder.shortfall(vc.max_frames)
    if short:
        rejects.append(reject_row(job, Reason.TRUNCATED.value,
                                  f"decoding stopped after {decoder.decoded} of {info.frame_count} frames; "
                                  "the decoded frames were used", *short))
    if not candidates:
        return Result([], rejects)

    curve, _ = motion_curve(np.stack([c.face.landmarks for c in candidates]), vc)
    phases = label_phases(curve, vc)
    rows = []
    for k in pick_frames(phases, vc.quota):
        c = candidates[k]
        write_crop(ctx, crop_path(job, c.index), c.aligned.crop)
        rows.append(frame_row(job, c.index, c.aligned, c.face, c.quality, size, time_s=info.time_of(c.index),
                              phase=phases[k], motion=float(curve[k])))
    return Result(rows, rejects)


def analysis_stride(fps: float, n_frames: int, vc: VideoConfig) -> int:
    """Analyse every k-th frame: about ``analyse_fps`` per second, at most ``max_analysed_frames``,
    but at least 2 x the quota of frames when the clip has them."""
    stride = max(1, round(fps / vc.analyse_fps)) if vc.analyse_fps and fps > 0 else 1
    if n_frames > 0:
        stride = max(stride, math.ceil(n_frames / vc.max_analysed_frames))
        stride = min(stride, max(1, n_frames // (2 * vc.quota.total)))
    return stride


def _runs(failures: list[tuple[int, Rejected]], stride: int) -> list[tuple[int, int, str, str]]:
    """Consecutive analysed frames failing for the same reason -> (first, last, reason, detail)."""
    runs: list[list] = []
    for index, r in failures:
        if runs and runs[-1][2] == r.reason.value and index - runs[-1][1] == stride:
            runs[-1][1] = index
        else:
            runs.append([index, index, r.reason.value, r.detail])
    return [(a, b, reason, detail if a == b else f"{detail} (first of frames {a}-{b})") for a, b, reason, detail in runs]

"""A video clip -> its 32 aligned frames, picked from the landmark motion curve.

One decoding pass; about ``analyse_fps`` frames per second are analysed, the others only decoded
(a coarse pass is enough to pick 32 frames). The detector runs on every ``detect_every``-th
analysed frame: near the tracked face (a window around it at the detector's scale), on the whole
frame shrunk to ``faces.video_max_side`` every ``WHOLE_FRAME_EVERY``-th time or when that finds
nothing, and at photo settings when that finds nothing either (small faces); a face lost is
searched for every ``LOST_EVERY``-th analysed frame. Between detections
the 68 landmarks are refitted in a box carried along from the previous frame's landmarks
(tracking, about a millisecond), and a jump of the tracked points calls the detector at once.
A frame whose face region has not changed since the last fitted frame (repeated frames of an
edited video; :mod:`fpsynth.data.still`) keeps that frame's landmarks without a fit.
Every analysed frame is aligned and gated on quality; the motion curve and phases come from the
frames that pass, and only the picked frames are written. Rejected frames are reported as runs
of equal reason. The picked frames' crops are written together, a few threads at a time
(:func:`write_crops`): the writes wait on the disk, not on the CPU.

A clip gives 32 frames whenever it has 32 usable analysed frames, whatever the shape of its
motion (:func:`~fpsynth.data.motion.level_phases` tops up a narrow main event); when it has fewer,
each missing share gets a row saying why (:func:`shortfall_rows`). A video holding a whole
sequence of movements (``job.segment``) is cut into movements by :mod:`fpsynth.data.session`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fpsynth.data.align import Aligned, align
from fpsynth.data.config import VideoConfig
from fpsynth.data.faces import Face, FaceBackend, box_anchor, box_from_landmarks, detect_faces, detect_near
from fpsynth.data.jobs import Context, Face68, Result, frame_row, reject_row, write_crop
from fpsynth.data.motion import label_phases, level_phases, motion_curve, pick_frames
from fpsynth.data.pseudonyms import Job
from fpsynth.data.quality import Quality, assess, check, dominant_face, interocular
from fpsynth.data.reasons import Reason, Rejected
from fpsynth.data.still import StillGate
from fpsynth.data.video import VideoDecoder, VideoInfo, frame_signature


@dataclasses.dataclass(frozen=True)
class Candidate:
    index: int
    face: Face68
    aligned: Aligned
    quality: Quality


@dataclasses.dataclass
class Analysis:
    """What one decoding pass found: usable frames, rejected frames, the video's facts."""

    candidates: list[Candidate]
    failures: list[tuple[int, Rejected]]  # (frame index, why) of analysed frames that failed
    info: VideoInfo
    size: tuple[int, int]  # (H, W) of the decoded frames
    decoded: int  # frames the file really gave
    shortfall: tuple[int, int] | None  # (first missing, last expected) frame when decoding stopped early
    # frame_signature of every analysed frame, by index, when asked for (a later pass seeks by them)
    signatures: dict[int, bytes] = dataclasses.field(default_factory=dict)


# Tracked landmarks that move more than this (mean over the 68 points, in inter-ocular distances)
# from one analysed frame to the next make the detector run on that frame: after a cut or a fast
# head turn the carried box may no longer hold the face, and refits in it would be garbage.
REDETECT_AT = 0.2
# While a face is tracked the detector searches a window around it (faces.detect_near); every
# n-th detection searches the whole frame, so a second face entering the picture is still seen.
WHOLE_FRAME_EVERY = 4
# While the face is lost the detector runs on every n-th analysed frame (at most detect_every):
# the frames after a cut are not lost for a whole detect_every.
LOST_EVERY = 5
UNIFORM_LEVELS = 12  # a frame whose sampled pixels all lie within this many grey levels is blank (clip.uniform)
WRITERS = 4  # threads writing a job's crops (write_crops)
SMALL_FACE_PX = 120  # a face box below this at the video search's scale may be missed by it (HOG window: 80)


def uniform(rgb: np.ndarray) -> bool:
    """True when every 16th pixel of every 16th row of ``rgb`` (H, W, 3) lies within ``UNIFORM_LEVELS``
    of the others in every channel (~0.02 ms): a black or one-colour frame, which holds no face
    (a face's shading alone spans far more; a detector needs edges)."""
    sample = rgb[::16, ::16].reshape(-1, 3)
    return int((sample.max(0).astype(np.int16) - sample.min(0)).max()) <= UNIFORM_LEVELS


def _jump(a: np.ndarray, b: np.ndarray) -> float:
    """Mean shift of the 68 points from ``a`` to ``b`` (68, 2), in inter-ocular distances of ``a``."""
    io = interocular(a) or 1.0
    d = np.asarray(b, np.float64) - a
    return float(np.sqrt((d * d).sum(1)).sum()) / len(d) / io


class _Tracker:
    """Landmarks of one face across frames: detector every n frames, refit in a carried box between."""

    def __init__(self, backend: FaceBackend, ctx: Context) -> None:
        self.backend, self.ctx = backend, ctx
        self.every = ctx.cfg.video.detect_every
        self.since = self.every  # detect on the first frame
        self.face: Face68 | None = None  # the last frame's face (None: lost)
        self.anchor: np.ndarray | None = None
        self.lost: Rejected | None = None  # why the last detection found no usable face
        self.detections = 0
        self.n_faces = 0  # faces found by the last whole-frame search
        self.seen_side: float | None = None  # box side (px) of the last face detected

    def reset(self) -> None:
        """Detect on the next frame (it does not follow the last one in time)."""
        self.since = self.every

    def step(self, rgb: np.ndarray) -> Face68:
        """Face of this frame, or :class:`Rejected` (the last detection's reason while lost)."""
        # A lost face (no face in the last detection: a cut through black, the face out of the picture)
        # is searched for again sooner than a tracked one is checked.
        every = self.every if self.face is not None else min(self.every, LOST_EVERY)
        if self.since < every:
            self.since += 1
            if self.face is None:
                raise self.lost or Rejected(Reason.NO_FACE)
            assert self.anchor is not None  # set with every detected face
            bbox = box_from_landmarks(self.face.landmarks, self.anchor)
            points = self.backend.landmarks(rgb, bbox)
            if _jump(self.face.landmarks, points) <= REDETECT_AT:
                self.face = Face68(points, bbox, "tracked", self.face.det_score, self.face.n_faces)
                return self.face
            # a cut or a fast turn: the carried box may be off the face, so the detector runs now
        self.since = 1
        best = self._detect(rgb)
        if best is None:
            self.face = None
            raise self.lost or Rejected(Reason.NO_FACE)
        self.face = Face68(best.landmarks, best.bbox, "detected", best.score, self.n_faces)
        self.anchor = box_anchor(best.landmarks, best.bbox)
        return self.face

    def _detect(self, rgb: np.ndarray) -> Face | None:
        """The dominant face (None: lost, ``self.lost`` says why); counts faces on whole-frame searches."""
        if uniform(rgb):  # black between takes, a fade: nothing for a detector to find (~20 ms a search)
            self.lost = Rejected(Reason.NO_FACE, "a uniform frame (black or one colour: a fade, a cut between takes)")
            return None
        fc, strong = self.ctx.cfg.faces, (lambda fs: any(f.score >= self.backend.min_score for f in fs))
        faces, whole = [], True
        if self.face is not None and self.detections % WHOLE_FRAME_EVERY:  # near the tracked face
            faces, whole = detect_near(self.backend, rgb, self.face.bbox), False
        if not strong(faces):
            faces, whole = detect_faces(self.backend, rgb, fc.video_max_side, fc.video_upsample), True
        # Small face? Search as for a photo (slow: ~0.4 s on HD), unless the face seen last was one
        # the video-size search finds easily: then it has left the picture, it has not shrunk.
        scale = min(1.0, fc.video_max_side / max(rgb.shape[:2]))
        if not strong(faces) and (self.seen_side is None or self.seen_side * scale < SMALL_FACE_PX):
            faces = detect_faces(self.backend, rgb, fc.photo_max_side, fc.photo_upsample)
        self.detections += 1
        try:
            best = dominant_face(faces, self.backend.min_score, self.ctx.cfg.quality)
        except Rejected as r:
            self.lost = r
            return None
        if whole:  # faces in the frame: counted on whole-frame searches, carried between them
            self.n_faces = sum(f.score >= self.backend.min_score for f in faces)
        self.lost, self.seen_side = None, best.side
        return best


def analyse(
    decoder: VideoDecoder,
    ctx: Context,
    wanted: Callable[[int], bool],
    max_frames: int | None = None,
    restart: Callable[[int], bool] = lambda i: False,
    signatures: bool = False,
    known: Mapping[int, bytes] | None = None,
    next_wanted: Callable[[int], int] | None = None,
) -> Analysis:
    """Decode once; landmarks, alignment and quality gates on every frame ``wanted`` takes.

    ``restart(i)``: the tracker detects afresh on frame i (a frame that does not follow the last
    analysed one closely). ``signatures``: keep each analysed frame's signature (for a later pass's
    ``known``). ``known``/``next_wanted``: skip unwanted stretches by seeking to frames a
    first pass analysed (:meth:`VideoDecoder.frames`; may raise ``SeekMismatch``).
    Raises :class:`Rejected` when no frame decodes at all.
    """
    info = decoder.info
    tracker = _Tracker(ctx.backend(), ctx)
    still = StillGate()  # the face region of the last fitted frame
    fitted: Face68 | None = None  # that frame's face, while every frame since passed the gates
    candidates: list[Candidate] = []
    failures: list[tuple[int, Rejected]] = []
    size = (info.height, info.width)
    seen: dict[int, bytes] = {}
    for index, rgb in decoder.frames(wanted, max_frames, known, next_wanted):
        size = rgb.shape[:2]
        if signatures:
            seen[index] = frame_signature(rgb)
        if restart(index):
            tracker.reset()
            still.clear()
        try:
            if fitted is not None and still.same(rgb):  # nothing moved: no fit, no detection
                face = dataclasses.replace(fitted, source="still")
            else:
                face = fitted = tracker.step(rgb)
                still.remember(rgb, face.bbox)
            aligned = align(rgb, face.landmarks)
            q = assess(face.landmarks, aligned.crop)
            check(q, ctx.cfg.quality)
        except Rejected as r:
            failures.append((index, r))
            still.clear()
            fitted = None
            continue
        candidates.append(Candidate(index, face, aligned, q))
    if decoder.decoded == 0:
        raise Rejected(Reason.NO_FRAMES, "the file opens as a video but no frame decodes")
    return Analysis(candidates, failures, info, size, decoder.decoded, decoder.shortfall(max_frames), seen)


def process_clip(job: Job, ctx: Context) -> Result:
    """A video job that is one clip (a session of movements is :func:`fpsynth.data.session.process_session`)."""
    vc = ctx.cfg.video
    decoder = VideoDecoder(Path(job.files[0]))
    info = decoder.info
    stride = analysis_stride(info.fps, min(info.frame_count, vc.max_frames or info.frame_count), vc)
    a = analyse(decoder, ctx, lambda i: i % stride == 0, vc.max_frames)
    rejects = decode_rows(job, a, stride, vc.max_frames)
    if not a.candidates:
        return Result([], rejects)

    curve, _ = motion_curve(np.stack([c.face.landmarks for c in a.candidates]), vc)
    phases = label_phases(curve, vc)
    filled = level_phases(curve, phases, vc)
    keep = pick_frames(phases, vc.quota, filled)
    rows = [candidate_row(job, a, a.candidates[k], phase=filled[k], motion=float(curve[k])) for k in keep]
    write_crops(ctx, [(row["path"], a.candidates[k].aligned.crop) for row, k in zip(rows, keep)])
    end = max(a.decoded - 1, 0)
    rejects += shortfall_rows(job, "the clip", len(rows), vc.quota.total, len(a.candidates), a.failures, 0, end, stride)
    return Result(rows, rejects)


def candidate_row(job: Job, a: Analysis, c: Candidate, **fields: Any) -> dict[str, Any]:
    """The frames.parquet row of an analysed candidate of ``a``; ``fields``: phase, motion, clip, expression."""
    return frame_row(job, c.index, c.aligned, c.face, c.quality, a.size, time_s=a.info.time_of(c.index), **fields)


def write_crops(ctx: Context, crops: list[tuple[str, np.ndarray]]) -> None:
    """Write ``(path, (112, 112, 3) crop)`` pairs, ``WRITERS`` at a time; returns when all are on disk.

    Each write is atomic and fsynced (:func:`~fpsynth.data.jobs.write_crop`): about 1 ms of
    PNG encoding and 1-4 ms of waiting on the disk, both outside the GIL, so a few threads keep
    the disk busy while the job is otherwise done. An error in any write is raised here.
    """
    if len(crops) <= 1:
        for rel, crop in crops:
            write_crop(ctx, rel, crop)
        return
    with ThreadPoolExecutor(min(WRITERS, len(crops))) as pool:
        for done in [pool.submit(write_crop, ctx, rel, crop) for rel, crop in crops]:
            done.result()


def decode_rows(job: Job, a: Analysis, stride: int, max_frames: int | None) -> list[dict]:
    """Rows for runs of rejected frames and for a file that stopped decoding early."""
    rows = [reject_row(job, reason, detail, s, e) for s, e, reason, detail in _runs(a.failures, stride)]
    short = a.shortfall
    if short:
        rows.append(
            reject_row(
                job,
                Reason.TRUNCATED.value,
                f"decoding stopped after {a.decoded} of {a.info.frame_count} frames; the decoded frames were used",
                *short,
            )
        )
    return rows


def shortfall_rows(
    job: Job,
    what: str,
    got: int,
    wanted: int,
    usable: int,
    failures: list[tuple[int, Rejected]],
    start: int,
    end: int,
    stride: int,
    analysed: str | None = None,
) -> list[dict]:
    """A row per share of the ``wanted`` frames that ``what`` (frames ``start``-``end``) did not give.

    ``analysed``: how its frames were analysed, where one ``stride`` does not say it.

    The share lost to rejected frames is said first (``frames_rejected``, with the gates that
    failed), the rest is a movement too short for the quota (``too_few_frames``).
    """
    missing = wanted - got
    if missing <= 0:
        return []
    inside = [r for i, r in failures if start <= i <= end]
    rows = []
    lost = min(missing, len(inside))
    if lost:
        counts: dict[str, int] = {}
        for r in inside:
            counts[r.reason.value] = counts.get(r.reason.value, 0) + 1
        gates = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        rows.append(
            reject_row(
                job,
                Reason.FRAMES_REJECTED.value,
                f"{lost} of the {wanted} frames of {what} missing: {len(inside)} of its analysed "
                f"frames were rejected ({gates}; their rows give the frames)",
                start,
                end,
            )
        )
    if missing - lost:
        every = f", {analysed}" if analysed else f", every {ordinal(stride)} frame analysed" if stride > 1 else ""
        rows.append(
            reject_row(
                job,
                Reason.TOO_FEW_FRAMES.value,
                f"{missing - lost} of the {wanted} frames of {what} missing: it holds {usable} usable "
                f"frames (frames {start}-{end}{every})",
                start,
                end,
            )
        )
    return rows


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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
        if runs and runs[-1][2] == r.reason.value and index - runs[-1][1] <= stride:
            runs[-1][1] = index
        else:
            runs.append([index, index, r.reason.value, r.detail])
    return [
        (a, b, reason, detail if a == b else f"{detail} (first of frames {a}-{b})") for a, b, reason, detail in runs
    ]

"""One participant's video of a whole sequence of movements -> 32 aligned frames per movement.

The standard set's videos hold every movement of the protocol one after the other, at rest
between them. The video is analysed once (about ``analyse_fps`` frames a second), cut into
movements on the regional motion curve (:mod:`fpsynth.data.movements`), and each movement then
becomes one expression clip of its own: its own rest pose, motion curve, phases and 32 frames,
``clip = <input>-<label>`` and ``expression = <label>``.

Labels come from ``prepare.movements.names`` in order when the number of movements found is the
number expected; otherwise they are ``movement_01``... in order and a ``movement_count`` row says
what was expected and what was found: a label is never guessed. With ``rest`` in the list, the
face at rest between movements is one more clip (``rest``, all neutral).

A movement too short for 32 frames at the analysis rate is analysed again frame by frame; one
that still has fewer usable frames gets a row per missing share (:func:`~fpsynth.data.clip.shortfall_rows`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpsynth.data.clip import (
    Analysis,
    Candidate,
    analyse,
    candidate_row,
    decode_rows,
    ordinal,
    shortfall_rows,
    write_crops,
)
from fpsynth.data.config import MovementsConfig, VideoConfig
from fpsynth.data.jobs import Context, Result, reject_row
from fpsynth.data.motion import Phase, label_phases, level_phases, pick_frames, smooth, unlabelled
from fpsynth.data.movements import Movement, Segmentation, regional_motion, segment
from fpsynth.data.pseudonyms import Job
from fpsynth.data.reasons import Reason
from fpsynth.data.video import SeekMismatch, VideoDecoder


def process_session(job: Job, ctx: Context) -> Result:
    vc, mc = ctx.cfg.video, ctx.cfg.movements
    path = Path(job.files[0])
    decoder = VideoDecoder(path)
    fps = decoder.info.fps
    # About analyse_fps frames a second, however long the video (no cap: each movement needs its frames).
    stride = max(1, round(fps / vc.analyse_fps)) if vc.analyse_fps and fps > 0 else 1
    a = analyse(decoder, ctx, lambda i: i % stride == 0, vc.max_frames, signatures=stride > 1)
    if not a.candidates:
        return Result([], decode_rows(job, a, stride, vc.max_frames))
    seg = segment(_landmarks(a.candidates), np.array([c.index for c in a.candidates]), fps, mc)
    dense = _densify(path, ctx, a, seg, stride, vc) if stride > 1 else {}
    rejects = decode_rows(job, a, stride, vc.max_frames)  # rejected frames of both passes

    labels, note = movement_labels(len(seg.movements), mc)
    if note:
        found = ", ".join(f"{m.start}-{m.end}" for m in seg.movements) or "none"
        rejects.append(reject_row(job, Reason.MOVEMENT_COUNT.value, f"{note}; movements found at frames {found}"))
    for first, last in seg.bursts:
        rejects.append(
            reject_row(
                job,
                Reason.BRIEF_MOTION.value,
                f"motion for {(last - first) / (fps or 25):.2f} s, shorter than "
                f"prepare.movements.min_movement_s {mc.min_movement_s:g} s: not a movement",
                first,
                last,
            )
        )

    index = np.array([c.index for c in a.candidates])
    rows: list[dict] = []
    crops: list[tuple[str, np.ndarray]] = []  # (path, crop) of every row
    for n, (m, label) in enumerate(zip(seg.movements, labels)):
        span = np.flatnonzero((index >= m.pad_from) & (index <= m.pad_to))
        curve = smooth(regional_motion(_landmarks([a.candidates[k] for k in span]), m.reference), vc.smooth)
        # The whole span is one movement: frames that label_phases leaves to "another event" are
        # this movement's too (a second peak, speech), phased by level; the rest either side is neutral.
        phases = label_phases(curve, vc)
        pads = (index[span] < m.start) | (index[span] > m.end)
        phases[pads & unlabelled(phases)] = Phase.NEUTRAL.value
        phases = level_phases(curve, phases, vc)
        keep = pick_frames(phases, vc.quota)
        rows += _rows(job, a, label, [(span[k], phases[k], curve[k]) for k in keep], crops)
        rejects += shortfall_rows(
            job,
            f"movement {label}",
            len(keep),
            vc.quota.total,
            len(span),
            a.failures,
            m.pad_from,
            m.pad_to,
            1 if n in dense else stride,
            analysed=(
                f"every frame of the movement analysed, every {ordinal(stride)} of the rest around it"
                if n in dense and dense[n] != (m.pad_from, m.pad_to)
                else None
            ),
        )
    if mc.rest in mc.names:
        rows_, rejects_ = _rest_clip(job, ctx, a, seg, {r["frame_index"] for r in rows}, stride, crops)
        rows += rows_
        rejects += rejects_
    write_crops(ctx, crops)  # all at once, a few threads: the disk waits overlap
    return Result(rows, rejects)


def movement_labels(found: int, mc: MovementsConfig) -> tuple[list[str], str | None]:
    """Labels of ``found`` movements in order, and the note to write when they are numbered instead."""
    expected = mc.expected
    if found == len(expected):
        return list(expected), None
    labels = [f"movement_{k:02d}" for k in range(1, found + 1)]
    note = (
        f"expected {len(expected)} movements ({', '.join(expected)}) from prepare.movements.names, found "
        f"{found}; labelled {labels[0] + '..' + labels[-1] if labels else 'nothing'} in order, not named"
    )
    return labels, note


def _landmarks(candidates: list[Candidate]) -> np.ndarray:
    return np.stack([c.face.landmarks for c in candidates]).astype(np.float64)  # (N, 68, 2)


def _densify(
    path: Path, ctx: Context, a: Analysis, seg: Segmentation, stride: int, vc: VideoConfig
) -> dict[int, tuple[int, int]]:
    """Analyse every frame of the movements that the coarse pass left short of the quota (``a`` in
    place); returns {position in ``seg.movements``: (first, last) frame analysed again}."""
    index = np.array([c.index for c in a.candidates])
    moving = vc.quota.total - vc.quota.neutral  # frames wanted from the movement itself
    short = {n for n, m in enumerate(seg.movements) if ((index >= m.start) & (index <= m.end)).sum() < moving}
    if not short:
        return {}
    dense = {n: _dense_span(seg.movements[n], index, vc.quota.total) for n in sorted(short)}
    spans = list(dense.values())
    starts = {lo for lo, _ in spans}
    wanted = lambda i: i % stride != 0 and any(lo <= i <= hi for lo, hi in spans)  # noqa: E731
    restart = lambda i: i in starts or i - 1 in starts  # noqa: E731
    end = max(hi for _, hi in spans) + 1

    def next_wanted(i: int) -> int:  # the first frame >= i inside a span (end: none is)
        return min((max(lo, i) for lo, hi in spans if hi >= i), default=end)

    # The stretches between the spans are skipped by seeking to frames the first pass analysed, each
    # checked against its signature; a container whose seeking is not exact is decoded from the start.
    try:
        more = analyse(VideoDecoder(path), ctx, wanted, end, restart, known=a.signatures, next_wanted=next_wanted)
    except SeekMismatch:
        more = analyse(VideoDecoder(path), ctx, wanted, end, restart)
    a.candidates = sorted(a.candidates + more.candidates, key=lambda c: c.index)
    a.failures = sorted(a.failures + more.failures, key=lambda f: f[0])
    return dense


def _dense_span(m: Movement, index: np.ndarray, wanted: int) -> tuple[int, int]:
    """(first, last) frames a short movement ``m`` is analysed again over: the movement itself (its
    pads' rest gives only the neutral share, which the coarse pass covers), or its whole clip when
    the movement's every frame and the pads' coarse frames together would still fall short of ``wanted``."""
    pads = int(((index >= m.pad_from) & (index < m.start)).sum() + ((index > m.end) & (index <= m.pad_to)).sum())
    if (m.end - m.start + 1) + pads < wanted:
        return m.pad_from, m.pad_to
    return m.start, m.end


def _rows(
    job: Job, a: Analysis, label: str, picked: list[tuple[int, str, float]], crops: list[tuple[str, np.ndarray]]
) -> list[dict]:
    """Rows of the picked candidates; (path, crop) of each added to ``crops``, written at the end."""
    clip = f"{job.input}-{label}"
    rows = []
    for k, phase, motion in picked:
        c = a.candidates[k]
        row = candidate_row(job, a, c, phase=phase, motion=float(motion), clip=clip, expression=label)
        crops.append((row["path"], c.aligned.crop))
        rows.append(row)
    return rows


def _rest_clip(
    job: Job,
    ctx: Context,
    a: Analysis,
    seg: Segmentation,
    taken: set[int],
    stride: int,
    crops: list[tuple[str, np.ndarray]],
) -> tuple[list[dict], list[dict]]:
    """The ``rest`` clip: 32 frames spread over the rest between movements (frames already picked
    for a movement's neutral phase and brief bursts left out), each measured from its run's pose."""
    vc, mc = ctx.cfg.video, ctx.cfg.movements
    index = np.array([c.index for c in a.candidates])
    span, motion = [], []
    for run in seg.rest:
        ks = np.flatnonzero((index >= run.start) & (index <= run.end) & ~np.isin(index, list(taken)))
        if len(ks):
            span.append(ks)
            motion.append(regional_motion(_landmarks([a.candidates[k] for k in ks]), run.reference))
    span_all = np.concatenate(span) if span else np.zeros(0, int)
    curve = np.concatenate(motion) if motion else np.zeros(0)
    keep = pick_frames(np.full(len(span_all), Phase.NEUTRAL.value, dtype=object), vc.quota)
    rows = _rows(job, a, mc.rest, [(span_all[k], Phase.NEUTRAL.value, curve[k]) for k in keep], crops)
    first = seg.rest[0].start if seg.rest else 0
    last = seg.rest[-1].end if seg.rest else a.decoded - 1
    rest_failures = [(i, r) for i, r in a.failures if any(run.start <= i <= run.end for run in seg.rest)]
    return rows, shortfall_rows(
        job, f"the {mc.rest} clip", len(rows), vc.quota.total, len(span_all), rest_failures, first, last, stride
    )

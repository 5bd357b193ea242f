"""Cutting one video of a whole sequence into its movements (the MEEI standard set's layout).

The signal is *regional* motion from a rest pose R: each frame's 68 landmarks are moved onto R by
a similarity fitted on the stable points (so head pose does not count), and the mean shift of
each region (brows 17-26, the eyelids, the mouth 48-67) is taken in inter-ocular distances of R;
the largest region is the frame's motion. A brow raise or an eye closure moves a dozen points
and would vanish in a mean over all 68 (below landmark jitter); region by region it does not.

One scan, left to right (``prepare.movements``):

1. the video starts at rest: R is the medoid of its first ``min_rest_s``;
2. a movement starts where motion reaches ``active_at`` and ends where the face has been back
   below ``rest_at`` (lower) for ``min_rest_s``; those rest frames become the next R, so slow
   drift of the head between movements does not add up. Speech or a held half-expression hovers
   around ``active_at`` for seconds: with one threshold, landmark noise of a few thousandths of
   the inter-ocular distance decided whether such a stretch was one movement or three
   (BENCHMARKS.md, issue 12); the face must now really be back at rest;
3. a jump between two analysed frames (of the regional shape, or of the face's place or size),
   three times the steps on either side of it, straight into a pose then held (within
   ``active_at``) for ``min_rest_s``, is a cut (an edited video, another take, another person, the
   detector refitting a still face): at rest any such jump, within a movement one of at least
   ``cut_at``. Any movement ends before it and the held pose is the new R;
   so is a gap of ``min_rest_s / 2`` or more without a usable face (the face left the picture,
   an edit through black): the pose after it starts the new R;
4. movements shorter than ``min_movement_s`` are bursts (blinks, twitches): reported, not kept.

Every movement keeps its rest pose (for its own motion curve and phases) and up to ``pad_s`` of
the rest on each side (at most half of each gap; never across a cut) for its neutral frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fpsynth.data.config import MovementsConfig
from fpsynth.data.ibug68 import BROWS, EYELIDS, LEFT_EYE, MOUTH, RIGHT_EYE, STABLE_POINTS, indices
from fpsynth.data.motion import smooth

REGIONS = (indices(BROWS), EYELIDS, indices(MOUTH))  # brows, eyelids (the corners are stable points), mouth
SMOOTH = 3  # analysed frames averaged in the scan's signal (one-frame landmark glitches do not start a movement)


def aligned_onto(lms: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks each moved onto ``ref`` ((68, 2), or (N, 68, 2) one per frame) by the
    least-squares similarity of the stable points (rotation, uniform scale, translation)."""
    z = lms[..., 0] + 1j * lms[..., 1]  # (N, 68) points as complex numbers: a similarity is w = a z + b
    w = ref[..., 0] + 1j * ref[..., 1]
    w = np.broadcast_to(w, z.shape)
    zs, ws = z[:, STABLE_POINTS], w[:, STABLE_POINTS]
    zc, wc = zs - zs.mean(1, keepdims=True), ws - ws.mean(1, keepdims=True)
    a = (wc * zc.conj()).sum(1) / np.maximum((np.abs(zc) ** 2).sum(1), 1e-12)  # (N,)
    b = ws.mean(1) - a * zs.mean(1)
    out = a[:, None] * z + b[:, None]
    return np.stack([out.real, out.imag], -1)


def _interocular(lms: np.ndarray) -> np.ndarray:
    """(...,) eye-centre distance of (..., 68, 2) landmarks."""
    return np.linalg.norm(lms[..., LEFT_EYE, :].mean(-2) - lms[..., RIGHT_EYE, :].mean(-2), axis=-1)


def regional_motion(lms: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N,) largest regional mean shift of ``lms`` (N, 68, 2) from ``ref`` ((68, 2) or (N, 68, 2)),
    in inter-ocular distances of the reference, head pose removed."""
    lms, ref = np.asarray(lms, np.float64), np.asarray(ref, np.float64)
    if len(lms) == 0:
        return np.zeros(0)
    shift = np.linalg.norm(aligned_onto(lms, ref) - ref, axis=-1)  # (N, 68)
    io = np.maximum(_interocular(ref), 1e-6)  # () or (N,)
    return np.stack([shift[:, r].mean(1) for r in REGIONS], 1).max(1) / io


def medoid(lms: np.ndarray, at_most: int = 30) -> np.ndarray:
    """(68, 2) the frame of ``lms`` (N, 68, 2) closest to all others (of at most ``at_most`` spread evenly)."""
    lms = np.asarray(lms, np.float64)
    pick = lms[np.unique(np.linspace(0, len(lms) - 1, min(len(lms), at_most)).round().astype(int))]
    moved = aligned_onto(pick, pick[0])
    dist = np.linalg.norm(moved[:, None] - moved[None], axis=-1).mean(-1)  # (k, k)
    return pick[int(dist.sum(1).argmin())]


@dataclasses.dataclass(frozen=True)
class Movement:
    """One movement, in video frame numbers (inclusive)."""

    start: int  # first moving frame
    end: int  # last moving frame
    pad_from: int  # first frame of its clip (rest before it)
    pad_to: int  # last frame of its clip (rest after it)
    reference: np.ndarray  # (68, 2) the rest pose it is measured from


@dataclasses.dataclass(frozen=True)
class RestRun:
    start: int
    end: int
    reference: np.ndarray  # (68, 2) its medoid pose


@dataclasses.dataclass
class Segmentation:
    movements: list[Movement]
    rest: list[RestRun]
    bursts: list[tuple[int, int]]  # (first, last) frames of motion too brief to be a movement
    cuts: list[int]  # first frames after a cut


def segment(lms: np.ndarray, index: np.ndarray, fps: float, cfg: MovementsConfig) -> Segmentation:
    """Movements, rest runs, bursts and cuts of a video from the landmarks of its usable analysed
    frames: ``lms`` (N, 68, 2) at video frames ``index`` (N,), in temporal order."""
    lms = np.asarray(lms, np.float64)
    index = np.asarray(index)
    n = len(lms)
    t = index / (fps if fps > 0 else 25.0)  # seconds
    # (N,) change of each frame from the one before it: of shape, place or size, in inter-ocular
    # distances. A cut is a big one between two small ones (a head turning fast moves over several).
    step = np.zeros(n)
    if n > 1:
        io = np.maximum(_interocular(lms[:-1]), 1e-6)
        shift = np.linalg.norm(lms[1:, STABLE_POINTS].mean(1) - lms[:-1, STABLE_POINTS].mean(1), axis=-1) / io
        resize = np.abs(_interocular(lms[1:]) / io - 1.0)
        step[1:] = np.maximum.reduce([regional_motion(lms[1:], lms[:-1]), shift, resize])
    around = np.maximum(np.r_[0.0, step[:-1]], np.r_[step[1:], 0.0])  # (N,) the larger neighbouring step
    isolated = step >= np.maximum(3 * around, cfg.active_at / 2)  # (N,) a jump between two still frames
    gap = np.r_[False, np.diff(t) >= cfg.min_rest_s / 2]  # (N,) no usable face for half a rest before it
    held_to = np.searchsorted(t, t + cfg.min_rest_s)  # (N,) first position min_rest_s after each

    def held(p: int) -> bool:  # the pose of frame p is kept, within active_at, for min_rest_s
        q = held_to[p]
        return q < n and bool((regional_motion(lms[p : q + 1], lms[p]) < cfg.active_at).all())

    def signal(ref: np.ndarray, frm: int) -> np.ndarray:  # (N,) motion from ref; positions before frm unused
        s = np.zeros(n)
        s[frm:] = smooth(regional_motion(lms[frm:], ref), SMOOTH)
        return s

    spans: list[tuple[str, int, int, np.ndarray]] = []  # ("rest" | "move", first, last, reference) positions
    cuts: list[int] = []
    ref = medoid(lms[: max(1, held_to[0])])
    s = signal(ref, 0)
    rest_from, move_from, quiet_from = 0, None, None

    def close(kind: str, a: int, b: int, r: np.ndarray) -> None:
        if b >= a:
            spans.append((kind, a, b, r))

    p = 0
    while p < n:
        moving = s[p] >= cfg.active_at
        # A movement that "began" within the smoothing window before a jump began with the jump itself.
        at_rest = move_from is None or move_from >= p - SMOOTH
        # Out of rest, any jump into a held pose is not a movement (those rise over several frames): a
        # new pose of the head, or the detector refitting a still face; within a movement, only a big one.
        if p > 0 and (gap[p] or (isolated[p] and (at_rest or step[p] >= cfg.cut_at) and held(p))):
            if not at_rest:
                assert move_from is not None  # not at rest: a movement is open
                close("move", move_from, (quiet_from if quiet_from is not None else p) - 1, ref)
                rest_from = quiet_from if quiet_from is not None else p
            close("rest", rest_from, p - 1, ref)
            cuts.append(p)
            ref, rest_from, move_from = medoid(lms[p : max(held_to[p], p + 1)]), p, None
            s = signal(ref, p)
        elif move_from is None:
            if moving:
                close("rest", rest_from, p - 1, ref)
                move_from, quiet_from = p, None
        elif s[p] < cfg.rest_at:  # back at rest (in between the two thresholds: still moving)
            quiet_from = p if quiet_from is None else quiet_from
            if t[p] - t[quiet_from] >= cfg.min_rest_s:  # back at rest long enough: the movement is over
                close("move", move_from, quiet_from - 1, ref)
                ref, rest_from, move_from = medoid(lms[quiet_from : p + 1]), quiet_from, None
                s = signal(ref, quiet_from)
        else:
            quiet_from = None
        p += 1
    if move_from is not None:
        last = quiet_from - 1 if quiet_from is not None else n - 1
        close("move", move_from, last, ref)
        rest_from = last + 1
    close("rest", rest_from, n - 1, ref)
    return _assemble(spans, cuts, index, t, cfg)


def _assemble(
    spans: list[tuple[str, int, int, np.ndarray]],
    cuts: list[int],
    index: np.ndarray,
    t: np.ndarray,
    cfg: MovementsConfig,
) -> Segmentation:
    """Positions -> frame numbers; bursts out of the movements; pads from the neighbouring rest."""
    seg = Segmentation([], [], [], [int(index[c]) for c in cuts])
    cut_set = set(cuts)
    kept = []
    for kind, a, b, ref in spans:
        if kind == "move" and t[b] - t[a] < cfg.min_movement_s:
            seg.bursts.append((int(index[a]), int(index[b])))
        else:
            kept.append((kind, a, b, ref))
    for k, (kind, a, b, ref) in enumerate(kept):
        if kind == "rest":
            seg.rest.append(RestRun(int(index[a]), int(index[b]), ref))
            continue
        pad_from, pad_to = a, b
        before = kept[k - 1] if k > 0 and kept[k - 1][0] == "rest" else None
        after = kept[k + 1] if k + 1 < len(kept) and kept[k + 1][0] == "rest" else None
        if before is not None:
            ra, rb = before[1], before[2]
            shared = k >= 2 and kept[k - 2][0] == "move"  # half of a gap between two movements each
            lo = max(t[a] - cfg.pad_s, (t[ra] + t[rb]) / 2 if shared else t[ra])
            pad_from = int(np.searchsorted(t[ra : rb + 1], lo)) + ra
        if after is not None and after[1] not in cut_set:
            ra, rb = after[1], after[2]
            shared = k + 2 < len(kept) and kept[k + 2][0] == "move"
            hi = min(t[b] + cfg.pad_s, (t[ra] + t[rb]) / 2 if shared else t[rb])
            pad_to = int(np.searchsorted(t[ra : rb + 1], hi, side="right")) + ra - 1
        seg.movements.append(
            Movement(int(index[a]), int(index[b]), int(index[pad_from]), int(index[max(pad_to, b)]), ref)
        )
    return seg

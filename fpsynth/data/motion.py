"""The landmark motion curve of a clip, its expression phases, and the frames kept from it.

The paper keeps 32 frames per expression clip, spanning neutral, onset, development, peak and
dissipation, picked by hand. Here the picking is automatic:

1. the neutral reference is the medoid of the clip's leading frames (clinical recordings start
   at rest);
2. each frame's 68 landmarks are aligned onto the reference by a similarity fitted on the stable
   points (eye corners, nose), so head motion does not count as expression, and the curve is the
   mean landmark displacement in units of the reference's inter-ocular distance, smoothed;
3. phases are nested runs around the curve's maximum: where motion >= ``peak_at`` x max is the
   peak, >= ``development_at`` before it development, the rise before that onset, the fall after
   the peak dissipation; frames at rest (motion below ``onset_at`` x max, and below
   ``min_motion`` in any case) are neutral;
4. each phase receives its quota of frames (:class:`PhaseQuota`), evenly spaced in time; a phase
   with too few frames passes its remainder on to the phases that have frames to spare;
5. when the event around the maximum cannot fill the quota (continuous speech, two peaks, a slow
   drift: the curve never settles, so the event is narrow), the other frames are phased by their
   level and slope (:func:`level_phases`) and fill what is missing, so a clip with 32 usable
   frames always gives 32.
"""

from __future__ import annotations

import enum

import numpy as np

from fpsynth.data.align import umeyama
from fpsynth.data.config import PhaseQuota, VideoConfig
from fpsynth.data.ibug68 import STABLE_POINTS
from fpsynth.data.quality import interocular


class Phase(str, enum.Enum):
    NEUTRAL = "neutral"
    ONSET = "onset"
    DEVELOPMENT = "development"
    PEAK = "peak"
    DISSIPATION = "dissipation"


def _aligned_onto(lms: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks each moved onto ``ref`` (68, 2) by a stable-point similarity."""
    out = np.empty_like(lms, dtype=np.float64)
    for i, lm in enumerate(lms):
        m = umeyama(lm[STABLE_POINTS], ref[STABLE_POINTS])
        out[i] = lm @ m[:, :2].T + m[:, 2]
    return out


def neutral_reference(lms: np.ndarray, window: float) -> int:
    """Index of the medoid of the first ``window`` share of the frames (at least one frame)."""
    k = max(1, int(np.ceil(window * len(lms))))
    head = _aligned_onto(lms[:k], lms[0].astype(np.float64))  # (k, 68, 2)
    dist = np.linalg.norm(head[:, None] - head[None], axis=-1).mean(-1)  # (k, k) mean point distance
    return int(dist.sum(1).argmin())


def motion_curve(lms: np.ndarray, cfg: VideoConfig) -> tuple[np.ndarray, int]:
    """Motion of each frame from the neutral reference, in inter-ocular units, smoothed.

    ``lms``: (N, 68, 2) landmarks of the usable frames in temporal order.
    Returns the (N,) curve and the index of the reference frame.
    """
    lms = np.asarray(lms, np.float64)
    ref_idx = neutral_reference(lms, cfg.neutral_window)
    ref = lms[ref_idx]
    moved = _aligned_onto(lms, ref)
    curve = np.linalg.norm(moved - ref, axis=-1).mean(-1) / max(interocular(ref), 1e-6)  # (N,)
    return smooth(curve, cfg.smooth), ref_idx


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge values repeated (a no-op for window 1 or short series)."""
    if window <= 1 or len(x) < 2 * window:
        return x
    half = window // 2
    padded = np.pad(x, (half, window - 1 - half), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def unlabelled(labels: np.ndarray) -> np.ndarray:
    """(N,) bool: which entries of an (N,) object array of phase labels are None (not yet labelled)."""
    return np.fromiter((v is None for v in labels), bool, len(labels))


def label_phases(curve: np.ndarray, cfg: VideoConfig) -> np.ndarray:
    """(N,) object array of :class:`Phase` values for a motion curve; None for frames of other events.

    Only the event around the curve's maximum is labelled. Its onset and dissipation stop where
    the curve rises again by more than ``rise_slack`` x peak above its lowest value so far, so a second event
    before or after it is not swallowed; frames outside the event count as neutral only where
    they are at rest (motion below the onset level), others belong to no phase and are not picked.
    """
    labels = np.full(len(curve), None, dtype=object)
    if len(curve) == 0:
        return labels
    top = int(np.argmax(curve))
    peak_motion = float(curve[top])
    rest = max(cfg.onset_at * peak_motion, cfg.min_motion)  # below this a frame is at rest
    labels[curve < rest] = Phase.NEUTRAL.value
    if peak_motion < cfg.min_motion:
        return labels

    def run(level: float) -> tuple[int, int]:  # contiguous span around the top at or above a level
        a = top
        while a > 0 and curve[a - 1] >= level:
            a -= 1
        b = top
        while b < len(curve) - 1 and curve[b + 1] >= level:
            b += 1
        return a, b

    (dev_a, _), (pk_a, pk_b) = run(cfg.development_at * peak_motion), run(cfg.peak_at * peak_motion)
    slack = cfg.rise_slack * peak_motion
    on_a, low = dev_a, float(curve[dev_a])  # onset: back from development while the curve falls, to rest
    while on_a > 0 and rest <= curve[on_a - 1] <= low + slack:
        on_a -= 1
        low = min(low, float(curve[on_a]))
    on_b, low = pk_b, float(curve[pk_b])  # dissipation: on from the peak while the curve falls, to rest
    while on_b < len(curve) - 1 and rest <= curve[on_b + 1] <= low + slack:
        on_b += 1
        low = min(low, float(curve[on_b]))
    labels[on_a:dev_a] = Phase.ONSET.value
    labels[dev_a:pk_a] = Phase.DEVELOPMENT.value
    labels[pk_a : pk_b + 1] = Phase.PEAK.value
    labels[pk_b + 1 : on_b + 1] = Phase.DISSIPATION.value
    return labels


def level_phases(curve: np.ndarray, labels: np.ndarray, cfg: VideoConfig) -> np.ndarray:
    """Phases for the frames :func:`label_phases` left out (None), from their own level and slope.

    Relative to the curve's maximum: from ``peak_at`` peak, from ``development_at`` development,
    below that onset where the curve rises and dissipation where it falls. Labelled frames keep
    their label. Used only to top up a clip whose main event holds fewer frames than the quota.
    """
    out = labels.copy()
    if len(curve) == 0:
        return out
    top = float(np.max(curve))
    slope = np.gradient(curve) if len(curve) > 1 else np.zeros(1)
    for i in np.flatnonzero(unlabelled(labels)):
        if curve[i] >= cfg.peak_at * top:
            out[i] = Phase.PEAK.value
        elif curve[i] >= cfg.development_at * top:
            out[i] = Phase.DEVELOPMENT.value
        else:
            out[i] = Phase.ONSET.value if slope[i] >= 0 else Phase.DISSIPATION.value
    return out


def allocate(available: dict[str, int], quota: PhaseQuota | dict[str, int]) -> dict[str, int]:
    """Frames to take per phase: the quota, capped by what is there, shortfalls passed on."""
    want = {p.value: quota[p.value] if isinstance(quota, dict) else getattr(quota, p.value) for p in Phase}
    take = {p: min(want[p], available.get(p, 0)) for p in want}
    missing = sum(want.values()) - sum(take.values())
    while missing > 0:
        spare = {p: available.get(p, 0) - take[p] for p in take if available.get(p, 0) > take[p]}
        if not spare:
            break
        # one frame at a time to the phase with most frames left (ties: the earlier phase)
        best = max(spare, key=lambda p: (spare[p], -list(take).index(p)))
        take[best] += 1
        missing -= 1
    return take


def evenly(n: int, k: int) -> np.ndarray:
    """``k`` distinct positions spread evenly over ``range(n)`` (ends included), k <= n."""
    if k <= 0:
        return np.zeros(0, dtype=int)
    if k == 1:
        return np.array([n // 2])
    # floor(x + 0.5) of a step >= 1 is strictly increasing (round-half-even is not)
    return np.floor(np.linspace(0, n - 1, k) + 0.5).astype(int)


def pick_frames(labels: np.ndarray, quota: PhaseQuota, fallback: np.ndarray | None = None) -> np.ndarray:
    """Sorted positions (into ``labels``) of the frames to keep, at most ``quota.total``.

    ``fallback``: phases for every frame (:func:`level_phases`); frames that ``labels`` leaves out
    are taken from it, per phase, only for the share the labelled frames cannot fill.
    """
    positions = {p.value: np.flatnonzero(labels == p.value) for p in Phase}
    take = allocate({p: len(v) for p, v in positions.items()}, quota)
    chosen = [positions[p][evenly(len(positions[p]), take[p])] for p in take if take[p] > 0]
    missing = quota.total - sum(take.values())
    if fallback is not None and missing > 0:
        spare = unlabelled(labels)
        extra = {p.value: np.flatnonzero(spare & (fallback == p.value)) for p in Phase}
        want, left = {}, missing  # each phase's own deficit first (a phase may hold more than its quota)
        for p in Phase:
            want[p.value] = min(max(0, getattr(quota, p.value) - take[p.value]), left)
            left -= want[p.value]
        more = allocate({p: len(v) for p, v in extra.items()}, want)
        chosen += [extra[p][evenly(len(extra[p]), more[p])] for p in more if more[p] > 0]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)

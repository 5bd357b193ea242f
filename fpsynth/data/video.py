"""Video decoding with OpenCV, robust to empty, truncated and non-video files.

:class:`VideoDecoder` yields (index, RGB frame) for the frames asked for and only *grabs* the
others (demux + decode without the colour conversion), so skipping frames costs little. After
iteration, ``decoded`` holds how many frames the file really gave, which a truncated file shows
by falling short of the count in its header.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np

from fpsynth.data.images import read_regular
from fpsynth.data.reasons import Reason, Rejected

# Containers often state a frame count one or two off the real one; only a larger gap means loss.
_COUNT_SLACK = 2

# A way forward of at least this many unwanted frames is sought (CAP_PROP_POS_FRAMES) when frames
# on it are known (``VideoDecoder.frames(known=...)``); a shorter one is grabbed frame by frame. A
# seek decodes from the keyframe before its target: on an MPEG-4 file with a keyframe every 12
# frames it costs ~5 ms (~10 grabs), on an H.264 file with rare keyframes up to what the grabs cost.
SEEK_AHEAD = 48


class SeekMismatch(Exception):
    """A frame reached by seeking differs from the frame decoded at that index from the start: the
    container's seeking is not exact. The caller decodes from the start instead."""


def frame_signature(rgb: np.ndarray) -> bytes:
    """16-byte digest of a decoded frame (every 8th pixel of every 8th row: 3,600 pixels of a 480 px
    frame, ~0.03 ms): two frames of one video with the same signature are the same frame, or frames
    too alike for the difference to matter."""
    return hashlib.blake2b(np.ascontiguousarray(rgb[::8, ::8]).tobytes(), digest_size=16).digest()


# Signatures of still-image formats: FFmpeg opens such a file as a one-frame "video" whatever its
# name, so a photo named .mp4 is caught by its first bytes instead.
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def image_signature(head: bytes) -> str | None:
    """What still-image format the first bytes of a file name (None: not a known image format)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    return next((what for magic, what in _IMAGE_MAGIC if head.startswith(magic)), None)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    frame_count: int  # from the container header (may be 0 or approximate)
    fps: float  # 0.0 when the container does not say
    width: int
    height: int

    def time_of(self, index: int) -> float | None:
        """Seconds from the start of frame ``index`` (None when the fps is unknown)."""
        return index / self.fps if self.fps > 0 else None


class VideoDecoder:
    """Sequential reader of one video file; raises :class:`Rejected` for files that are not videos."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        head = read_regular(path, 16)  # OpenCV reports a permission error as "cannot open"; a FIFO would block it
        if not head:
            raise Rejected(Reason.EMPTY_FILE, "zero bytes")
        still = image_signature(head)
        if still is not None:
            raise Rejected(Reason.NOT_A_VIDEO, f"it is {still}, not a video (give it an image extension)")
        self.path = path
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # a bad file is a reject row, not a warning
        try:
            self._cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self._cap.isOpened():
            self._cap.release()
            raise Rejected(
                Reason.NOT_A_VIDEO, "OpenCV/FFmpeg cannot open it (not a video, or an MP4 cut before its index)"
            )
        self.info = VideoInfo(
            frame_count=max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))),
            fps=float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0),
            width=int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        self.decoded = 0
        self.seeks = 0  # seeks made by frames(known=...)

    def frames(
        self,
        wanted: Callable[[int], bool] = lambda i: True,
        max_frames: int | None = None,
        known: Mapping[int, bytes] | None = None,
        next_wanted: Callable[[int], int] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(index, (H, W, 3) uint8 RGB) for every frame index ``wanted`` accepts, in order.

        ``known``: signatures (:func:`frame_signature`) of frames an earlier pass decoded from the
        start, by index; ``next_wanted(i)``: the first index >= i that ``wanted`` may accept. With
        both, a stretch of unwanted frames is skipped by seeking to the last known frame before the
        next wanted one when that is at least ``SEEK_AHEAD`` frames ahead, and every known frame
        passed after a seek is checked against its signature: a difference raises
        :class:`SeekMismatch` (the frames already yielded are then not to be trusted).
        """
        sigs: Mapping[int, bytes] = known if known and next_wanted is not None else {}
        anchors = sorted(sigs)  # indices a seek may land on: the known frames
        sought = False  # frames are checked from the first seek on (decoding from the start is the reference)
        try:
            index = 0
            while max_frames is None or index < max_frames:
                if anchors and next_wanted is not None and not wanted(index):
                    at = _last_below(anchors, next_wanted(index))
                    if at is not None and at - index >= SEEK_AHEAD and (max_frames is None or at < max_frames):
                        self._cap.set(cv2.CAP_PROP_POS_FRAMES, at)
                        index, sought = at, True
                        self.seeks += 1
                check = sought and index in sigs
                if wanted(index) or check:
                    ok, bgr = self._cap.read()
                    if not ok or bgr is None:
                        break
                    self.decoded = index + 1
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    if check and frame_signature(rgb) != sigs[index]:
                        raise SeekMismatch(
                            f"{self.path}: frame {index} reached by seeking is not the frame decoded there"
                        )
                    if wanted(index):
                        yield index, rgb
                else:
                    if not self._cap.grab():
                        break
                    self.decoded = index + 1
                index += 1
        finally:
            self._cap.release()

    def shortfall(self, max_frames: int | None = None) -> tuple[int, int] | None:
        """(first missing index, last expected index) when decoding stopped well short of the header."""
        expected = self.info.frame_count if max_frames is None else min(self.info.frame_count, max_frames)
        if expected - self.decoded > _COUNT_SLACK:
            return self.decoded, expected - 1
        return None


def _last_below(sorted_keys: list[int], target: int) -> int | None:
    """The largest of ``sorted_keys`` below ``target`` (None: none is)."""
    k = bisect.bisect_left(sorted_keys, target)
    return sorted_keys[k - 1] if k else None


def join_clips(
    parts: list[tuple[Path, int, int]],
    out: Path,
    still_s: float = 3.0,
    fps: float = 30.0,
    side: int = 480,
    blank_s: float = 0.0,
) -> list[tuple[int, int]]:
    """Write one MP4 (mp4v) of clip ranges with ``still_s`` of still frames before, between and after them.

    ``parts``: (video, first frame, last frame) each. Every frame is centre-cropped to a square and
    resized to ``side``; the stills before a part repeat its first frame (the face it starts from),
    the stills at the end the last part's first frame. ``blank_s`` of black frames come first at
    every change of clip, as an edit between takes shows (the parts may be different people).
    Returns each part's (first, last) frame number in the written video: the true movement
    boundaries of a test or benchmark "participant".
    """
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (side, side))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out} with the mp4v codec")
    if not parts:
        raise ValueError("join_clips needs at least one part")
    still, blank, spans, n = round(still_s * fps), round(blank_s * fps), [], 0
    first: np.ndarray | None = None  # the last part's first frame
    try:
        for path, a, b in parts:
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
            frames, i = [], 0
            while i <= b:
                ok, bgr = cap.read()
                if not ok:
                    break
                if i >= a:
                    h, w = bgr.shape[:2]
                    s = min(h, w)
                    y, x = (h - s) // 2, (w - s) // 2
                    frames.append(cv2.resize(bgr[y : y + s, x : x + s], (side, side), interpolation=cv2.INTER_AREA))
                i += 1
            cap.release()
            if not frames:
                raise ValueError(f"{path}: no frames in {a}-{b}")
            cut = blank if first is not None else 0
            first = frames[0]
            for f in [np.zeros_like(first)] * cut + [first] * still + frames:
                writer.write(f)
            spans.append((n + cut + still, n + cut + still + len(frames) - 1))
            n += cut + still + len(frames)
        assert first is not None  # there was a part
        for f in [np.zeros_like(first)] * blank + [first] * still:
            writer.write(f)
    finally:
        writer.release()
    return spans

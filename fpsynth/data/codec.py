"""The image codec: (H, W, 3) uint8 RGB arrays <-> PNG / JPEG bytes, the one place OpenCV encodes.

OpenCV stores channels as BGR; every array fpsynth hands around is RGB (``fpsynth.data.pixels``
turns it into network inputs), so the channel swap happens here and nowhere else. PNG is lossless
at every compression level; ``compression=None`` leaves OpenCV's own default, which is not the same
bytes as any explicit level (a different zlib strategy), so callers that never set a level keep
writing exactly the files they wrote before. Input photos of any depth, channel count or EXIF
orientation are turned into this RGB form by :mod:`fpsynth.data.images`, on top of :func:`decode_raw`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _bgr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W, 3) BGR, contiguous (the layout OpenCV's encoders read)."""
    return np.ascontiguousarray(rgb[:, :, ::-1])


def encode_png(rgb: np.ndarray, compression: int | None = None) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB array; ``compression`` 0-9, None = OpenCV's default.

    Deterministic for a given libpng: the same array and level give the same bytes.
    """
    params = [] if compression is None else [cv2.IMWRITE_PNG_COMPRESSION, compression]
    ok, buf = cv2.imencode(".png", _bgr(rgb), params)
    if not ok:  # encoding a valid uint8 array cannot fail short of a broken OpenCV
        raise RuntimeError("OpenCV failed to encode a PNG")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB array at ``quality`` 0-100 (lossy: thumbnails only)."""
    ok, buf = cv2.imencode(".jpg", _bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return buf.tobytes()


def thumbnail(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) by area averaging (no aliasing when shrinking); unchanged
    when it is already that size."""
    if rgb.shape[:2] == (size, size):
        return rgb
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def decode_rgb(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB of PNG (or JPEG) bytes fpsynth wrote; ValueError when they do not decode."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("OpenCV cannot decode the bytes as an image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def read_rgb(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB of an image file fpsynth wrote (a crop, a generated image); None when the
    file is missing or unreadable, so that each caller names the stage to re-run."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else np.ascontiguousarray(bgr[:, :, ::-1])


def decode_raw(data: bytes) -> np.ndarray | None:
    """OpenCV's array of encoded image bytes exactly as stored (grey / grey+alpha / BGR / BGRA,
    8/16-bit or float; EXIF orientation NOT applied); None when OpenCV cannot decode them.

    For input photos only, which :func:`fpsynth.data.images.decode_image` normalises; may raise
    ``cv2.error`` (OpenCV's own size limit, a decoder's assertion).
    """
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)

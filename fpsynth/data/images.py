"""Image files to RGB uint8 arrays, whatever their depth, channels or EXIF orientation.

Decoding is deliberately ``cv2.IMREAD_UNCHANGED`` (which ignores EXIF orientation) rather than
``IMREAD_COLOR`` (which applies it): IMREAD_COLOR would also squash 16-bit images by a plain
shift and drop the alpha channel, leaving whatever colour hides under transparent pixels. So the
pixels are decoded as stored and the orientation tag, read by Pillow from the header alone, is
applied here with exact flips/transposes.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np

from fpsynth.data.codec import decode_raw
from fpsynth.data.reasons import Reason, Rejected

# Transparent pixels are composited onto mid grey: neither black nor white, which a face
# detector or a blur measure could take for structure.
NEUTRAL_BACKGROUND = 127.0
_ORIENTATION_TAG = 0x0112


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (the first ``limit`` of them); :class:`Rejected` for anything else.

    Opened without blocking and checked on the open descriptor, so a FIFO or a device that took
    the place of an input is refused instead of hanging the run.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise Rejected(Reason.UNREADABLE, exc.strerror or type(exc).__name__) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Rejected(Reason.SPECIAL_FILE, "a FIFO, socket or device, not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    except OSError as exc:
        raise Rejected(Reason.UNREADABLE, exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)


def read_image(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file, upright; raises :class:`Rejected` when unusable."""
    data = read_regular(path)
    if not data:
        raise Rejected(Reason.EMPTY_FILE, "zero bytes")
    return decode_image(data, max_pixels)


def decode_image(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of encoded image bytes, upright.

    With ``max_pixels``, the size stated in the header is checked before anything is decoded: a
    40000 x 40000 PNG of a few kilobytes would otherwise ask for gigabytes (or trip OpenCV's own
    limit with an assertion).
    """
    if max_pixels is not None:
        check_size(data, max_pixels)
    try:
        arr = decode_raw(data)
    except cv2.error as exc:  # OpenCV's own size limit, a decoder's assertion: the file, not the run
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise Rejected(Reason.NOT_AN_IMAGE, f"OpenCV refuses to decode it ({first.strip()})") from None
    if arr is None or arr.size == 0:
        raise Rejected(Reason.NOT_AN_IMAGE, "OpenCV cannot decode it as an image")
    rgb = to_rgb8(arr)
    return apply_orientation(rgb, exif_orientation(data))


def check_size(data: bytes, max_pixels: int) -> None:
    """:class:`Rejected` (image_too_large) when the header of encoded image bytes states more than
    ``max_pixels`` pixels. Pillow reads the header only; a format it does not know passes (OpenCV
    then decodes it, or says it cannot)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:  # Pillow's own header bound (2 x Image.MAX_IMAGE_PIXELS, set when raised)
        raise Rejected(
            Reason.IMAGE_TOO_LARGE,
            f"its header states more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels (Pillow's bound): not decoded",
        ) from None
    except Exception:  # not a format Pillow reads, or a damaged header: decoding decides
        return
    if width * height > max_pixels:
        raise Rejected(
            Reason.IMAGE_TOO_LARGE,
            f"{width} x {height} pixels, above prepare.max_image_pixels ({max_pixels}): not decoded",
        )


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """OpenCV's decoded array (grey / grey+alpha / BGR / BGRA; 8/16-bit or float) -> (H, W, 3) uint8 RGB."""
    arr = _to_uint8(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = arr.shape[2]
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 2:  # grey + alpha
        grey = _composite(arr[:, :, :1], arr[:, :, 1])
        return np.repeat(grey, 3, axis=2)
    if channels == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return _composite(cv2.cvtColor(arr[:, :, :3], cv2.COLOR_BGR2RGB), arr[:, :, 3])
    raise Rejected(Reason.NOT_AN_IMAGE, f"{channels} colour channels")


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:  # rounded v * 255 / 65535 (a plain >> 8 truncates)
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.dtype in (np.float32, np.float64):  # linear [0, 1] (EXR/TIFF float)
        return (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise Rejected(Reason.NOT_AN_IMAGE, f"unsupported pixel type {arr.dtype}")


def _composite(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """colour (H, W, C) uint8 over the neutral background by alpha (H, W) uint8."""
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    out = colour.astype(np.float32) * a + NEUTRAL_BACKGROUND * (1.0 - a)
    return (out + 0.5).astype(np.uint8)


def exif_orientation(data: bytes) -> int:
    """EXIF orientation tag 1-8 of encoded image bytes (1 when absent or unreadable)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # no EXIF block, or one Pillow cannot parse: the pixels stand as stored
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image upright according to its EXIF orientation (1-8)."""
    if orientation == 2:  # mirrored left-right
        return cv2.flip(img, 1)
    if orientation == 3:  # rotated 180
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:  # mirrored top-bottom
        return cv2.flip(img, 0)
    if orientation == 5:  # mirrored along the main diagonal
        return cv2.transpose(img)
    if orientation == 6:  # stored rotated 90 counter-clockwise: turn it clockwise
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:  # mirrored along the anti-diagonal
        return cv2.flip(cv2.transpose(img), -1)
    if orientation == 8:  # stored rotated 90 clockwise
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img

"""The image codec (fpsynth.data.codec): RGB in, RGB out, OpenCV's bytes unchanged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fpsynth.data.codec import decode_raw, decode_rgb, encode_jpeg, encode_png, read_rgb, thumbnail


@pytest.fixture
def rgb() -> np.ndarray:
    img = np.random.default_rng(3).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)  # a pure red pixel: a channel swap would show
    return img


def test_png_round_trip_is_lossless_and_rgb(rgb: np.ndarray) -> None:
    for level in (None, 0, 3, 9):
        out = decode_rgb(encode_png(rgb, level))
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb)
    assert tuple(decode_rgb(encode_png(rgb))[0, 0]) == (255, 0, 0)


def test_png_bytes_are_opencvs_of_the_bgr_array(rgb: np.ndarray) -> None:
    # The files written before the codec existed: cv2.imencode of the BGR array, with the level
    # given only where a caller gave one (OpenCV's default is none of the explicit levels).
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert encode_png(rgb) == cv2.imencode(".png", bgr)[1].tobytes()
    assert encode_png(rgb, 3) == cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])[1].tobytes()
    assert encode_png(rgb) != encode_png(rgb, 3)
    assert encode_png(rgb[:, ::-1]) == cv2.imencode(".png", np.ascontiguousarray(bgr[:, ::-1]))[1].tobytes()


def test_jpeg_and_thumbnail(rgb: np.ndarray) -> None:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert encode_jpeg(rgb, 90) == cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    small = thumbnail(rgb, 8)
    assert small.shape == (8, 8, 3)
    np.testing.assert_array_equal(small, cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA))
    square = rgb[:20]
    assert thumbnail(square, 20) is square  # already that size: untouched


def test_read_rgb_and_raw(tmp_path, rgb: np.ndarray) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode_png(rgb))
    np.testing.assert_array_equal(read_rgb(path), rgb)
    assert read_rgb(tmp_path / "missing.png") is None
    grey16 = cv2.imencode(".png", np.full((4, 5), 40000, np.uint16))[1].tobytes()
    raw = decode_raw(grey16)
    assert raw is not None and raw.shape == (4, 5) and raw.dtype == np.uint16  # as stored, not squashed
    assert decode_raw(b"not an image") is None
    with pytest.raises(ValueError, match="cannot decode"):
        decode_rgb(b"not an image")

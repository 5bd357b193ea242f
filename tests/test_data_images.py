"""Reading images: EXIF orientation, grey, 16-bit, alpha, and files that are not images."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from fpsynth.data.images import NEUTRAL_BACKGROUND, read_image
from fpsynth.data.reasons import Reason, Rejected
from helpers.fixtures import fixture_path


def _pattern(h: int = 48, w: int = 64) -> np.ndarray:
    """An asymmetric RGB test card: every flip and rotation of it is distinguishable."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, ((x // 8 + y // 8) % 2) * 200], -1).astype(np.uint8)
    img[2:10, 2:20] = (255, 0, 0)  # a mark in the top-left corner
    return img


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"  # PNG: lossless, so the comparison is exact
    Image.fromarray(_pattern()).save(path, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_image(path)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_exif_rotated_jpeg_photo_comes_upright(tmp_path):
    """A real face photo stored rotated with orientation 6 (the phone-camera case) reads upright."""
    upright = read_image(fixture_path("faces", "photos", "obama.jpg"))
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # 90 deg counter-clockwise, as a phone stores it
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    got = read_image(path)
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright.astype(int)).mean() < 3  # JPEG re-encoding only
    # OpenCV's IMREAD_UNCHANGED alone would leave it on its side
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.shape[:2] == stored.shape[:2]


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = _pattern()[:, :, 0]
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    got = read_image(path)
    assert got.shape == (*grey.shape, 3) and got.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], grey)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    rgb16 = _pattern().astype(np.uint16) * 257  # full 16-bit range
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(read_image(path), _pattern())


def test_alpha_png_composited_on_neutral_background(tmp_path):
    rgb = _pattern()
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[:, 32:] = 255  # right half opaque, left half fully transparent
    alpha[:, 16:32] = 128
    bgra = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha])
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), bgra)
    got = read_image(path)
    assert got.shape == rgb.shape
    np.testing.assert_array_equal(got[:, 32:], rgb[:, 32:])
    assert (got[:, :16] == NEUTRAL_BACKGROUND).all()
    half = rgb[:, 16:32].astype(float) * 128 / 255 + NEUTRAL_BACKGROUND * (1 - 128 / 255)
    assert np.abs(got[:, 16:32] - half).max() <= 1


def test_grey_alpha_png(tmp_path):
    la = Image.fromarray(np.dstack([_pattern()[:, :, 1], np.full((48, 64), 255, np.uint8)]), mode="LA")
    buf = io.BytesIO()
    la.save(buf, format="PNG")
    path = tmp_path / "la.png"
    path.write_bytes(buf.getvalue())
    got = read_image(path)
    np.testing.assert_array_equal(got[:, :, 0], _pattern()[:, :, 1])


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", Reason.EMPTY_FILE),
        (b"this is a text file, not a photo\n", Reason.NOT_AN_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, Reason.NOT_AN_IMAGE),
    ],
    ids=["zero-byte", "text", "png-header-only"],
)
def test_bad_files_are_rejected_with_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(Rejected) as err:
        read_image(path)
    assert err.value.reason is reason


def test_truncated_jpeg_is_rejected_or_read(tmp_path):
    """Half a JPEG either decodes (libjpeg pads the rest grey) or is a clear reason, never a crash."""
    data = (fixture_path("faces", "photos", "obama.jpg")).read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    try:
        img = read_image(path)
    except Rejected as r:
        assert r.reason is Reason.NOT_AN_IMAGE
    else:
        assert img.ndim == 3 and img.shape[2] == 3


def test_unreadable_file(tmp_path):
    broken = tmp_path / "gone.jpg"
    broken.symlink_to(tmp_path / "does-not-exist.jpg")
    with pytest.raises(Rejected) as err:
        read_image(broken)
    assert err.value.reason is Reason.UNREADABLE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied(tmp_path):
    path = tmp_path / "locked.png"
    cv2.imwrite(str(path), _pattern())
    path.chmod(0)
    with pytest.raises(Rejected) as err:
        read_image(path)
    assert err.value.reason is Reason.UNREADABLE

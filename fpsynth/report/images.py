"""Image input/output of the report: batches of crops from disk, PNGs written atomically, and
thumbnails embedded in the page as ``data:`` URIs (the page loads no file)."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from fpsynth.data.codec import encode_jpeg, encode_png, thumbnail
from fpsynth.data.dataset import load_crop
from fpsynth.metrics.landmarks import to_rgb_uint8
from fpsynth.stage import atomic_write_bytes

THUMB_JPEG_QUALITY = 90  # thumbnails only; metrics always read the lossless PNGs


def load_images(paths: Sequence[str | Path]) -> torch.Tensor:
    """(N, 3, H, W) float RGB in [-1, 1] of crop files (all of one size)."""
    return torch.stack([load_crop(Path(p)) for p in paths])


def batched(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices covering range(n)."""
    for lo in range(0, n, batch_size):
        yield slice(lo, min(lo + batch_size, n))


def save_png(path: Path, image: torch.Tensor) -> None:
    """One image (3, H, W) in [-1, 1] as an RGB PNG, written atomically."""
    atomic_write_bytes(Path(path), encode_png(to_rgb_uint8(image[None])[0]))


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file."""
    return to_rgb_uint8(load_crop(Path(path))[None])[0]


def data_uri(rgb: np.ndarray, size: int | None = None) -> str:
    """A ``data:image/jpeg;base64,...`` URI of an (H, W, 3) uint8 RGB image, resized to ``size`` px."""
    jpeg = encode_jpeg(rgb if size is None else thumbnail(rgb, size), THUMB_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def file_data_uri(path: str | Path, size: int | None = None) -> str:
    return data_uri(read_rgb(path), size)

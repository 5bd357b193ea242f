"""PNG files that carry ``tEXt`` chunks (the demo data labels every image as synthetic in its file)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

import numpy as np

from fpsynth.data.codec import encode_png

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(rgb: np.ndarray, text: Mapping[str, str]) -> bytes:
    """Encode a (H, W, 3) uint8 RGB image as PNG with ``tEXt`` chunks (keyword -> Latin-1 text).

    The chunks go right after the header so any reader (``exiftool``, PIL's ``.text``,
    :func:`png_text`) shows them; OpenCV's encoder has no option for text, hence the splice.
    """
    data = encode_png(rgb, 3)
    ihdr_end = len(_PNG_SIGNATURE) + 8 + 13 + 4  # length, type, 13 data bytes, CRC
    chunks = b"".join(_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1")) for k, v in text.items())
    return data[:ihdr_end] + chunks + data[ihdr_end:]


def png_text(data: bytes) -> dict[str, str]:
    """The ``tEXt`` chunks of PNG bytes as a dict (every chunk's CRC is checked on the way)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    out, pos = {}, len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if crc != zlib.crc32(kind + payload):
            raise ValueError(f"PNG chunk {kind!r} at byte {pos} fails its CRC")
        if kind == b"tEXt":
            key, _, value = payload.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

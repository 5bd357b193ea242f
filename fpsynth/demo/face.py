"""Synthetic identities and their neutral iBUG 68-point landmarks.

Geometry lives in a *canonical frame*: coordinates are fractions of the image size, x right,
y down, face centred on x = 0.5, looking straight at the camera. A renderer maps this frame to
pixels with a similarity transform; landmarks and drawing go through the same transform, so the
written ``.pts`` are exact by construction.

iBUG 68-point layout (image-left = the subject's RIGHT side):
    0-16 jaw (0 at the image-left ear, 8 chin), 17-21 / 22-26 brows (image-left outer->inner /
    image-right inner->outer), 27-30 nose bridge down to the tip, 31-35 nostril base left->right,
    36-41 image-left eye (36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid),
    42-47 image-right eye (42 inner, 43-44 upper, 45 outer, 46-47 lower), 48-59 outer lip
    (48 / 54 corners, 51 top centre, 57 bottom centre), 60-67 inner lip (60 / 64 corners).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

import numpy as np

from fpsynth.data import ibug68
from fpsynth.data.ibug68 import MIRROR

CENTRE_X = 0.5
JAW_TOP = -0.006  # height of jaw points 0 / 16 (the ear line) relative to the eye line

MIDLINE = np.flatnonzero(MIRROR == np.arange(68))  # 8, 27-30, 33, 51, 57, 62, 66
# Points on the image-left half; with MIDLINE they determine a symmetric face.
IMAGE_LEFT = np.array(
    list(range(0, 8)) + [17, 18, 19, 20, 21, 31, 32] + list(range(36, 42)) + [48, 49, 50, 58, 59, 60, 61, 67]
)

RIGHT_EYE = ibug68.indices(ibug68.RIGHT_EYE)  # the subject's right eye, on the image's left
LEFT_EYE = ibug68.indices(ibug68.LEFT_EYE)  # the subject's left eye, on the image's right


class HairStyle(str, enum.Enum):
    SHORT = "short"
    LONG = "long"
    FRINGE = "fringe"
    BUZZ = "buzz"  # cropped close: the scalp shows through


# Skin tones from light to very dark (RGB); a subject's tone is a point on this ramp.
_SKIN_RAMP = np.array(
    [[240, 205, 180], [222, 178, 145], [196, 145, 108], [160, 110, 75], [116, 78, 54], [82, 56, 42]], np.float32
)
_HAIR = np.array(
    [[28, 22, 20], [58, 38, 26], [104, 68, 42], [182, 150, 96], [130, 62, 32], [150, 146, 140]], np.float32
)
_IRIS = np.array([[74, 46, 28], [45, 30, 22], [70, 110, 150], [80, 110, 70], [110, 85, 50]], np.float32)
_BACKDROP = np.array(
    [[196, 206, 214], [170, 184, 168], [212, 200, 182], [150, 160, 184], [120, 128, 136], [218, 214, 210]], np.float32
)
_SHIRT = np.array(
    [[40, 60, 110], [150, 40, 45], [60, 110, 80], [210, 210, 205], [45, 45, 50], [170, 140, 90]], np.float32
)


@dataclasses.dataclass(frozen=True)
class Identity:
    """Shape and appearance of one synthetic person; lengths in canonical units (image fractions)."""

    face_w: float  # half-width of the face at ear level
    face_h: float  # eye line to chin
    jaw_square: float  # superellipse exponent of the jaw: 2 round .. 3 square
    eye_y: float  # height of the eye line
    eye_sep: float  # half the distance between the eye centres
    eye_w: float  # eye corner to corner
    eye_open: float  # lid opening as a fraction of eye_w
    canthal_tilt: float  # outer corner above the inner corner by this much
    brow_gap: float  # brow above the eye line
    brow_arch: float
    brow_thick: float
    nose_len: float  # eye line to the subnasale (point 33)
    nose_w: float  # half-width of the nostril base
    mouth_gap: float  # subnasale (33) to the lip line
    mouth_w: float  # corner to corner
    lip_upper: float
    lip_lower: float
    skin: tuple[float, float, float]  # RGB 0..255
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    brows: tuple[float, float, float]
    iris: tuple[float, float, float]
    backdrop: tuple[tuple[float, float, float], tuple[float, float, float]]  # top, bottom
    shirt: tuple[float, float, float]
    hair_style: HairStyle
    fold_depth: float  # resting depth of the nasolabial folds, 0..1
    effort: float  # how fully this person performs a movement at its peak (0.85..1)


def _rgb(values: Iterable[float]) -> tuple[float, float, float]:
    """Three channel values as a tuple of Python floats."""
    r, g, b = (float(v) for v in values)
    return r, g, b


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float = 10.0) -> tuple[float, float, float]:
    c = palette[rng.integers(len(palette))] + rng.uniform(-jitter, jitter, 3)
    return _rgb(np.clip(c, 0, 255))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one identity; every parameter comes from ``rng`` (so one seed gives one person)."""
    u = rng.uniform
    t = u(0, len(_SKIN_RAMP) - 1)  # skin tone: interpolate along the ramp
    i = int(min(t, len(_SKIN_RAMP) - 2))
    skin = _SKIN_RAMP[i] + (t - i) * (_SKIN_RAMP[i + 1] - _SKIN_RAMP[i]) + u(-6, 6, 3)
    lips = skin * np.array([0.9, 0.68, 0.74]) + np.array([8, 0, 0]) + u(-8, 8, 3)
    hair = _pick(rng, _HAIR, 8)
    top = np.array(_pick(rng, _BACKDROP, 14))
    bottom = np.clip(top * u(0.7, 0.92), 0, 255)
    return Identity(
        face_w=u(0.245, 0.285),
        face_h=u(0.34, 0.39),
        jaw_square=u(2.1, 3.0),
        eye_y=u(0.415, 0.445),
        eye_sep=u(0.095, 0.108),
        eye_w=u(0.075, 0.088),
        eye_open=u(0.3, 0.4),
        canthal_tilt=u(-0.002, 0.006),
        brow_gap=u(0.05, 0.062),
        brow_arch=u(0.012, 0.022),
        brow_thick=u(0.009, 0.017),
        nose_len=u(0.15, 0.175),
        nose_w=u(0.034, 0.046),
        mouth_gap=u(0.05, 0.065),
        mouth_w=u(0.15, 0.185),
        lip_upper=u(0.013, 0.02),
        lip_lower=u(0.018, 0.027),
        skin=_rgb(np.clip(skin, 0, 255)),
        lips=_rgb(np.clip(lips, 0, 255)),
        hair=hair,
        brows=_rgb(0.6 * v for v in hair),
        iris=_pick(rng, _IRIS, 10),
        backdrop=(_rgb(top), _rgb(bottom)),
        shirt=_pick(rng, _SHIRT, 16),
        hair_style=HairStyle(rng.choice([s.value for s in HairStyle])),
        fold_depth=u(0.25, 0.6),
        effort=u(0.85, 1.0),
    )


def symmetrize(half: np.ndarray) -> np.ndarray:
    """(68, 2) array whose IMAGE_LEFT and MIDLINE rows are set -> the full mirror-symmetric array.

    Works for positions (mirrored about x = CENTRE_X) only; for displacements use
    :func:`mirror_vectors`.
    """
    out = half.copy()
    out[MIRROR[IMAGE_LEFT]] = np.stack([2 * CENTRE_X - half[IMAGE_LEFT, 0], half[IMAGE_LEFT, 1]], axis=1)
    out[MIDLINE, 0] = CENTRE_X
    return out


def mirror_vectors(half: np.ndarray) -> np.ndarray:
    """Displacement field defined on IMAGE_LEFT and MIDLINE rows -> symmetric (68, 2) field."""
    out = half.copy()
    out[MIRROR[IMAGE_LEFT]] = np.stack([-half[IMAGE_LEFT, 0], half[IMAGE_LEFT, 1]], axis=1)
    out[MIDLINE, 0] = 0.0
    return out


def neutral_landmarks(idt: Identity) -> np.ndarray:
    """(68, 2) canonical landmarks of the relaxed, symmetric face."""
    p = np.zeros((68, 2), np.float64)
    cx, ey = CENTRE_X, idt.eye_y
    jaw_top, chin = ey + JAW_TOP, ey + idt.face_h
    # Jaw: the lower-left quarter of a superellipse, 0 (ear) .. 8 (chin) at equal arc length.
    phi = np.linspace(0.0, np.pi / 2, 200)
    n = idt.jaw_square
    curve = np.stack(
        [cx - idt.face_w * np.cos(phi) ** (2 / n), jaw_top + (chin - jaw_top) * np.sin(phi) ** (2 / n)], axis=1
    )
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    at = np.linspace(0.0, arc[-1], 9)
    p[0:9] = np.stack([np.interp(at, arc, curve[:, 0]), np.interp(at, arc, curve[:, 1])], axis=1)
    # Image-left eye: outer corner 36, upper lid 37-38, inner corner 39, lower lid 40-41.
    ex, w, h = cx - idt.eye_sep, idt.eye_w, idt.eye_open * idt.eye_w
    p[36] = (ex - w / 2, ey - idt.canthal_tilt)
    p[37] = (ex - w / 6, ey - 0.55 * h)
    p[38] = (ex + w / 6, ey - 0.52 * h)
    p[39] = (ex + w / 2, ey)
    p[40] = (ex + w / 6, ey + 0.42 * h)
    p[41] = (ex - w / 6, ey + 0.45 * h)
    # Brow 17 (outer) .. 21 (inner): an arch over the eye, its outer tail a little lower.
    u = np.linspace(0.0, 1.0, 5)
    bx = np.linspace(ex - 0.85 * w, ex + 0.72 * w, 5)
    by = ey - idt.brow_gap - idt.brow_arch * np.sin(np.pi * (0.15 + 0.75 * u)) + 0.01 * (1 - u) ** 2
    p[ibug68.RIGHT_BROW] = np.stack([bx, by], axis=1)
    # Nose: bridge 27-30 from between the eyes to the tip; base 31 (ala) .. 33 (subnasale).
    base = ey + idt.nose_len  # subnasale 33; the tip 30 sits above the nostrils
    p[27:31, 0] = cx
    p[27:31, 1] = [ey - 0.012, ey + 0.25 * idt.nose_len, ey + 0.5 * idt.nose_len, base - 0.036]
    p[31] = (cx - idt.nose_w, base - 0.013)
    p[32] = (cx - 0.5 * idt.nose_w, base - 0.003)
    p[33] = (cx, base)
    # Lips: corners 48 on the lip line; cupid's bow 50 above the centre 51; inner lips closed.
    ym, mw, lu, ll = base + idt.mouth_gap, idt.mouth_w, idt.lip_upper, idt.lip_lower
    p[48] = (cx - mw / 2, ym)
    p[49] = (cx - 0.3 * mw, ym - 0.8 * lu)
    p[50] = (cx - 0.1 * mw, ym - 1.05 * lu)
    p[51] = (cx, ym - 0.88 * lu)
    p[59] = (cx - 0.3 * mw, ym + 0.72 * ll)
    p[58] = (cx - 0.12 * mw, ym + 0.97 * ll)
    p[57] = (cx, ym + ll)
    p[60] = (cx - 0.42 * mw, ym)
    p[61] = (cx - 0.16 * mw, ym - 0.001)
    p[62] = (cx, ym - 0.001)
    p[67] = (cx - 0.16 * mw, ym + 0.001)
    p[66] = (cx, ym + 0.001)
    return symmetrize(p)


def auxiliary_outline(idt: Identity, lm: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical outlines the renderer needs beyond the 68 points (skull, hairline, neck, shirt, ears).

    They follow the current landmarks (the jaw drops with an open mouth, the ears stay put), so
    a global transform moves them with the face.
    """
    cx, ey = CENTRE_X, idt.eye_y
    jaw_top = ey + JAW_TOP
    top = ey - 0.28  # crown of the skull
    phi = np.linspace(0.0, np.pi, 25)
    skull = np.stack(
        [
            cx + idt.face_w * 1.02 * np.cos(phi),  # from the image-right ear over the top
            jaw_top - (jaw_top - top) * np.sin(phi) ** 0.8,
        ],
        axis=1,
    )
    hair_y = ey - idt.brow_gap - 0.075  # hairline at the forehead's top
    side = np.clip((np.abs(np.cos(phi)) - 0.8) / 0.18, 0.0, 1.0)
    side = side * side * (3 - 2 * side)  # smoothstep: the hairline drops at the temples
    hairline = np.stack(
        [cx + idt.face_w * 0.98 * np.cos(phi), hair_y + (ey - 0.015 - hair_y) * side - 0.012 * np.sin(phi) ** 2], axis=1
    )[::-1]  # image-left to right
    # Neck down to a round neckline (the shirt is drawn first, the neck over it).
    chin = ey + idt.face_h
    neck_w, collar = 0.5 * idt.face_w, chin + 0.1
    arc = np.linspace(0.0, np.pi, 13)
    neck = np.concatenate(
        [
            [[cx - neck_w, lm[4, 1]], [cx + neck_w, lm[12, 1]]],
            np.stack([cx + 1.12 * neck_w * np.cos(arc), collar + 0.035 * np.sin(arc)], axis=1),
        ]
    )
    shirt = np.concatenate(
        [np.stack([cx - 0.5 * np.cos(arc), collar + 0.13 - 0.14 * np.sin(arc)], axis=1), [[1.2, 1.2], [-0.2, 1.2]]]
    )
    ear_y = 0.5 * (lm[0, 1] + lm[3, 1])
    ears = np.array([[lm[0, 0] - 0.006, ear_y], [lm[16, 0] + 0.006, ear_y]])
    return {"skull": skull, "hairline": hairline, "neck": neck, "shirt": shirt, "ears": ears}

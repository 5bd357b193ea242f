"""Draw a synthetic face whose geometry is its 68 iBUG landmarks.

Every feature is drawn FROM the landmarks of a :class:`~fpsynth.demo.movements.FaceState`: the
jaw outline passes through points 0-16, the eye openings through 36-47 (a closed eye is just its
lid line), the brows along 17-26, the lips through 48-67 (an open mouth shows its inside and
teeth). Extra outlines (skull, hair, neck, ears) are built in the same canonical frame. All of it
goes through one similarity transform ``m`` to pixels, and :func:`render_face` returns the
transformed landmarks with the image, so the ``.pts`` a writer stores are exact by construction.

Shading is soft: a lighting ramp from the upper left, the face darkening toward its outline,
blurred creases (nasolabial folds, forehead and nasal lines whose strength the movement and the
palsy set), a slight optical blur and, optionally, sensor noise.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from fpsynth.data.align import transform_points
from fpsynth.data.ibug68 import BROWS, INNER_LIP, JAW, LEFT_BROW, OUTER_LIP, RIGHT_BROW, indices
from fpsynth.demo.face import CENTRE_X, JAW_TOP, LEFT_EYE, RIGHT_EYE, HairStyle, Identity, auxiliary_outline
from fpsynth.demo.movements import FaceState
from fpsynth.demo.paint import Canvas, ellipse, spline

_SCLERA = np.array([236, 232, 226], np.float32)
_MOUTH = np.array([62, 24, 30], np.float32)
_TEETH = np.array([238, 234, 222], np.float32)
_LASH = np.array([34, 24, 22], np.float32)
_PUPIL = np.array([14, 10, 10], np.float32)
_CATCHLIGHT = np.full(3, 250, np.float32)
# Image-left and image-right eye; each runs corner, upper lid x2, corner, lower lid x2.
_EYES = (RIGHT_EYE, LEFT_EYE)


def render_face(
    idt: Identity,
    state: FaceState,
    m: np.ndarray,
    size: int,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one face -> ((size, size, 3) uint8 RGB image, (68, 2) landmarks in its pixels).

    ``m`` is the (2, 3) canonical-to-pixel map (:func:`fpsynth.demo.paint.similarity_matrix`);
    ``rng`` draws the sensor noise only, so the geometry never depends on it.
    """
    r = _Renderer(idt, state, m, size)
    r.draw()
    return r.canvas.finish(rng, noise, soften=0.35 * size / 256), r.px


@functools.lru_cache(maxsize=4)
def _lighting(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size,) 0..1 ramp and the (size, size) key-light multiplier, brighter to the upper left."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    light = 1.06 - 0.12 * ramp[None, :] - 0.08 * ramp[:, None]
    light.setflags(write=False)
    return ramp, light


class _Renderer:
    def __init__(self, idt: Identity, state: FaceState, m: np.ndarray, size: int) -> None:
        self.idt, self.st, self.m, self.size = idt, state, m, size
        self.lm = state.landmarks  # canonical
        self.px = transform_points(m, self.lm)  # (68, 2) pixels: what the .pts files hold
        self.ppu = math.sqrt(abs(np.linalg.det(m[:, :2])))  # pixels per canonical unit
        self.angle = math.degrees(math.atan2(-m[1, 0], m[0, 0]))  # on-screen rotation of the face
        self.aux = auxiliary_outline(idt, self.lm)
        self.skin = np.array(idt.skin, np.float32)
        self.hair = np.array(idt.hair, np.float32)
        ramp, light = _lighting(size)
        top, bottom = (np.array(c, np.float32) for c in idt.backdrop)
        self.canvas = Canvas(size, top + (bottom - top) * ramp[:, None, None], light)

    # ---------------------------------------------------------------- helpers (canonical in)
    def T(self, pts: np.ndarray) -> np.ndarray:
        return transform_points(self.m, pts)

    def u(self, length: float) -> float:
        """A canonical length in pixels."""
        return length * self.ppu

    def oval(self, centre, axes, angle: float = 0.0) -> np.ndarray:
        return self.T(ellipse(np.asarray(centre, np.float64), axes, angle))

    # ---------------------------------------------------------------- the whole face
    def draw(self) -> None:
        if self.idt.hair_style is HairStyle.LONG:
            self.hair_back()
        c = self.canvas
        c.fill(self.T(self.aux["shirt"]), np.array(self.idt.shirt, np.float32), lit=True)
        neck = self.T(self.aux["neck"])
        c.fill(neck, self.skin * 0.86, lit=True)
        jaw_shadow = self.lm[2:15] + (0.0, 0.025)
        c.fill(self.T(jaw_shadow), self.skin * 0.55, alpha=0.6, blur=self.u(0.014), clip=c.coverage([neck]))
        for e, sign in zip(self.aux["ears"], (-1, 1)):
            c.fill(self.oval(e, (0.026, 0.052)), self.skin * 0.93, lit=True)
            c.fill(self.oval(e + (0.005 * sign, 0.0), (0.013, 0.033)), self.skin * 0.7, 0.55, self.u(0.004))
        self.head()
        self.creases()
        self.nose()
        for k, eye in enumerate(_EYES):
            self.eye(eye, self.st.gaze_up[k])
        self.brows()
        self.mouth()
        self.hair_front()

    def head(self) -> None:
        """Skin of face and skull, darkening toward the outline; blush and cheekbone light."""
        c = self.canvas
        outline = np.concatenate([spline(self.px[JAW], per_segment=6), self.T(self.aux["skull"])])
        got = c.coverage([outline])
        if got is None:
            return
        roi, cov = got
        x0, y0, x1, y1 = roi
        # Distance-like falloff: a heavily blurred copy of the mask (done at 1/4 size for speed).
        small = cv2.resize(cov, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), max(self.u(0.035) / 4, 0.5))
        inner = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        shade = 0.74 + 0.26 * np.sqrt(np.clip(2 * inner - 1, 0, 1))
        c.paint(roi, cov, self.skin * shade[..., None], lit=True)
        lips = np.array(self.idt.lips, np.float32)
        for sign in (-1, 1):
            eye_x = CENTRE_X + sign * self.idt.eye_sep
            c.fill(self.oval((eye_x, self.idt.eye_y + 0.1), (0.05, 0.032)), lips, 0.13, self.u(0.02))
            c.fill(
                self.oval((eye_x + sign * 0.02, self.idt.eye_y + 0.06), (0.045, 0.018)),
                np.minimum(self.skin * 1.15 + 10, 255),
                0.14,
                self.u(0.015),
            )

    def creases(self) -> None:
        """Nasolabial folds, forehead lines and the mentolabial shadow, each per image half."""
        c, lm, dark = self.canvas, self.lm, self.skin * 0.55
        for k, (ala, corner, sign) in enumerate(((31, 48, -1.0), (35, 54, 1.0))):
            depth = self.st.nasolabial[k]
            if depth > 0.01:
                p0 = lm[ala] + (sign * 0.012, -0.01)
                p2 = lm[corner] + (sign * 0.014, 0.03)
                p1 = np.array([p0[0] + sign * 0.03, 0.55 * p0[1] + 0.45 * p2[1]])
                t = np.linspace(0, 1, 16)[:, None]
                fold = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2  # quadratic Bezier
                c.stroke(self.T(fold), dark, self.u(0.006), 0.45 * depth, self.u(0.004))
                c.stroke(
                    self.T(fold + (sign * 0.01, -0.004)),
                    np.minimum(self.skin * 1.12, 255),
                    self.u(0.012),
                    0.3 * depth,
                    self.u(0.006),
                )
            lines = self.st.forehead[k]
            if lines > 0.01:
                brow_y = lm[RIGHT_BROW, 1].mean() if k == 0 else lm[LEFT_BROW, 1].mean()
                x = CENTRE_X + sign * np.linspace(0.0, 0.16, 9)
                for j, off in enumerate((0.022, 0.038, 0.054)):
                    y = brow_y - off - 0.01 * ((x - CENTRE_X) / 0.16) ** 2
                    c.stroke(
                        self.T(np.stack([x, y], 1)),
                        self.skin * 0.62,
                        self.u(0.004),
                        0.5 * lines * (1 - 0.2 * j),
                        self.u(0.002),
                    )
        chin = lm[57] + (0.0, 0.022)
        c.fill(self.oval(chin, (0.03, 0.007)), dark, 0.18, self.u(0.006))

    def nose(self) -> None:
        c, lm = self.canvas, self.lm
        for sign, ala, inner in ((-1, 31, 32), (1, 35, 34)):
            side = np.array(
                [
                    [CENTRE_X + sign * 0.013, lm[27, 1] + 0.02],
                    [CENTRE_X + sign * 0.017, lm[29, 1]],
                    lm[ala] + (sign * 0.004, -0.02),
                ]
            )
            c.stroke(self.T(side), self.skin * 0.7, self.u(0.006), 0.3, self.u(0.006))
            c.fill(self.oval(lm[ala] + (-sign * 0.004, -0.008), (0.012, 0.011)), self.skin * 0.84, 0.55, self.u(0.004))
            nostril = 0.5 * (lm[ala] + lm[inner]) + (0.0, -0.004)
            c.fill(self.oval(nostril, (0.009, 0.0045), -sign * 15 + self.angle), self.skin * 0.3, 0.85, self.u(0.0015))
        c.fill(self.oval(lm[33] + (0.0, 0.006), (0.02, 0.006)), self.skin * 0.6, 0.3, self.u(0.005))
        c.fill(
            self.oval(lm[30] + (0.0, -0.004), (0.011, 0.009)),
            np.minimum(self.skin * 1.15 + 12, 255),
            0.4,
            self.u(0.005),
        )
        c.stroke(self.T(lm[[27, 28, 29]]), np.minimum(self.skin * 1.1 + 8, 255), self.u(0.006), 0.25, self.u(0.004))
        for w, sign in zip(self.st.nose_wrinkle, (-1, 1)):  # lines across the bridge, per half
            if w <= 0.01:
                continue
            for off in (-0.008, 0.002, 0.012):
                y = lm[28, 1] + off
                seg = np.array([[CENTRE_X + sign * 0.004, y], [CENTRE_X + sign * 0.02, y + 0.006]])
                c.stroke(self.T(seg), self.skin * 0.6, self.u(0.004), 0.5 * w, self.u(0.002))

    def eye(self, idx: np.ndarray, gaze_up: float) -> None:
        c, lm, px = self.canvas, self.lm, self.px
        upper, lower = idx[[0, 1, 2, 3]], idx[[3, 4, 5, 0]]
        corners = 0.5 * (lm[idx[0]] + lm[idx[3]])
        h0 = self.idt.eye_open * self.idt.eye_w  # rest opening: the socket and crease stay put
        c.fill(self.oval(corners + (0.0, -0.015), (0.75 * self.idt.eye_w, 0.03)), self.skin * 0.78, 0.35, self.u(0.008))
        crease = lm[upper].copy()
        crease[1:3, 1] = np.minimum(crease[1:3, 1], corners[1] - 0.55 * h0) - 0.009
        crease[[0, 3], 1] -= 0.003
        c.stroke(self.T(crease), self.skin * 0.62, self.u(0.004), 0.45, self.u(0.002))
        opening = np.concatenate([spline(px[upper]), spline(px[lower])[1:-1]])
        white = c.coverage([opening])
        if white is not None:
            c.paint(white[0], white[1], _SCLERA, lit=True)
            iris_c = corners + (0.0, -0.05 * h0 - 0.7 * gaze_up * h0)
            r = 0.21 * self.idt.eye_w
            iris = np.array(self.idt.iris, np.float32)
            c.fill(self.oval(iris_c, (r, r)), iris, clip=white)
            c.fill(self.oval(iris_c, (r, r)), iris * 0.45, 0.6, self.u(0.004), clip=white)
            c.fill(self.oval(iris_c, (0.78 * r, 0.78 * r)), iris, 0.75, self.u(0.002), clip=white)
            c.fill(self.oval(iris_c, (0.42 * r, 0.42 * r)), _PUPIL, clip=white)
            c.fill(self.oval(iris_c + (-0.3 * r, -0.35 * r), (0.16 * r, 0.16 * r)), _CATCHLIGHT, 0.9, clip=white)
            c.fill(opening, self.skin * 0.5, 0.25, self.u(0.004), clip=white)  # lid shadow on the eyeball
        c.stroke(px[lower], self.skin * 0.68, self.u(0.003), 0.5)
        c.stroke(spline(px[upper]), _LASH, self.u(0.0055), 0.92)

    def brows(self) -> None:
        c, lm = self.canvas, self.lm
        colour = np.array(self.idt.brows, np.float32)
        t = self.idt.brow_thick
        for idx in (indices(RIGHT_BROW), indices(LEFT_BROW)[::-1]):  # outer -> inner on both sides
            mid = spline(lm[idx], per_segment=6)
            d = np.gradient(mid, axis=0)
            normal = np.stack([d[:, 1], -d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
            normal *= np.sign(normal[:, 1:2].mean() + 1e-12) * -1  # point up (toward -y)
            thick = t * np.linspace(0.45, 1.0, len(mid))[:, None]
            poly = np.concatenate([mid + 0.6 * thick * normal, (mid - 0.4 * thick * normal)[::-1]])
            c.fill(self.T(poly), colour, 0.9, self.u(0.0015))

    def mouth(self) -> None:
        c, lm, px = self.canvas, self.lm, self.px
        lips = np.array(self.idt.lips, np.float32)
        outer = spline(px[OUTER_LIP], closed=True, per_segment=5)
        c.fill(outer, lips, lit=True)
        upper = np.concatenate([spline(px[48:55], per_segment=5), spline(px[[64, 63, 62, 61, 60]], per_segment=5)])
        c.fill(upper, lips * 0.82, 0.8)
        c.fill(
            self.oval(0.5 * (lm[57] + lm[66]), (0.022, 0.005)), np.minimum(lips * 1.25 + 15, 255), 0.3, self.u(0.004)
        )
        # Mouth opening (canonical, largest inner-lip gap): the inside and teeth fade in with it,
        # so the hair-thin gap of closed lips never shows as a line of teeth.
        gap = float(np.max(lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]))
        opened = min(max((gap - 0.003) / 0.006, 0.0), 1.0)
        hole = c.coverage([spline(px[INNER_LIP], closed=True, per_segment=5)]) if opened > 0 else None
        if hole is not None:
            c.paint(hole[0], hole[1] * opened, _MOUTH)
            shown = 0.95 * min(max((gap - 0.006) / 0.01, 0.0), 1.0)
            for edge, sign, h in (([60, 61, 62, 63, 64], 1.0, 0.016), ([60, 67, 66, 65, 64], -1.0, 0.009)):
                teeth = np.concatenate([self.T(lm[edge]), self.T(lm[edge] + (0.0, sign * h))[::-1]])
                c.fill(teeth, _TEETH, shown, clip=hole)
        seam = spline(px[[48, 60, 61, 62, 63, 64, 54]], per_segment=5)
        c.stroke(seam, lips * 0.45, self.u(0.0035), 0.7)

    # ---------------------------------------------------------------- hair
    def _cap(self, sx: float = 1.06, sy: float = 1.08) -> np.ndarray:
        """The skull outline grown about the ear line: the outer edge of the hair."""
        pivot = np.array([CENTRE_X, self.idt.eye_y + JAW_TOP])
        return pivot + (self.aux["skull"] - pivot) * (sx, sy)

    def hair_back(self) -> None:
        chin = self.idt.eye_y + self.idt.face_h
        w = self.idt.face_w
        back = np.concatenate(
            [self._cap(1.14, 1.1), [[CENTRE_X - 1.3 * w, chin + 0.1], [CENTRE_X + 1.3 * w, chin + 0.1]]]
        )
        self.canvas.fill(self.T(back), self.hair * 0.8, lit=True)

    def hair_front(self) -> None:
        c, idt, lm = self.canvas, self.idt, self.lm
        style = idt.hair_style
        hairline = self.aux["hairline"].copy()
        if style is HairStyle.FRINGE:  # bangs: a jagged edge just above the brows
            fringe_y = min(lm[BROWS, 1].min() - 0.025, hairline[:, 1].min() + 0.07)
            central = np.abs(hairline[:, 0] - CENTRE_X) < 0.8 * idt.face_w
            hairline[central, 1] = fringe_y + 0.008 * (np.arange(central.sum()) % 2)
        cap = self._cap(1.02, 1.03) if style is HairStyle.BUZZ else self._cap()
        parts = [np.concatenate([cap, hairline])]
        if style is HairStyle.LONG:  # side locks over the ears down to the jaw
            w, ey = idt.face_w, idt.eye_y
            for sign, j in ((-1, (0, 1, 2, 3)), (1, (16, 15, 14, 13))):
                outer = np.array(
                    [
                        [CENTRE_X + sign * 0.96 * w, ey - 0.03],
                        [CENTRE_X + sign * 1.13 * w, ey],
                        [CENTRE_X + sign * 1.16 * w, ey + 0.13],
                        [CENTRE_X + sign * 1.1 * w, ey + 0.25],
                    ]
                )
                inner = lm[list(j)][::-1] + (sign * 0.006, 0.0)
                parts.append(np.concatenate([outer, inner]))
        polys = [self.T(p) for p in parts]
        density = 0.55 if style is HairStyle.BUZZ else 0.97  # a buzz cut lets the scalp show
        for p in polys:
            c.fill(p, self.hair, density, self.u(0.002), lit=True)
        cover = c.coverage(polys)
        if cover is None or style is HairStyle.BUZZ:
            return
        shine = np.minimum(self.hair * 1.4 + 25, 255)
        for k, s in enumerate((0.97, 0.92, 0.86, 0.8)):  # strands following the skull
            arc = self._cap(1.06 * s, 1.08 * s)[3:-3]
            strand = np.concatenate([arc, arc[::-1] + (0.0, 0.004)])
            c.fill(self.T(strand), shine if k % 2 else self.hair * 0.6, 0.22, self.u(0.003), clip=cover)

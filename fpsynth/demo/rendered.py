"""Labelled crops drawn by the demo renderer (exact palsy side and severity), for tests and benchmarks
of the utility stage (it serves no stage, so it lives with the renderer, above fpsynth.utility).

:func:`rendered_samples` renders subjects of known severity and side performing movements,
aligns each frame onto the 112x112 template exactly as ``prepare`` does (from the exact
landmarks) and returns :class:`~fpsynth.utility.regimes.Samples` with the crops, the landmarks
in crop coordinates and a table shaped like the frames manifest (``subject``, ``frame_id``,
``severity``, ``eface``, ``side``, ``expression``, ``phase``). Rendered faces of no real person.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fpsynth import seeds
from fpsynth.data.align import align
from fpsynth.demo.face import neutral_landmarks, sample_identity
from fpsynth.demo.movements import Palsy, Side, clip_schedule, pose_face
from fpsynth.demo.paint import similarity_matrix
from fpsynth.demo.render import render_face
from fpsynth.demo.scores import grade
from fpsynth.demo_config import Movement
from fpsynth.utility.regimes import Samples

RENDER_SIZE = 128
SIDES: tuple[Side, Side] = ("left", "right")  # the palsied subjects alternate sides in this order


def rendered_samples(
    severities: Sequence[float],
    *,
    seed: int,
    prefix: str = "r",
    movements: Sequence[Movement] = (Movement.SMILE_OPEN, Movement.BROW_RAISE, Movement.EYE_CLOSE_TIGHT),
    frames: int = 3,
    jitter: float = 3.0,
) -> Samples:
    """One subject per entry of ``severities`` (0 none .. 1 complete), palsy sides alternating left/right.

    Subject k draws its identity and pose jitter from ``numpy`` generators seeded by (seed, k).
    """
    rows, crops, lms = [], [], []
    palsied = 0
    for k, severity in enumerate(severities):
        rng = seeds.rng(seed, "demo-rendered", k)
        idt = sample_identity(rng)
        neutral = neutral_landmarks(idt)
        side = SIDES[palsied % 2]  # alternate among the palsied subjects
        palsied += severity > 0
        palsy = Palsy(side, float(severity))
        g = grade(float(severity))
        subject = f"{prefix}{k:03d}"
        for movement in movements:
            for f, (phase, intensity) in enumerate(clip_schedule(frames)):
                m = similarity_matrix(
                    RENDER_SIZE,
                    rng.uniform(-jitter, jitter),
                    1 + rng.uniform(-0.04, 0.04),
                    tuple(rng.uniform(-0.02, 0.02, 2)),
                )
                rgb, px = render_face(
                    idt, pose_face(idt, neutral, movement, intensity * idt.effort, palsy), m, RENDER_SIZE
                )
                a = align(rgb, px)
                crops.append(a.crop)
                lms.append(a.landmarks)
                rows.append(
                    {
                        "subject": subject,
                        "frame_id": f"{subject}/{movement.value}/{f}",
                        "severity": g.category,
                        "eface": float(g.eface),
                        "side": side if severity > 0 else None,
                        "expression": movement.value,
                        "phase": phase,
                    }
                )
    return Samples(pd.DataFrame(rows), np.stack(lms), np.stack(crops))


def as_synthetic(samples: Samples) -> Samples:
    """The same rows shaped as a generated set: ``style_subject`` / ``style_frame`` from the subject."""
    t = samples.table.rename(columns={"subject": "style_subject", "frame_id": "style_frame"})
    return Samples(
        t.assign(identity_source=[f"ids/{s}-identity.png" for s in t["style_subject"]]),
        samples.landmarks,
        samples.images,
    )


def with_split(samples: Samples, test_subjects: Sequence[str]) -> Samples:
    t = samples.table.assign(split=np.where(samples.table["subject"].isin(list(test_subjects)), "test", "train"))
    return Samples(t, samples.landmarks, samples.images)

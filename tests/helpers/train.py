"""The prepare workspaces the train tests use, built from real annotated faces.

``real_crops()`` aligns the four annotated real faces of ../shared/fixtures/landmarks68 with
fpsynth.data.align (no detector needed: the .pts files give the 68 points); ``write_prepare``
writes them as a ``WORKSPACE/prepare`` folder with the manifests' exact schemas;
``flipped_workspace`` is the usual one (each face and its mirror image, paired). ``MICRO`` is the
tiny pipeline at half width, for the tests that train.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fpsynth.data.align import align
from fpsynth.data.images import read_image
from fpsynth.data.manifests import FRAMES, PAIRS, to_table
from fpsynth.data.pts import read_pts
from helpers.fixtures import fixture_path

FACES = ("breakingbad.jpg", "einstein.jpg", "lenna.png", "takeo.ppm")
# --set overrides of the tiny pipeline at half width (U-Net base 16, IR widths 8..64): the loop
# tests train this for speed; what they check does not depend on the size.
MICRO = [  # the tiny pipeline at half width
    "train.model.unet.model_channels=16",
    "train.model.unet.norm_groups=8",
    "train.model.identity_ir.stage_channels=[8,16,32,64]",
    "train.model.identity_ir.embedding_dim=64",
    "train.model.expression_ir.stage_channels=[8,16,32,64]",
    "train.model.expression_ir.embedding_dim=64",
    "train.model.fusion.dim=64",
]


def real_crops() -> list[tuple[np.ndarray, np.ndarray]]:
    """Four real aligned faces: (crop (112, 112, 3) uint8 RGB, landmarks (68, 2) crop pixels)."""
    folder = fixture_path("landmarks68")
    out = []
    for name in FACES:
        aligned = align(read_image(folder / name), read_pts(folder / f"{Path(name).stem}.pts"))
        out.append((aligned.crop, aligned.landmarks))
    return out


def write_prepare(workspace: Path, frames: list[dict], pairs: list[tuple[str, str]]) -> Path:
    """A ``workspace/prepare`` folder: frames = dicts(frame_id, subject, split, crop, landmarks)."""
    root = workspace / "prepare"
    rows = []
    for f in frames:
        path = f"crops/{f['subject']}/{f['frame_id']}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.ascontiguousarray(f["crop"][:, :, ::-1]))
        rows.append(
            {
                "frame_id": f["frame_id"],
                "path": path,
                "subject": f["subject"],
                "dataset": "images",
                "kind": "photo",
                "clip": f["frame_id"],
                "expression": "unknown",
                "frame_index": 0,
                "severity": "unknown",
                "landmarks": np.asarray(f["landmarks"], np.float32).reshape(-1),
                "split": f["split"],
                "blur": 100.0,
                "interocular": 40.0,
                "yaw": 0.0,
                "width": 112,
                "height": 112,
                "landmark_source": "annotation",
            }
        )
    table = pd.DataFrame(rows)
    by_id = table.set_index("frame_id")
    pair_rows = [
        {
            "pair_id": f"{style}~{k}",
            "subject": by_id.loc[style, "subject"],
            "split": by_id.loc[style, "split"],
            "id_frame": ident,
            "id_path": by_id.loc[ident, "path"],
            "style_frame": style,
            "style_path": by_id.loc[style, "path"],
            "expression": "unknown",
            "severity": "unknown",
        }
        for k, (ident, style) in enumerate(pairs)
    ]
    pq.write_table(to_table(table, FRAMES), root / "frames.parquet")
    pq.write_table(to_table(pd.DataFrame(pair_rows), PAIRS), root / "pairs.parquet")
    return root


def flipped_workspace(workspace: Path, test_subjects: int = 1) -> Path:
    """4 real subjects x 2 frames (the crop and its mirror image), each frame paired with the other.

    The last ``test_subjects`` subjects form the test split (held-out pairs for the sample grids).
    """
    frames, pairs = [], []
    for s, (crop, lm) in enumerate(real_crops()):
        split = "test" if s >= 4 - test_subjects else "train"
        mirror_lm = lm.copy()
        mirror_lm[:, 0] = 111 - mirror_lm[:, 0]
        for k, (img, marks) in enumerate(((crop, lm), (crop[:, ::-1], mirror_lm))):
            frames.append(
                {"frame_id": f"S{s}-{k}", "subject": f"S{s}", "split": split, "crop": img, "landmarks": marks}
            )
        pairs += [(f"S{s}-1", f"S{s}-0"), (f"S{s}-0", f"S{s}-1")]
    return write_prepare(workspace, frames, pairs)

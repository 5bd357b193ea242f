"""A folder of face photos -> aligned crops, with the prepare stage's own face code.

This is what ``fpsynth generate --ids DIR`` calls for its identity images: detection, 68
landmarks (or the ``.pts`` beside a photo), alignment and the quality gates, exactly as prepare
treats plain photos, so identity crops and training crops are made the same way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fpsynth.data.config import PrepareConfig
from fpsynth.data.faces import check_backend
from fpsynth.data.jobs import Context, unusable_row
from fpsynth.data.manifests import REJECTS
from fpsynth.data.pseudonyms import pseudonymise
from fpsynth.data.runner import execute
from fpsynth.data.sources import SourceError, check_root, discover_images


def process_photos(
    folder: Path,
    cfg: PrepareConfig,
    out_dir: Path,
    *,
    dlib_models: Path | None = None,
    n_jobs: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align every usable face photo below ``folder``; crops go to ``out_dir/crops/...``.

    Returns ``(kept, rejects)``. ``kept`` has one row per crop with the frames-manifest columns
    made per crop (``frame_id``, ``path`` relative to ``out_dir``, ``subject`` pseudonym,
    ``landmarks``, ``bbox``, quality figures...) plus ``source``, the photo's path relative to
    ``folder``. ``rejects`` has the rejects-manifest columns plus ``source``. The subject of a
    photo is its first folder under ``folder``, or its own name when it lies directly in
    ``folder``; pseudonyms are drawn with ``seed``. Rows come sorted by ``source``.
    """
    root = check_root(folder, "--ids")
    found = discover_images(root, cfg.sources)
    if not found:
        raise SourceError(f"--ids {root}: no image files found")
    ps = pseudonymise(found, seed)
    source = {row.input: Path(row.path).relative_to(root.absolute()).as_posix() for row in ps.mapping.itertuples()}
    frames, rejects = [], []

    def sink(job, result) -> None:
        frames.extend(result.frames)
        rejects.extend(result.rejects)

    ctx = Context(cfg, Path(out_dir), dlib_models)
    check_backend(cfg.faces, dlib_models)  # fail here, before any work
    execute(ps.jobs, ctx, cfg.n_jobs if n_jobs is None else n_jobs, sink, label="identity photos")
    rejects += [unusable_row(input_id, f) for input_id, f in ps.unusable]
    kept = pd.DataFrame(frames)
    kept = kept.assign(source=[source[c] for c in kept["clip"]]) if len(kept) else pd.DataFrame(columns=["source"])
    rej = pd.DataFrame(rejects, columns=REJECTS.names)
    rej = rej.assign(source=[source[i] for i in rej["input"]])
    return (kept.sort_values("source").reset_index(drop=True), rej.sort_values("source").reset_index(drop=True))

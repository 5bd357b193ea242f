"""The privacy audit of a generated set: is a generated face recognisably a training patient?

Every training subject's frames (split ``train`` of the prepared data) are embedded with the
report's identity network; :func:`fpsynth.metrics.privacy.privacy_audit` finds each generated
image's nearest subject (best score over all of that subject's frames) and flags the images a
face verifier would call that patient. For the flagged images the single closest training frame
is also named, so a person can look at the two side by side, and a flag is marked as expected
when the image's identity source is itself recognised as that training subject (a patient's photo
used as an identity), which is not memorisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fpsynth.metrics.privacy import privacy_audit
from fpsynth.metrics.suite import Opened
from fpsynth.report.config import PrivacyConfig
from fpsynth.report.evaluate import Timings, per_file
from fpsynth.report.networks import Networks
from fpsynth.report.sources import Prepared
from fpsynth.seeds import rng


def training_frames(prepared: Prepared, cfg: PrivacyConfig, seed: int) -> pd.DataFrame:
    """The training frames compared against: all, or a seeded ``frames_per_subject`` per subject."""
    train = prepared.split("train")
    if cfg.frames_per_subject is None:
        return train
    draw = rng(seed, "report-privacy")
    keep = [
        np.sort(draw.choice(idx, size=min(len(idx), cfg.frames_per_subject), replace=False))
        for _, idx in sorted(train.groupby("subject").indices.items())
    ]
    return train.iloc[np.concatenate(keep)].reset_index(drop=True)


def audit(
    items: pd.DataFrame,
    embeddings: np.ndarray | None,
    prepared: Prepared,
    nets: Networks,
    cfg: PrivacyConfig,
    batch_size: int,
    seed: int,
    timings: Timings,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Items with ``privacy_subject``/``privacy_score``/``privacy_flagged`` columns, and the summary."""
    identity = nets.identity
    if not isinstance(identity, Opened):
        return items, identity.to_dict()
    if embeddings is None:  # evaluate_set embeds every image with an open identity network: none were read
        return items, {"status": "not computed", "reason": "no generated image was embedded"}
    train = training_frames(prepared, cfg, seed)
    if not len(train):
        return items, {"status": "not computed", "reason": "the prepared data has no training subjects"}
    verifier, embed = identity.net.verifier, identity.net.embed
    with timings("privacy"):
        by_path = per_file(train["image"].tolist(), embed, batch_size)
        emb_train = np.stack([by_path[p] for p in train["image"]])
        subjects = train["subject"].tolist()
        result = privacy_audit(verifier, embeddings, emb_train, subjects, items["item"].tolist())
        # Identity sources that are themselves a training subject (say, a patient's photo among the
        # --ids faces) make their images look like that subject by design, not by memorisation.
        sources = per_file(items["id_image"].tolist(), embed, batch_size)
        paths = sorted(sources)
        of_sources = privacy_audit(verifier, np.stack([sources[p] for p in paths]), emb_train, subjects, paths)
        source_subject = {p: s for p, s, f in zip(paths, of_sources.nearest_subject, of_sources.flagged) if f}
        flagged = result.flagged_items()
        for row in flagged:
            row["identity_source_is_subject"] = (
                source_subject.get(items["id_image"].iat[row["index"]]) == row["subject"]
            )
            # the closest single training frame of the nearest subject, for the side-by-side view
            of_subject = np.flatnonzero(train["subject"].to_numpy() == row["subject"])
            scores = verifier.matrix(embeddings[row["index"]][None], emb_train[of_subject])[0]
            best = of_subject[int(verifier.best_index(scores, axis=0))]
            row["training_frame"] = str(train["frame_id"].iloc[best])
            row["training_path"] = str(train["path"].iloc[best])  # relative to the prepare folder
    table = items.assign(
        privacy_subject=result.nearest_subject.astype(str),
        privacy_score=result.score.astype(np.float64),
        privacy_flagged=result.flagged,
    )
    summary = {
        "status": "ok",
        "score": verifier.kind.value,
        "threshold": verifier.threshold,
        "rule": "flagged when the nearest training subject passes the verification threshold",
        "n": int(len(items)),
        "n_flagged": int(result.flagged.sum()),
        "share_flagged": result.share_flagged,
        "n_flagged_identity_source_is_subject": sum(row["identity_source_is_subject"] for row in flagged),
        "training": {
            "subjects": int(train["subject"].nunique()),
            "frames": int(len(train)),
            "frames_per_subject": cfg.frames_per_subject,
        },
        # most similar first: item, index, subject, score, identity_source_is_subject, training_frame/_path
        "flagged": flagged,
    }
    return table, summary

"""Privacy audit: is any generated face recognisably one of the training patients?

For every generated image's identity embedding, the nearest training subject is found by
identity similarity. A subject's score is the best score over ALL of that subject's training
embeddings (minimum distance / maximum cosine similarity), not the score to the subject's mean
embedding: a single memorised training frame is enough to flag an image, and a mean over many
expressions would hide it. An image is flagged when that best score passes the embedder's
verification threshold (dlib: distance < 0.6), i.e. a face verifier would call it that patient.

The training embeddings are compared in chunks of generated images, so memory stays at
``chunk x n_training`` scores whatever the number of generated images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from fpsynth.metrics.identity import SimilarityKind, Verifier


@dataclasses.dataclass(frozen=True)
class PrivacyAudit:
    kind: SimilarityKind
    threshold: float
    nearest_subject: np.ndarray  # (N,) training subject id nearest to each generated image
    score: np.ndarray  # (N,) its best score (distance or similarity)
    flagged: np.ndarray  # (N,) bool: passes the verification threshold
    item_ids: tuple[str, ...]  # (N,) ids of the generated images

    @property
    def share_flagged(self) -> float:
        return float(self.flagged.mean()) if len(self.flagged) else 0.0

    def flagged_items(self) -> list[dict[str, Any]]:
        """The flagged images, most similar first: item id, index, subject, score (JSON rows, which
        the report extends with fields of its own)."""
        idx = np.flatnonzero(self.flagged)
        order = np.argsort(self.score[idx]) if self.kind is SimilarityKind.EUCLIDEAN else np.argsort(-self.score[idx])
        return [
            {
                "index": int(i),
                "item": self.item_ids[i],
                "subject": str(self.nearest_subject[i]),
                "score": float(self.score[i]),
            }
            for i in idx[order]
        ]

    def summary(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "threshold": self.threshold,
            "n": int(len(self.flagged)),
            "n_flagged": int(self.flagged.sum()),
            "share_flagged": self.share_flagged,
            "flagged": self.flagged_items(),
        }


def privacy_audit(
    verifier: Verifier,
    generated: np.ndarray,
    training: np.ndarray,
    training_subjects: Sequence[str],
    item_ids: Sequence[str] | None = None,
    chunk: int = 256,
) -> PrivacyAudit:
    """Nearest training subject of each generated embedding (N, D) among training ones (M, D)."""
    generated, training = np.asarray(generated, np.float32), np.asarray(training, np.float32)
    subjects = np.asarray(training_subjects).astype(str)
    if len(subjects) != len(training) or len(training) == 0:
        raise ValueError(
            f"need one subject per training embedding: {len(subjects)} subjects for {len(training)} embeddings"
        )
    ids = tuple(str(i) for i in (item_ids if item_ids is not None else range(len(generated))))
    if len(ids) != len(generated):
        raise ValueError(f"{len(ids)} item ids for {len(generated)} generated embeddings")
    order = np.argsort(subjects, kind="stable")
    training, subjects = training[order], subjects[order]
    names, starts = np.unique(subjects, return_index=True)  # subjects sorted: contiguous runs
    reduce = np.minimum if verifier.kind is SimilarityKind.EUCLIDEAN else np.maximum
    nearest = np.empty(len(generated), dtype=object)
    best = np.empty(len(generated), np.float32)
    for lo in range(0, len(generated), chunk):
        scores = verifier.matrix(generated[lo : lo + chunk], training)  # (c, M)
        per_subject = reduce.reduceat(scores, starts, axis=1)  # (c, S)
        j = verifier.best_index(per_subject, axis=1)
        nearest[lo : lo + chunk] = names[j]
        best[lo : lo + chunk] = per_subject[np.arange(len(j)), j]
    return PrivacyAudit(verifier.kind, verifier.threshold, nearest, best, verifier.same(best), ids)

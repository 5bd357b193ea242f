"""Identity similarity, verification rate, crop landmarks and the privacy audit on real faces.

The 5 people x 11 crops of the fixtures are aligned onto the ArcFace 112x112 template the way
fpsynth's crops are (dlib detection + 68 landmarks + 5-point similarity), then embedded once.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from fpsynth.metrics.identity import SimilarityKind, Verifier, dlib_embedder, identity_similarity
from fpsynth.metrics.landmarks import dlib_crop_landmarker, to_rgb_uint8
from fpsynth.metrics.privacy import privacy_audit
from helpers.fixtures import fixture_path


@dataclasses.dataclass
class People:
    crops: np.ndarray  # (N, 112, 112, 3) uint8
    landmarks: np.ndarray  # (N, 68, 2) transferred into the crops from the original photos
    names: np.ndarray  # (N,)
    embeddings: np.ndarray  # (N, 128), from the crops alone (landmarks fitted in the crop)


@pytest.fixture(scope="module")
def people() -> People:
    from fpsynth.data.align import align
    from fpsynth.data.config import FaceConfig
    from fpsynth.data.faces import get_backend

    backend = get_backend(FaceConfig())
    crops, landmarks, names = [], [], []
    for path in sorted(fixture_path("faces", "people").glob("*/*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        faces = backend.detect(rgb, upsample=1)
        assert len(faces) == 1, path
        aligned = align(rgb, faces[0].landmarks)
        crops.append(aligned.crop)
        landmarks.append(aligned.landmarks)
        names.append(path.parent.name)
    crops_a = np.stack(crops)
    embedder, _ = dlib_embedder()
    return People(crops_a, np.stack(landmarks), np.array(names), embedder.embed(crops_a))


def test_crop_landmarker_finds_the_known_landmarks(people):
    found = dlib_crop_landmarker()(people.crops)
    err = np.linalg.norm(found - people.landmarks, axis=2).mean(1)  # px per face
    assert found.shape == (55, 68, 2)
    assert np.median(err) < 1.5 and err.max() < 4.0


def test_same_person_is_closer_than_different_people(people):
    embedder, record = dlib_embedder()
    assert record.path.endswith("dlib_face_recognition_resnet_model_v1.dat")
    v = embedder.verifier
    assert (v.kind, v.threshold) == (SimilarityKind.EUCLIDEAN, 0.6)
    d = v.matrix(people.embeddings, people.embeddings)
    same = people.names[:, None] == people.names[None, :]
    upper = np.triu(np.ones_like(same), 1)
    d_same, d_diff = d[same & upper], d[~same & upper]
    assert d_same.mean() < 0.45 < 0.75 < d_diff.mean()
    assert v.same(d_same).mean() > 0.95  # verification rate on real same-person pairs
    assert v.same(d_diff).mean() < 0.02  # false accepts between different people


def test_identity_similarity_of_images_to_their_sources(people):
    embedder, _ = dlib_embedder()
    # "Generated" = another crop of the same person for the first 40, a different person after.
    src = np.arange(55)
    gen = np.where(src < 40, (src // 11) * 11 + (src + 1) % 11, (src + 11) % 55)
    result = identity_similarity(embedder, people.embeddings[gen], people.embeddings[src])
    assert result.same[:40].mean() > 0.95 and result.same[40:].mean() < 0.1
    assert result.verification_rate == pytest.approx(result.same.mean())
    assert result.summary()["n"] == 55 and result.summary()["threshold"] == 0.6


def test_embeddings_from_known_landmarks_and_from_tensors(people):
    embedder, _ = dlib_embedder()
    some = slice(0, 6)
    with_lm = embedder.embed(people.crops[some], landmarks=people.landmarks[some])
    tensors = torch.from_numpy(people.crops[some]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert np.array_equal(to_rgb_uint8(tensors), people.crops[some])
    from_tensors = embedder.embed(tensors)
    np.testing.assert_allclose(from_tensors, people.embeddings[some], atol=1e-5)
    assert np.linalg.norm(with_lm - people.embeddings[some], axis=1).max() < 0.25


def test_privacy_audit_flags_training_patients(people):
    embedder, _ = dlib_embedder()
    # Training: the first 6 crops of 4 people. Generated: their other crops + a 5th, unseen person.
    idx = np.arange(55)
    person, k = idx // 11, idx % 11
    train = (person < 4) & (k < 6)
    generated = ~train
    ids = [f"gen-{i}" for i in idx[generated]]
    audit = privacy_audit(
        embedder.verifier, people.embeddings[generated], people.embeddings[train], people.names[train], ids, chunk=7
    )
    seen = person[generated] < 4
    assert (audit.nearest_subject[seen] == people.names[generated][seen]).all()
    assert audit.flagged[seen].mean() > 0.9 and not audit.flagged[~seen].any()
    assert audit.share_flagged == pytest.approx(audit.flagged.mean())
    items = audit.flagged_items()
    assert [it["score"] for it in items] == sorted(it["score"] for it in items)  # closest first
    assert {it["item"] for it in items} <= set(ids) and audit.summary()["n_flagged"] == len(items)


def test_privacy_audit_matches_brute_force_for_cosine():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((40, 16)).astype(np.float32)
    subjects = [f"s{i % 7}" for i in range(40)]
    gen = np.concatenate([train[[3, 17]] + 0.01, rng.standard_normal((20, 16))]).astype(np.float32)
    v = Verifier(SimilarityKind.COSINE, 0.9)
    audit = privacy_audit(v, gen, train, subjects, chunk=5)
    sims = v.matrix(gen, train)
    for i in range(len(gen)):
        per = {s: max(sims[i, j] for j in range(40) if subjects[j] == s) for s in set(subjects)}
        best = max(per, key=per.get)
        assert audit.nearest_subject[i] == best and audit.score[i] == pytest.approx(per[best], abs=1e-5)
    assert audit.flagged[:2].all() and audit.nearest_subject[0] == "s3" and audit.nearest_subject[1] == "s3"
    with pytest.raises(ValueError, match="one subject per"):
        privacy_audit(v, gen, train, subjects[:-1])

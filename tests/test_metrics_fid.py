"""Frechet distance, streaming feature statistics, and aFID."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from fpsynth.metrics import fid as fidmod
from fpsynth.metrics.fid import FeatureStats, FrechetError, afid, extract_features, fid_of_features, frechet_distance


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 3.0]), np.array([1.0, 1.0, 0.5, -1.0])
    s1, s2 = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 1.0, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got.value == pytest.approx(expected, rel=1e-10)
    assert not got.eps_retry
    # Same Gaussian: zero; only the means differ: the squared mean distance.
    assert frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)).value == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s1)).value == pytest.approx(np.sum((mu1 - mu2) ** 2))


def test_matches_the_standard_formula_on_random_features():
    rng = np.random.default_rng(0)
    d = 24
    a = rng.standard_normal((500, d)) @ rng.standard_normal((d, d))
    b = rng.standard_normal((400, d)) * 1.5 + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # The standard formula evaluated directly ...
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    # ... and independently: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix.
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(r1 @ s2 @ r1)
    independent = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum()
    result = fid_of_features(a, b)
    assert result.value == pytest.approx(direct, rel=1e-9)
    assert result.value == pytest.approx(independent, rel=1e-6)
    assert (result.n_a, result.n_b, result.dims, result.rank_deficient) == (500, 400, d, False)


def test_streaming_statistics_equal_one_shot_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1000, 16)) * 3 + 100.0  # a large offset stresses the merge's stability
    stats = FeatureStats(16)
    for lo, hi in [(0, 1), (1, 300), (300, 301), (301, 777), (777, 1000)]:
        stats.update(torch.from_numpy(x[lo:hi]))
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    merged = FeatureStats.of(x[:400]).merge(FeatureStats.of(x[400:]))
    np.testing.assert_allclose(merged.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    with pytest.raises(FrechetError, match="at least 2"):
        _ = FeatureStats.of(x[:1]).cov


def test_extract_features_accumulates_network_outputs():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 8))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(n, 3, 4, 4, generator=gen) * 2 - 1 for n in (5, 7, 3)]
    stats = extract_features(net, batches)
    with torch.no_grad():
        feats = torch.cat([net(b) for b in batches]).double().numpy()
    assert stats.n == 15
    np.testing.assert_allclose(stats.cov, np.cov(feats, rowvar=False), rtol=1e-5, atol=1e-7)


def test_epsilon_retry_when_the_root_is_not_finite(monkeypatch):
    calls = []
    real_sqrtm = linalg.sqrtm

    def flaky_sqrtm(m):
        calls.append(m.copy())
        return np.full_like(m, np.inf) if len(calls) == 1 else real_sqrtm(m)

    monkeypatch.setattr(fidmod.linalg, "sqrtm", flaky_sqrtm)
    s1, s2 = np.diag([1.0, 0.0]), np.diag([0.0, 2.0])  # singular covariances, zero product
    result = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-3)
    assert result.eps_retry
    np.testing.assert_allclose(calls[1], (s1 + 1e-3 * np.eye(2)) @ (s2 + 1e-3 * np.eye(2)))
    assert result.value == pytest.approx(3.0 - 2 * np.trace(real_sqrtm(calls[1]).real))


def test_imaginary_component_check(monkeypatch):
    monkeypatch.setattr(fidmod.linalg, "sqrtm", lambda m: np.eye(2) + 1e-6j * np.ones((2, 2)))
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)).value == pytest.approx(
        0.0
    )  # noise: accepted
    monkeypatch.setattr(fidmod.linalg, "sqrtm", lambda m: np.eye(2) + 0.5j * np.eye(2))
    with pytest.raises(FrechetError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_rank_deficient_sets_still_give_a_value():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((10, 32)), rng.standard_normal((12, 32)) + 0.5
    result = fid_of_features(a, b)
    assert result.rank_deficient and np.isfinite(result.value) and result.value > 0


def test_afid_per_patient_and_pooled():
    rng = np.random.default_rng(3)
    d = 8
    centre = {"p1": np.zeros(d), "p2": np.full(d, 3.0), "p3": np.full(d, -2.0)}
    real = {p: c + rng.standard_normal((60, d)) for p, c in centre.items()}
    returned = {
        "p1": centre["p1"] + rng.standard_normal((50, d)),  # faithful return
        "p2": centre["p2"] + 2.0 + rng.standard_normal((50, d)),  # drifted return
        "p3": centre["p3"][None] + np.zeros((1, d)),  # one image only: no covariance
    }
    result = afid(real, returned)
    rows = {r.patient: r for r in result.per_patient}
    assert rows["p1"].value < 2.0 < 4 * d - 2 < rows["p2"].value  # the drift costs ~ ||2*1||^2 = 4d
    assert rows["p3"].value is None and "at least 2" in rows["p3"].error
    assert (rows["p1"].n_real, rows["p1"].n_returned, rows["p3"].n_returned) == (60, 50, 1)
    pooled = fid_of_features(
        np.concatenate([real[p] for p in ("p1", "p2", "p3")]), np.concatenate([returned[p] for p in ("p1", "p2", "p3")])
    )
    assert result.pooled.value == pytest.approx(pooled.value, rel=1e-9)
    assert result.mean_per_patient == pytest.approx((rows["p1"].value + rows["p2"].value) / 2)
    assert result.to_dict()["per_patient"][2]["value"] is None
    with pytest.raises(FrechetError, match="without real images"):
        afid(real, {"stranger": real["p1"]})

"""Frechet Inception Distance and the paper's aligned FID (aFID, section 4.2), on features.

The distance is the standard one (Heusel et al., as in TTUR / pytorch-fid):

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 sqrtm(S_1 S_2))

with ``scipy.linalg.sqrtm`` of the covariance product; when that square root is not finite (the
product is near-singular) ``eps * I`` is added to both covariances and it is taken again; a
complex result is accepted only if the imaginary parts of its diagonal are within 1e-3 of 0
(numerical noise), and its real part is used. (``sqrtm`` is called without ``disp``, deprecated in
SciPy 1.16; pytorch-fid's ``disp=False`` only suppressed a printed error estimate.)

Features are accumulated batch by batch (:class:`FeatureStats`: count, mean and the centred
scatter matrix, merged with Chan et al.'s pairwise update in float64), so 10k+ images never need
their features in memory at once. Covariances are unbiased (``np.cov``'s n-1), as in pytorch-fid.

Few images: with n images the covariance has rank at most n-1, so with n <= 2048 (the Inception
feature size) it is singular. FID is still computed (the epsilon retry above handles a non-finite
root) and every result carries its n's and a ``rank_deficient`` flag; such values are biased
upward and only comparable between sets of equal n. Fewer than 2 images: no covariance, an error.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from scipy import linalg

from fpsynth.errors import FpsynthError

log = logging.getLogger(__name__)

IMAG_ATOL = 1e-3  # tolerance on the diagonal's imaginary part of sqrtm(S1 S2)


class FrechetError(FpsynthError, ValueError):
    """The distance cannot be computed (too few samples, or a truly complex matrix root)."""


@dataclasses.dataclass(frozen=True)
class Frechet:
    value: float
    eps_retry: bool  # sqrtm(S1 S2) was not finite; eps*I was added to both covariances


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> Frechet:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); means (D,), covariances (D, D)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise FrechetError(f"shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    retried = not np.isfinite(covmean).all()
    if retried:
        log.warning("FID: covariance product is near-singular; adding %g to both diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAG_ATOL):
            raise FrechetError(f"sqrtm(S1 S2) has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return Frechet(float(value), retried)


class FeatureStats:
    """Streaming count, mean and covariance of (n, D) feature batches (float64)."""

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.n = 0
        self._mean = np.zeros(dims)
        self._scatter = np.zeros((dims, dims))  # sum of outer products of centred features

    def update(self, features: np.ndarray | torch.Tensor) -> FeatureStats:
        """Add a batch (n, D); returns self."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        x = np.asarray(features, dtype=np.float64).reshape(-1, self.dims)
        if len(x) == 0:
            return self
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        self._merge(len(x), mean_b, centred.T @ centred)
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's samples; returns self."""
        if other.dims != self.dims:
            raise FrechetError(f"cannot merge {other.dims}-d statistics into {self.dims}-d ones")
        if other.n:
            self._merge(other.n, other._mean, other._scatter)
        return self

    def _merge(self, n_b: int, mean_b: np.ndarray, scatter_b: np.ndarray) -> None:
        # Chan, Golub & LeVeque: combine (n, mean, scatter) of two disjoint sample sets.
        n = self.n + n_b
        delta = mean_b - self._mean
        self._scatter += scatter_b + np.outer(delta, delta) * (self.n * n_b / n)
        self._mean = self._mean + delta * (n_b / n)
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise FrechetError(f"a covariance needs at least 2 images, got {self.n}")
        return self._scatter / (self.n - 1)

    @classmethod
    def of(cls, features: np.ndarray | torch.Tensor) -> FeatureStats:
        return cls(int(features.shape[-1])).update(features)


@dataclasses.dataclass(frozen=True)
class FIDResult:
    value: float
    n_a: int
    n_b: int
    dims: int
    eps_retry: bool
    rank_deficient: bool  # min(n_a, n_b) <= dims: a singular covariance, value biased upward

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def fid(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> FIDResult:
    """FID between two feature sets given their accumulated statistics."""
    result = frechet_distance(a.mean, a.cov, b.mean, b.cov, eps)
    return FIDResult(result.value, a.n, b.n, a.dims, result.eps_retry, min(a.n, b.n) <= a.dims)


def fid_of_features(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> FIDResult:
    """FID between two in-memory feature arrays (n_a, D) and (n_b, D)."""
    return fid(FeatureStats.of(a), FeatureStats.of(b), eps)


@torch.inference_mode()
def extract_features(
    net: torch.nn.Module, batches: Iterable[torch.Tensor], stats: FeatureStats | None = None
) -> FeatureStats:
    """Run ``net`` ((B, 3, H, W) in [-1, 1] -> (B, D)) over ``batches``, accumulating statistics."""
    for images in batches:
        feats = net(images)
        stats = stats if stats is not None else FeatureStats(int(feats.shape[1]))
        stats.update(feats)
    if stats is None:
        raise FrechetError("no images were given")
    return stats


# --------------------------------------------------------------------------- aFID


@dataclasses.dataclass(frozen=True)
class PatientAFID:
    patient: str
    n_real: int
    n_returned: int
    value: float | None  # None when it could not be computed; ``error`` says why
    eps_retry: bool = False
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class AFIDResult:
    pooled: FIDResult  # all returned images of all patients vs all their real images
    per_patient: tuple[PatientAFID, ...]

    @property
    def mean_per_patient(self) -> float | None:
        values = [p.value for p in self.per_patient if p.value is not None]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, object]:
        return {
            "pooled": self.pooled.to_dict(),
            "mean_per_patient": self.mean_per_patient,
            "per_patient": [dataclasses.asdict(p) for p in self.per_patient],
        }


def afid(real: Mapping[str, np.ndarray], returned: Mapping[str, np.ndarray], eps: float = 1e-6) -> AFIDResult:
    """Aligned FID (paper section 4.2) from Inception features grouped by test patient.

    Protocol (the images are made by the caller; this function sees their features):
      1. for each test patient P, transfer P's palsy expression onto other people: identity =
         images of other individuals, style = P's real images -> first-pass images;
      2. transfer it back: identity = P's real images, style = the first-pass images -> the
         "returned" images, which ideally equal P's real images;
      3. ``real[P]`` (n, D): features of P's real images; ``returned[P]`` (m, D): features of
         P's returned images.

    Returns the FID per patient (``value`` None with the reason when a patient has fewer than 2
    images on a side or the root is truly complex) and pooled: all returned images of all
    patients against all their real images, the figure comparable to the paper's Table 1.
    Per-patient sets are small (n << 2048): see the module notes on rank-deficient covariances.
    """
    unknown = sorted(set(returned) - set(real))
    if unknown:
        raise FrechetError(f"returned images for patients without real images: {unknown[:5]}")
    if not real:
        raise FrechetError("aFID needs at least one test patient")
    dims = int(np.asarray(next(iter(real.values()))).shape[-1])
    pooled_real, pooled_returned = FeatureStats(dims), FeatureStats(dims)
    rows = []
    for patient in sorted(real):
        stats_real = FeatureStats(dims).update(real[patient])
        stats_back = FeatureStats(dims).update(returned.get(patient, np.zeros((0, dims))))
        pooled_real.merge(stats_real)
        pooled_returned.merge(stats_back)
        try:
            one = fid(stats_real, stats_back, eps)
            rows.append(PatientAFID(patient, stats_real.n, stats_back.n, one.value, one.eps_retry))
        except FrechetError as exc:
            rows.append(PatientAFID(patient, stats_real.n, stats_back.n, None, error=str(exc)))
    return AFIDResult(fid(pooled_real, pooled_returned, eps), tuple(rows))

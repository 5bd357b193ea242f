"""PSNR and SSIM against scikit-image on real face crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fpsynth.metrics.pixel import psnr, ssim
from helpers.fixtures import fixture_path


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """The 55 real face crops of the fixtures, (55, 150, 150, 3) uint8 RGB."""
    files = sorted(fixture_path("faces", "people").glob("*/*.jpg"))
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)


def _pairs(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Different people and the same person, plus a mildly degraded copy of each crop (high SSIM).
    rng = np.random.default_rng(0)
    noisy = np.clip(crops.astype(int) + rng.integers(-4, 5, crops.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(c, (5, 5), 1.0) for c in crops])
    a = np.concatenate([crops[:-1], crops[:20], crops[:20]])
    b = np.concatenate([crops[1:], noisy[:20], blurred[:20]])
    return a, b


@pytest.mark.parametrize("gaussian", [True, False])
def test_ssim_matches_scikit_image_on_uint8_crops(crops, gaussian):
    a, b = _pairs(crops)
    ours = ssim(_nchw(a), _nchw(b), data_range=255, gaussian=gaussian).numpy()
    ref = np.array(
        [
            structural_similarity(
                x,
                y,
                data_range=255,
                channel_axis=-1,
                gaussian_weights=gaussian,
                sigma=1.5,
                use_sample_covariance=not gaussian,
            )
            for x, y in zip(a, b)
        ]
    )
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert ref.min() < 0.5 < 0.9 < ref.max()  # the pairs span dissimilar to near-identical


@pytest.mark.filterwarnings("ignore:divide by zero")  # two fixture files hold the same picture: PSNR inf
def test_ssim_and_psnr_on_float_images_in_minus_one_one(crops):
    a, b = _pairs(crops)
    fa, fb = _nchw(a).double() / 127.5 - 1, _nchw(b).double() / 127.5 - 1
    ours = ssim(fa, fb, data_range=2.0).numpy()
    ref = [
        structural_similarity(
            x, y, data_range=2.0, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        for x, y in zip(fa.numpy(), fb.numpy())
    ]
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    ref_psnr = [peak_signal_noise_ratio(x, y, data_range=2.0) for x, y in zip(fa.numpy(), fb.numpy())]
    np.testing.assert_allclose(psnr(fa, fb, data_range=2.0).numpy(), ref_psnr, atol=1e-4, rtol=0)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_psnr_matches_scikit_image_on_uint8_crops(crops):
    a, b = _pairs(crops)
    ref = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)]
    np.testing.assert_allclose(psnr(_nchw(a), _nchw(b), data_range=255).numpy(), ref, atol=1e-4, rtol=0)


def test_identical_images_and_bad_input(crops):
    x = _nchw(crops[:3])
    assert torch.isinf(psnr(x, x, 255)).all()
    torch.testing.assert_close(ssim(x, x, 255), torch.ones(3, dtype=torch.float32))
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, x[:, :, :100], 255)
    with pytest.raises(ValueError, match="smaller than"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8], 255)

"""PSNR, SSIM and MAE, batched in torch (PSNR and SSIM numerically matching scikit-image).

Both take two image batches (N, C, H, W) of any dtype (uint8 crops read from disk, or float
tensors) and the ``data_range`` of their values (255 for uint8, 2 for fpsynth's [-1, 1]); the
arithmetic is float64. Results are per image, shape (N,).

- :func:`psnr` is ``skimage.metrics.peak_signal_noise_ratio(a, b, data_range=R)``:
  10 log10(R^2 / MSE) over all pixels and channels (inf for identical images, or the value given
  as ``identical``: the CCFExp authors' evaluation script reports :data:`PSNR_OF_IDENTICAL`).
- :func:`ssim` is ``skimage.metrics.structural_similarity(a, b, data_range=R, channel_axis=-1,
  gaussian_weights=G, sigma=1.5, use_sample_covariance=not G)``: SSIM per channel, averaged.
  fpsynth's setting is G = True (Wang et al. 2004's definition: 11x11 Gaussian window of
  sigma 1.5, population covariances, K1 = 0.01, K2 = 0.03, as in the reference MATLAB code);
  G = False gives scikit-image's default (7x7 uniform window, sample covariances). The mean is
  taken over the positions where the whole window fits inside the image, which is what
  scikit-image's border crop leaves, so no padding mode is involved.
- :func:`ssim_authors` is SSIM as the CCFExp authors' evaluation script computes it, the scale of
  the paper's Table 1: ``structural_similarity(x, y, channel_axis=-1, data_range=1.0)`` on images
  in [0, 1], i.e. scikit-image's defaults (7x7 uniform window, sample covariances). SSIM's
  luminance term is not shift-invariant, so the same images score differently in [0, 1] and in
  [-1, 1] (on real face pairs about twice as high: see ``fpsynth.metrics.table1``).
- :func:`mae` is the mean absolute difference over all pixels and channels, in the images' own
  units (no ``data_range``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
SIGMA, TRUNCATE = 1.5, 3.5  # scikit-image's Gaussian window: radius int(3.5 * 1.5 + 0.5) = 5
UNIFORM_WIN = 7
PSNR_OF_IDENTICAL = 100.0  # the authors' evaluation script: inf (identical images) -> 100 dB


def _pair(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.to(dtype), b.to(dtype)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0, identical: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image; (N, C, H, W) x2 -> (N,).

    Identical images (MSE 0) give inf, or ``identical`` when it is set. (8-bit images that differ
    in one level of one value of a 112x112 crop score about 94 dB, so 100 is never a real value.)
    """
    a, b = _pair(a, b, torch.float64)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    value = 10.0 * torch.log10(data_range**2 / mse)
    if identical is not None:
        value = torch.where(mse == 0, torch.full_like(value, identical), value)
    return value


def mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image over all pixels and channels, in the images' own units;
    (N, C, H, W) x2 -> (N,). (fpsynth's [-1, 1] images: times 127.5 gives 8-bit levels.)"""
    a, b = _pair(a, b, torch.float64)
    return (a - b).abs().flatten(1).mean(dim=1)


def _window(gaussian: bool) -> torch.Tensor:
    """1-D window weights, summing to 1."""
    if not gaussian:
        return torch.full((UNIFORM_WIN,), 1.0 / UNIFORM_WIN, dtype=torch.float64)
    radius = int(TRUNCATE * SIGMA + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / SIGMA) ** 2)
    return w / w.sum()


def _filter(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of each channel: (N, C, H, W) -> (N, C, H-k+1, W-k+1)."""
    c = x.shape[1]
    x = F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0, gaussian: bool = True) -> torch.Tensor:
    """Mean structural similarity per image (channels averaged); (N, C, H, W) x2 -> (N,)."""
    a, b = _pair(a, b, torch.float32)
    w = _window(gaussian).to(device=a.device, dtype=torch.float32)
    if min(a.shape[-2:]) < len(w):
        raise ValueError(f"images of {tuple(a.shape[-2:])} are smaller than the {len(w)}x{len(w)} SSIM window")
    # scikit-image rescales covariances by NP/(NP-1) for sample covariances (uniform window only).
    cov_norm = 1.0 if gaussian else (len(w) ** 2) / (len(w) ** 2 - 1)
    # Moments of values shifted by their joint mean: (co)variances are shift-invariant and the
    # float32 cancellation in E[x^2] - E[x]^2 shrinks with the magnitudes (the means get it back).
    shift = (a + b).mean(dim=(2, 3), keepdim=True) / 2  # (N, C, 1, 1)
    a, b = a - shift, b - shift
    stacked = _filter(torch.cat([a, b, a * a, b * b, a * b], dim=1), w)
    ua, ub, uaa, ubb, uab = stacked.chunk(5, dim=1)
    vx = cov_norm * (uaa - ua * ua)
    vy = cov_norm * (ubb - ub * ub)
    vxy = cov_norm * (uab - ua * ub)
    ux, uy = ua + shift, ub + shift
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))  # (N, C, h, w)
    return s.mean(dim=(2, 3)).mean(dim=1)


def ssim_authors(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM on the paper's Table 1 scale: float images (N, C, H, W) in [-1, 1] -> (N,).

    The authors read 8-bit files as x / 255 (float64, [0, 1]) and call scikit-image with
    ``data_range=1.0`` and its default window; (x + 1) / 2 is that image for fpsynth's x = u / 127.5 - 1.
    """
    return ssim((a + 1) / 2, (b + 1) / 2, data_range=1.0, gaussian=False)

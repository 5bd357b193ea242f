"""The paper's Table 1 pair metrics (PSNR, SSIM, LPIPS, PL against X_ID and X_Style), two conventions.

The paper (4.4) names its metrics and cites their papers, but its figures come from the authors'
evaluation script (``test.py`` of GaoVix/CCFExp), which computes SSIM and PL differently from those
papers' definitions. The report computes every metric of both conventions, each under its own
name (per-image columns ``<name>_x_id`` / ``<name>_x_style``), and its Table 1 shows one of them
(``report.metrics.table1``; report.json records which):

| Table 1 column | ``authors`` (default; the paper's scale)        | ``standard`` (the defining papers)          |
|----------------|-------------------------------------------------|---------------------------------------------|
| PSNR           | ``psnr``: identical images 100 dB               | ``psnr_uncapped``: identical images inf     |
| SSIM           | ``ssim``: images in [0, 1], 7x7 uniform window, | ``ssim_wang``: [-1, 1] with data_range 2,   |
|                | sample covariances (scikit-image's defaults)    | 11x11 Gaussian window of sigma 1.5          |
| LPIPS          | ``lpips`` (v0.1, VGG16)                         | ``lpips``                                   |
| PL             | ``pl``: MSE of the whole vgg16.features output  | ``pl_johnson``: relu2_2 (``metrics.         |
|                | (through pool5) of the [-1, 1] images           | perceptual``) on ImageNet-standardised input|

The two are not comparable: on 6 real face pairs (two photos of one person, 112x112;
``tests/test_metrics_table1.py``) SSIM is 0.441 the authors' way and 0.226 the standard way. An
inf PSNR counts as a missing value in a mean.

``PAIR_METRICS`` is the report's one registry of pair metrics: evaluation, summaries and page loop
over it, so a new pair metric is one entry there and one per-image function (``mae``, the mean
absolute 8-bit error, is such a metric outside Table 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from fpsynth.metrics.config import MetricsConfig, Table1Convention
from fpsynth.metrics.perceptual import perceptual_distance, perceptual_loss_authors
from fpsynth.metrics.pixel import PSNR_OF_IDENTICAL, mae, psnr, ssim, ssim_authors

REFERENCES = {"x_id": "id_image", "x_style": "style_image"}  # Table 1 reference -> evaluation-set column
TABLE1_COLUMNS = ("psnr", "ssim", "lpips", "pl")

# (generated (B, 3, H, W), reference (B, 3, H, W), both in [-1, 1]; the opened network or None;
# the metrics config) -> (B,) per-image values.
PairFn = Callable[[torch.Tensor, torch.Tensor, Any, MetricsConfig], torch.Tensor]


def pair_column(metric: str, reference: str) -> str:
    """Per-image column of a pair metric against a reference: ``ssim_x_id``."""
    return f"{metric}_{reference}"


@dataclasses.dataclass(frozen=True)
class PairMetric:
    """One pair metric: everything the report's evaluation, summaries and page need to know of it."""

    name: str  # report.json key and per-image column stem
    label: str  # as a column header
    unit: str
    higher_is_better: bool
    network: str | None  # the report network it needs (``fpsynth.report.networks.METRICS``), None: none
    timing: str  # the part of report.json's timings_s its time is counted under
    definition: str
    compute: PairFn

    @property
    def columns(self) -> tuple[str, ...]:
        """Its per-image columns, one per Table 1 reference: ``<name>_x_id``, ``<name>_x_style``."""
        return tuple(pair_column(self.name, ref) for ref in REFERENCES)


_SSIM_UNIT = "unitless, 1 = identical"
_PL_UNIT = "mean squared VGG16 feature difference"

# Order matters: it is the order of the per-image columns, of report.json's "pairwise" and of timings_s.
PAIR_METRICS: dict[str, PairMetric] = {
    m.name: m
    for m in (
        PairMetric(
            "psnr",
            "PSNR",
            "dB",
            True,
            None,
            "psnr_ssim",
            "10 log10(R^2 / MSE) over all pixels; identical images 100 dB (the authors' evaluation script)",
            lambda gen, x, net, cfg: psnr(gen, x, data_range=2.0, identical=PSNR_OF_IDENTICAL),
        ),
        PairMetric(
            "psnr_uncapped",
            "PSNR (uncapped)",
            "dB",
            True,
            None,
            "psnr_ssim",
            "10 log10(R^2 / MSE) over all pixels; identical images inf (scikit-image), left out of means",
            lambda gen, x, net, cfg: psnr(gen, x, data_range=2.0),
        ),
        PairMetric(
            "ssim",
            "SSIM",
            _SSIM_UNIT,
            True,
            None,
            "psnr_ssim",
            "scikit-image structural_similarity on images in [0, 1], data_range 1, its default 7x7 uniform "
            "window and sample covariances, channels averaged (the authors' evaluation script)",
            lambda gen, x, net, cfg: ssim_authors(gen, x),
        ),
        PairMetric(
            "ssim_wang",
            "SSIM (Wang)",
            _SSIM_UNIT,
            True,
            None,
            "psnr_ssim",
            "Wang et al. 2004: 11x11 Gaussian window of sigma 1.5, population covariances, on images in "
            "[-1, 1] with data_range 2",
            lambda gen, x, net, cfg: ssim(gen, x, data_range=2.0, gaussian=True),
        ),
        PairMetric(
            "lpips",
            "LPIPS",
            "LPIPS distance, 0 = identical",
            False,
            "lpips",
            "lpips",
            "LPIPS v0.1 with the VGG16 backbone (Zhang et al. 2018), images in [-1, 1]",
            lambda gen, x, net, cfg: net(gen, x),
        ),
        PairMetric(
            "pl",
            "PL",
            _PL_UNIT,
            False,
            "perceptual",
            "perceptual",
            "mean squared difference of the whole vgg16.features output (through the last max-pool) of the "
            "[-1, 1] images, not ImageNet-standardised (the authors' evaluation script)",
            lambda gen, x, net, cfg: perceptual_loss_authors(net, gen, x),
        ),
        PairMetric(
            "pl_johnson",
            "PL (Johnson)",
            _PL_UNIT,
            False,
            "perceptual",
            "perceptual",
            "Johnson et al. 2016: mean squared difference of VGG16 activations at the taps of "
            "report.metrics.perceptual (default relu2_2), ImageNet-standardised inputs",
            lambda gen, x, net, cfg: perceptual_distance(net, gen, x, cfg.perceptual),
        ),
        PairMetric(
            "mae",
            "MAE",
            "8-bit levels (0-255), 0 = identical",
            False,
            None,
            "mae",
            "mean absolute difference over all pixels and channels, in 8-bit levels (not in Table 1)",
            lambda gen, x, net, cfg: mae(gen, x) * 127.5,
        ),  # [-1, 1] -> 8-bit levels
    )
}

CONVENTIONS: dict[Table1Convention, dict[str, str]] = {  # Table 1 column -> pair metric
    Table1Convention.AUTHORS: {"psnr": "psnr", "ssim": "ssim", "lpips": "lpips", "pl": "pl"},
    Table1Convention.STANDARD: {"psnr": "psnr_uncapped", "ssim": "ssim_wang", "lpips": "lpips", "pl": "pl_johnson"},
}


def table1_metrics(convention: Table1Convention) -> dict[str, str]:
    """Table 1 column (psnr, ssim, lpips, pl) -> the pair metric that fills it in ``convention``."""
    return dict(CONVENTIONS[Table1Convention(convention)])


def describe_convention(convention: Table1Convention) -> dict[str, object]:
    """What report.json records: the convention and, per Table 1 column, the metric and its definition."""
    convention = Table1Convention(convention)
    return {
        "name": convention.value,
        "columns": {
            col: {"metric": m, "definition": PAIR_METRICS[m].definition} for col, m in CONVENTIONS[convention].items()
        },
    }

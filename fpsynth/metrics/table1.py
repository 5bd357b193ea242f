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
"""

from __future__ import annotations

import dataclasses

from fpsynth.metrics.config import Table1Convention

REFERENCES = {"x_id": "id_image", "x_style": "style_image"}  # Table 1 reference -> evaluation-set column
TABLE1_COLUMNS = ("psnr", "ssim", "lpips", "pl")


@dataclasses.dataclass(frozen=True)
class PairMetric:
    label: str  # as a column header
    network: str | None  # the report network it needs (``fpsynth.report.networks.METRICS``), None: none
    higher_is_better: bool
    unit: str
    definition: str


PAIR_METRICS: dict[str, PairMetric] = {
    "psnr": PairMetric("PSNR", None, True, "dB", "10 log10(R^2 / MSE) over all pixels; identical images 100 dB "
                       "(the authors' evaluation script)"),
    "psnr_uncapped": PairMetric("PSNR (uncapped)", None, True, "dB", "10 log10(R^2 / MSE) over all pixels; "
                                "identical images inf (scikit-image), left out of means"),
    "ssim": PairMetric("SSIM", None, True, "unitless, 1 = identical", "scikit-image structural_similarity on images in "
                       "[0, 1], data_range 1, its default 7x7 uniform window and sample covariances, channels averaged "
                       "(the authors' evaluation script)"),
    "ssim_wang": PairMetric("SSIM (Wang)", None, True, "unitless, 1 = identical", "Wang et al. 2004: 11x11 Gaussian "
                            "window of sigma 1.5, population covariances, on images in [-1, 1] with data_range 2"),
    "lpips": PairMetric("LPIPS", "lpips", False, "LPIPS distance, 0 = identical", "LPIPS v0.1 with the VGG16 "
                        "backbone (Zhang et al. 2018), images in [-1, 1]"),
    "pl": PairMetric("PL", "perceptual", False, "mean squared VGG16 feature difference", "mean squared difference of "
                     "the whole vgg16.features output (through the last max-pool) of the [-1, 1] images, not "
                     "ImageNet-standardised (the authors' evaluation script)"),
    "pl_johnson": PairMetric("PL (Johnson)", "perceptual", False, "mean squared VGG16 feature difference",
                             "Johnson et al. 2016: mean squared difference of VGG16 activations at the taps of "
                             "report.metrics.perceptual (default relu2_2), ImageNet-standardised inputs"),
}

CONVENTIONS: dict[Table1Convention, dict[str, str]] = {  # Table 1 column -> pair metric
    Table1Convention.AUTHORS: {"psnr": "psnr", "ssim": "ssim", "lpips": "lpips", "pl": "pl"},
    Table1Convention.STANDARD: {"psnr": "psnr_uncapped", "ssim": "ssim_wang", "lpips": "lpips", "pl": "pl_johnson"},
}


def pair_column(metric: str, reference: str) -> str:
    """Per-image column of a pair metric against a reference: ``ssim_x_id``."""
    return f"{metric}_{reference}"


def table1_metrics(convention: Table1Convention) -> dict[str, str]:
    """Table 1 column (psnr, ssim, lpips, pl) -> the pair metric that fills it in ``convention``."""
    return dict(CONVENTIONS[Table1Convention(convention)])


def describe_convention(convention: Table1Convention) -> dict[str, object]:
    """What report.json records: the convention and, per Table 1 column, the metric and its definition."""
    convention = Table1Convention(convention)
    return {
        "name": convention.value,
        "columns": {col: {"metric": m, "definition": PAIR_METRICS[m].definition}
                    for col, m in CONVENTIONS[convention].items()},
    }

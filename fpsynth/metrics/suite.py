"""Opening the metric networks a report needs, from the pipeline's ``[weights]`` section.

Each ``open_*`` returns either :class:`Opened` (the network and what was loaded into it) or a
:class:`~fpsynth.nets.loading.MissingNetwork` naming the file and config key it needs, so the
report can list the metric as missing instead of failing or substituting another network. A file
that is configured but wrong (checksum, layout) still raises: that is an error to fix, not a
missing network.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Generic, TypeVar

from fpsynth.metrics.config import FIDConfig, IdentityBackend, IdentityConfig
from fpsynth.metrics.identity import Embedder, dlib_embedder, ir50_embedder, missing_dlib
from fpsynth.metrics.landmarks import CropLandmarker
from fpsynth.nets import inception, lpips, vgg
from fpsynth.nets.loading import MissingNetwork, missing_network
from fpsynth.weights import LoadRecord, WeightsConfig

if TYPE_CHECKING:
    from fpsynth.nets.config import IRConfig

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Opened(Generic[T]):
    net: T
    records: tuple[LoadRecord, ...]  # what each network was loaded from (or random_init)


def open_inception(weights: WeightsConfig, cfg: FIDConfig = FIDConfig(), seed: int = 0) -> Opened | MissingNetwork:
    """FID / aFID feature network: images (N, 3, H, W) in [-1, 1] -> (N, 2048)."""
    missing = missing_network("fid", inception.SPEC, weights.inception, weights.random_init)
    if missing:
        return missing
    net, record = inception.load_inception(
        weights.inception, weights.random_init, verify_checksum=cfg.verify_checksum, seed=seed
    )
    return Opened(net, (record,))


def open_vgg16(
    weights: WeightsConfig, metric: str = "perceptual", verify_checksum: bool = True, seed: int = 0
) -> Opened | MissingNetwork:
    """VGG16 features for the perceptual loss."""
    missing = missing_network(metric, vgg.SPEC, weights.vgg16, weights.random_init)
    if missing:
        return missing
    net, record = vgg.load_vgg16(weights.vgg16, weights.random_init, verify_checksum=verify_checksum, seed=seed)
    return Opened(net, (record,))


def open_lpips(weights: WeightsConfig, verify_checksum: bool = True, seed: int = 0) -> Opened | MissingNetwork:
    """LPIPS v0.1: the VGG16 backbone (``weights.vgg16``) and the linear layers (``weights.lpips``)."""
    missing = missing_network("lpips", lpips.SPEC, weights.lpips) or missing_network(
        "lpips", vgg.SPEC, weights.vgg16, weights.random_init
    )
    if missing:
        return missing
    backbone, vgg_record = vgg.load_vgg16(
        weights.vgg16, weights.random_init, verify_checksum=verify_checksum, seed=seed
    )
    heads, heads_record = lpips.load_lpips_heads(weights.lpips)
    return Opened(lpips.LPIPS(backbone, heads).eval(), (vgg_record, heads_record))


def open_embedder(
    weights: WeightsConfig,
    cfg: IdentityConfig = IdentityConfig(),
    landmarker: CropLandmarker | None = None,
    ir_config: IRConfig | None = None,
) -> Opened[Embedder] | MissingNetwork:
    """The configured identity embedder (dlib by default, IR-50 when chosen); never the other one.

    ``landmarker`` (dlib): the 68-point fit used when crops come without landmarks (default:
    dlib's predictor in the fixed crop box). ``ir_config`` (IR-50): the run's identity IR layout.
    """
    if cfg.backend is IdentityBackend.IR50:
        from fpsynth.nets.ir50 import IR50_ID

        missing = missing_network("identity", IR50_ID, weights.ir50_id, weights.random_init)
        if missing:
            return missing
        embedder, record = ir50_embedder(
            weights.ir50_id, weights.random_init, cfg.ir50_threshold, cfg.batch_size, ir_config
        )
        return Opened(embedder, (record,))
    missing = missing_dlib("identity", weights.dlib_models)
    if missing:
        return missing
    dlib, dlib_record = dlib_embedder(weights.dlib_models, cfg.dlib_threshold, landmarker)
    return Opened(dlib, (dlib_record,))

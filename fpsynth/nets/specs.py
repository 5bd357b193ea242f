"""Every pretrained network fpsynth reads, by its :class:`~fpsynth.weights.WeightSpec`.

The list is written out here, importing each network's module, so ``fpsynth weights`` shows
exactly these (a new network adds its spec to :data:`WEIGHT_SPECS`).
"""

from __future__ import annotations

from fpsynth.nets import inception, lpips, vgg
from fpsynth.nets.ir50 import IR50_EXPRESSION, IR50_ID
from fpsynth.nets.mobilefacenet import MOBILEFACENET_68
from fpsynth.weights import WeightSpec

WEIGHT_SPECS: tuple[WeightSpec, ...] = (
    IR50_ID,
    IR50_EXPRESSION,
    MOBILEFACENET_68,
    inception.SPEC,
    vgg.SPEC,
    lpips.SPEC,
)


def all_weight_specs() -> list[WeightSpec]:
    """Every network's spec, by name."""
    return sorted(WEIGHT_SPECS, key=lambda s: s.name)

"""The whole pipeline's configuration: one section per stage, read from a named TOML file."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from fpsynth.config import apply_overrides, from_dict, read_toml_tree, resolve_config_path
from fpsynth.data.config import PrepareConfig
from fpsynth.demo_config import DemoConfig
from fpsynth.generate.config import GenerateConfig
from fpsynth.report.config import ReportConfig
from fpsynth.train.config import TrainConfig
from fpsynth.utility.config import UtilityConfig
from fpsynth.weights import WeightsConfig

DEFAULT_CONFIG = "paper"
DEFAULT_WORKSPACE = Path("workspace")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    name: str = DEFAULT_CONFIG
    seed: int = 123  # the authors' seed; every stage derives its own generators from it
    weights: WeightsConfig = WeightsConfig()
    prepare: PrepareConfig = PrepareConfig()
    train: TrainConfig = TrainConfig()
    generate: GenerateConfig = GenerateConfig()
    report: ReportConfig = ReportConfig()
    demo: DemoConfig = DemoConfig()
    utility: UtilityConfig = UtilityConfig()

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**63:  # seeds feed torch/numpy generators and derived 64-bit streams
            raise ValueError(f"seed must be in 0 .. 2**63 - 1, got {self.seed}")


def load_pipeline(config: str | Path = DEFAULT_CONFIG, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read a pipeline file (path or bare name in ``pipelines/``), apply ``--set`` overrides, type-check."""
    path = resolve_config_path(config)
    data = apply_overrides(read_toml_tree(path), overrides)
    return from_dict(PipelineConfig, data)


def with_section(cfg: PipelineConfig, section: str, **changes: object) -> PipelineConfig:
    """A copy of ``cfg`` with fields of one section replaced (used by CLI flags such as --meei)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return cfg
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})

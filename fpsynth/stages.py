"""Every stage of the pipeline, declared in one place: read it like a ``dvc.yaml``.

A declaration says what a stage reads and what its results depend on, and nothing about how it
works (that is ``fpsynth/<stage>/run.py``):

- ``deps``: files inside the workspace that an earlier stage makes, with the stage that makes
  them, so that every "run X first" a user reads comes from the maker's ``usage`` here;
- ``params``: dotted keys of the pipeline config (``"prepare"`` is a whole section,
  ``"weights.dlib_models"`` one field); ``ignore`` the keys below them that change no result
  (worker counts, where the output goes);
- ``weights``: keys of ``[weights]`` whose files count by content (sha256), not by path: another
  file under the same name is another result;
- ``outs``: what a finished run leaves in its folder (all present, or the stage is redone);
  ``verified``: those whose size and sha256 its record keeps (:mod:`fpsynth.outputs`), and
  ``verified_lists`` the Parquet lists of many more.

:class:`fpsynth.stage.Stage` builds a run's inputs and its fingerprint from the declaration
(``Stage.declared``). A run may put a dependency elsewhere (``generate --out``, ``report --run``),
add inputs only it knows (the user's data folders, ``train.init_from``), or leave out an optional
dependency that does not exist yet (the report without a checkpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Dep:
    """An input made by another stage: where it lies in the workspace by default, and who makes it."""

    path: str  # relative to the workspace, e.g. "prepare/frames.parquet"
    stage: str  # the name of the stage that makes it (a key of STAGES)
    optional: bool = False  # the stage runs without it (and then does less)


@dataclasses.dataclass(frozen=True)
class StageSpec:
    name: str  # its folder in the workspace and its record's name
    command: str  # the CLI command, e.g. "fpsynth train"
    args: str = ""  # what a user must add to it, e.g. "--ids DIR"
    deps: Mapping[str, Dep] = dataclasses.field(default_factory=dict)
    params: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()  # dotted keys below ``params`` that change no result
    weights: tuple[str, ...] = ()  # [weights] keys whose files count by content
    weights_required: bool = True  # a set weights path whose file is absent stops the stage (else: reported)
    outs: tuple[str, ...] = ()
    verified: tuple[str, ...] = ()
    verified_lists: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        """The command line a user runs to make this stage's outputs (what "run X first" says)."""
        return f"{self.command} {self.args}".strip()


_FRAMES = Dep("prepare/frames.parquet", "prepare")
_NETWORKS = ("ir50_id", "ir50_expression", "mobilefacenet", "inception", "vgg16", "lpips")

DEMO_DATA = StageSpec(
    name="demo-data",
    command="fpsynth demo",
    params=("seed", "demo"),
    outs=("demo.json",),
)

PREPARE = StageSpec(
    name="prepare",
    command="fpsynth prepare",
    args="--meei DIR (or --aflfp / --images)",
    # its inputs are the user's folders (``--meei`` ...), named by the run from the input sources
    params=("seed", "prepare", "weights.dlib_models"),
    ignore=("prepare.n_jobs",),  # workers do not change results
    outs=("frames.parquet", "pairs.parquet", "rejects.parquet", "private/mapping.parquet"),
    verified=(
        "frames.parquet",
        "pairs.parquet",
        "rejects.parquet",
        "private/mapping.parquet",
        "private/rejects.parquet",
        "checks.parquet",
    ),
    verified_lists=("checks.parquet",),  # size, mtime, sha256 of every crop
)

TRAIN = StageSpec(
    name="train",
    command="fpsynth train",
    deps={"pairs": Dep("prepare/pairs.parquet", "prepare"), "frames": _FRAMES},
    # plus ``train.init_from`` by content when set (fpsynth.train.run)
    params=("seed", "train", "weights.random_init"),
    weights=("ir50_id", "ir50_expression", "mobilefacenet"),  # DCFace reads ir50_id only
    outs=("checkpoints/latest", "log.csv"),
)

GENERATE = StageSpec(
    name="generate",
    command="fpsynth generate",
    args="--ids DIR",
    # plus the identity photos (``--ids``); the checkpoint is absent only for ``generate.plan_only``
    deps={"frames": _FRAMES, "checkpoint": Dep("train/checkpoints/latest", "train", optional=True)},
    # identity photos are aligned with prepare's face settings
    params=("seed", "generate", "weights.dlib_models", "prepare.faces", "prepare.quality"),
    ignore=(
        "generate.ids",
        "generate.checkpoint",
        "generate.out",
        "generate.shard",
        "generate.plan_only",
        "generate.runtime",
    ),  # where and how fast the run goes, which changes no image
    outs=("metadata.parquet", "README.md"),
    verified=("metadata.parquet", "README.md"),
)

UTILITY = StageSpec(
    name="utility",
    command="fpsynth utility",
    deps={"frames": _FRAMES, "dataset": Dep("generate/metadata.parquet", "generate")},
    params=("seed", "utility", "weights.dlib_models", "weights.random_init"),
    weights=("ir50_id",),  # read by the ir50 grader only
    outs=("utility.json", "runs.parquet"),
)

REPORT = StageSpec(
    name="report",
    command="fpsynth report",
    deps={
        "frames": _FRAMES,
        "dataset": Dep("generate/metadata.parquet", "generate", optional=True),
        "checkpoint": Dep("train/checkpoints/latest", "train", optional=True),
        "train_log": Dep("train/log.csv", "train", optional=True),
        "utility": Dep("utility/utility.json", "utility", optional=True),  # a new utility run redoes the page
    },
    params=("seed", "report", "weights"),
    weights=_NETWORKS,
    weights_required=False,  # a network whose file is absent is reported missing, not refused
    outs=("report.json", "report.html"),
)

STAGES: dict[str, StageSpec] = {s.name: s for s in (DEMO_DATA, PREPARE, TRAIN, GENERATE, UTILITY, REPORT)}


def run_first(name: str) -> str:
    """``run `<usage>` first``, for an input the stage ``name`` makes."""
    return f"run `{STAGES[name].usage}` first"

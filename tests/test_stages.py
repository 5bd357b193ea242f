"""The stage declarations (fpsynth.stages) and the runs Stage.declared builds from them."""

import dataclasses
import re

import pytest

from fpsynth.data.crop_checks import CHECKS_FILE
from fpsynth.generate.merge import METADATA_FILE
from fpsynth.generate.run import CARD_FILE
from fpsynth.pipeline import PipelineConfig, load_pipeline
from fpsynth.report.utility_section import UTILITY_JSON
from fpsynth.stage import MissingInputError, Stage, config_value, params_of
from fpsynth.stages import GENERATE, PREPARE, REPORT, STAGES, TRAIN, UTILITY
from fpsynth.train.checkpoint import CHECKPOINTS, LATEST
from fpsynth.train.run import train_stage
from fpsynth.utility.run import UTILITY_FILE
from fpsynth.weights import WeightsConfig


def _field_exists(cfg, dotted: str) -> bool:
    head, _, last = dotted.rpartition(".")
    owner = config_value(cfg, head) if head else cfg
    return dataclasses.is_dataclass(owner) and last in {f.name for f in dataclasses.fields(owner)}


def test_every_dependency_is_an_output_of_the_stage_that_makes_it():
    for spec in STAGES.values():
        for key, dep in spec.deps.items():
            maker = STAGES[dep.stage]
            folder, _, rel = dep.path.partition("/")
            assert folder == maker.name, (spec.name, key)
            assert rel in maker.outs, (spec.name, key, rel)


def test_params_ignores_and_weights_name_fields_of_the_pipeline_config():
    cfg = PipelineConfig()
    networks = {f.name for f in dataclasses.fields(WeightsConfig)} - {"dlib_models", "random_init"}
    for spec in STAGES.values():
        for key in (*spec.params, *spec.ignore):
            assert _field_exists(cfg, key), (spec.name, key)
        assert all(any(k.startswith(f"{p}.") for p in spec.params) for k in spec.ignore), spec.name
        assert set(spec.weights) <= networks, spec.name
        assert set(spec.verified_lists) <= set(spec.verified), spec.name


def test_the_declarations_name_the_files_the_stages_write():
    assert PREPARE.verified_lists == (CHECKS_FILE,)
    assert set(GENERATE.outs) == {METADATA_FILE, CARD_FILE} == set(GENERATE.verified)
    assert f"{CHECKPOINTS}/{LATEST}" in TRAIN.outs
    assert UTILITY_FILE in UTILITY.outs and REPORT.deps["utility"].path == UTILITY_JSON.as_posix()


def test_ignored_keys_do_not_change_the_fingerprint_and_params_do(tmp_path):
    def fp(*overrides):
        return Stage.declared(GENERATE, tmp_path, load_pipeline("tiny", list(overrides))).fingerprint

    base = fp()
    assert fp("generate.runtime.writer_threads=3", f"generate.ids={tmp_path}", "generate.plan_only=true") == base
    assert fp("generate.count=7") != base
    assert fp("prepare.faces.photo_upsample=2") != base  # identity photos are aligned with these
    assert "n_jobs" not in params_of(PREPARE, load_pipeline("tiny", ["prepare.n_jobs=3"]))["prepare"]


def test_a_missing_dependency_names_the_command_of_the_stage_that_makes_it(tmp_path):
    for spec in (TRAIN, UTILITY, REPORT):
        with pytest.raises(MissingInputError, match=re.escape(f"run `{PREPARE.usage}` first")):
            Stage.declared(spec, tmp_path, load_pipeline("tiny")).require_inputs()


def test_only_optional_dependencies_may_be_left_out(tmp_path):
    cfg = load_pipeline("tiny")
    stage = Stage.declared(REPORT, tmp_path, cfg, at={"checkpoint": None, "dataset": None})
    assert "checkpoint" not in stage.inputs and "frames" in stage.inputs
    with pytest.raises(ValueError, match="not optional"):
        Stage.declared(REPORT, tmp_path, cfg, at={"frames": None})
    with pytest.raises(KeyError):
        Stage.declared(REPORT, tmp_path, cfg, at={"nonsense": tmp_path})


def test_changing_weights_invalidates_train_and_every_stage_that_reads_them(tmp_path):
    """weights.random_init was outside train's fingerprint; weight files count by content."""
    files = {name: tmp_path / f"{name}.pth" for name in ("ir50_id", "ir50_expression", "mobilefacenet", "inception")}
    for path in files.values():
        path.write_bytes(b"first")
    sets = [f"weights.{name}={path}" for name, path in files.items()] + ['utility.graders=["ir50"]']

    def fingerprints(*overrides):
        cfg = load_pipeline("tiny", [*sets, *overrides])
        return {
            "train": train_stage(cfg, tmp_path / "ws")[0].fingerprint,
            **{s.name: Stage.declared(s, tmp_path / "ws", cfg).fingerprint for s in (UTILITY, REPORT, GENERATE)},
        }

    base = fingerprints()
    changed = fingerprints("weights.random_init=[]")
    assert {k for k in base if base[k] != changed[k]} == {"train", "utility", "report"}
    for name, readers in {
        "ir50_id": {"train", "utility", "report"},
        "mobilefacenet": {"train", "report"},
        "inception": {"report"},
    }.items():
        files[name].write_bytes(b"second")  # same path, other content
        now = fingerprints()
        assert {k for k in base if base[k] != now[k]} == readers, name
        files[name].write_bytes(b"first")
    dcface = fingerprints("train.model.variant=dcface")
    files["mobilefacenet"].write_bytes(b"second")  # DCFace reads no landmark network
    assert fingerprints("train.model.variant=dcface")["train"] == dcface["train"]

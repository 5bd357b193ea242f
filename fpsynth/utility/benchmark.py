"""The protocol over arrays: every task x grader x regime x repeat, tested on the real test subjects.

:func:`evaluate` takes the real set (both splits) and the generated set as :class:`Samples` and
returns the per-run table and the summary that ``utility.json`` holds. It is the whole benchmark
minus file reading, so tests (and users with their own arrays) call it directly.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fpsynth.seeds import derive, rng
from fpsynth.utility import leaks
from fpsynth.utility.config import Grader, UtilityConfig
from fpsynth.utility.features import geometry_features
from fpsynth.utility.graders import appearance_grader, geometry_grader, ir50_grader
from fpsynth.utility.metrics import HIGHER_IS_BETTER, METRICS, interval, subject_bootstrap, task_metrics
from fpsynth.utility.regimes import REAL, Rows, Samples, regimes, synthetic_draw
from fpsynth.utility.tasks import TASKS, Task, labels, unusable

Extractor = Callable[[np.ndarray], np.ndarray]  # (N, 68, 2) landmarks -> (N, F) features
ImageFeatures = Callable[[np.ndarray], np.ndarray]  # (N, 112, 112, 3) crops -> (N, F) features (ir50)


@dataclasses.dataclass
class Result:
    runs: pd.DataFrame  # one row per (task, grader, regime, repeat)
    summary: dict[str, Any]  # utility.json's "tasks", "leaks", "protocol", "timings_s"


def _add_time(timings: dict[str, float], key: str, t0: float) -> None:
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


def _images(samples: Samples) -> np.ndarray:
    """(N, 112, 112, 3) uint8 crops of ``samples``: the ir50 and appearance graders need them read."""
    if samples.images is None:
        raise ValueError("the ir50 and appearance graders need the crops: read the samples with their images")
    return samples.images


def evaluate(
    real: Samples,
    synthetic: Samples,
    cfg: UtilityConfig,
    seed: int,
    *,
    extractor: Extractor = geometry_features,
    image_features: ImageFeatures | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> Result:
    """Run the benchmark. ``real.table`` needs ``subject``, ``split`` (train/test), ``frame_id``;
    ``synthetic.table`` needs ``style_subject`` (and ``style_frame``, ``identity_source`` where known).
    ``image_features`` (crops -> features, e.g. frozen IR-50 embeddings) is needed by the ``ir50`` grader.

    ``timings_s`` holds seconds per part: ``features_<grader>`` (once per image), ``<grader>_training``
    (every fit and its test predictions) and ``<grader>_bootstrap`` (metrics and subject resamples)."""
    if Grader.IR50 in cfg.graders and image_features is None:
        raise ValueError("the ir50 grader needs image_features (frozen IR-50 features: set weights.ir50_id)")
    is_test = (real.table["split"] == "test").to_numpy()
    test_subjects = set(map(str, real.table.loc[is_test, "subject"]))
    test_frames = set(map(str, real.table.loc[is_test, "frame_id"])) if "frame_id" in real.table else set()
    is_train = (real.table["split"] == "train").to_numpy() & ~real.table["subject"].astype(str).isin(
        test_subjects
    ).to_numpy()
    train, test = real.take(np.flatnonzero(is_train)), real.take(np.flatnonzero(is_test))
    reasons = leaks.synthetic_exclusions(synthetic.table, test_subjects, test_frames)
    pool_set = synthetic.take(np.flatnonzero((reasons == "").to_numpy()))
    leak_block = {
        "rules": list(leaks.RULES),
        "test_subjects": len(test_subjects),
        "synthetic_total": len(synthetic),
        "synthetic_usable": len(pool_set),
        "synthetic_excluded": {k: int(v) for k, v in reasons[reasons != ""].value_counts().items()},
    }
    timings: dict[str, float] = {}
    feats: dict[Grader, dict[str, np.ndarray]] = {}
    sets = {"train": train, "test": test, "pool": pool_set}
    if Grader.GEOMETRY in cfg.graders:
        t0 = time.perf_counter()
        feats[Grader.GEOMETRY] = {k: extractor(v.landmarks) for k, v in sets.items()}
        _add_time(timings, "features_geometry", t0)
    if Grader.IR50 in cfg.graders and image_features is not None:
        t0 = time.perf_counter()
        feats[Grader.IR50] = {k: image_features(_images(v)) for k, v in sets.items()}
        _add_time(timings, "features_ir50", t0)
    subjects = test.table["subject"].astype(str).to_numpy()

    runs: list[dict[str, Any]] = []
    tasks: dict[str, Any] = {}
    for name in cfg.tasks:
        task = TASKS[name]
        y_train, y_test, y_pool = labels(train.table, task), labels(test.table, task), labels(pool_set.table, task)
        why = unusable(task, y_train, y_test)
        block: dict[str, Any] = {
            "what": task.what,
            "kind": task.kind.value,
            "metric": task.metric,
            "higher_is_better": HIGHER_IS_BETTER[task.metric],
        }
        if why:
            tasks[name] = {**block, "status": "skipped", "reason": why}
            log(f"utility: {name}: skipped ({why})")
            continue
        tr, te, po = (
            np.flatnonzero(np.isfinite(y_train)),
            np.flatnonzero(np.isfinite(y_test)),
            np.flatnonzero(np.isfinite(y_pool)),
        )
        block.update(
            {
                "status": "ok",
                "n_test": int(len(te)),
                "n_test_subjects": int(len(set(subjects[te]))),
                "n_train_real": int(len(tr)),
                "n_synthetic_pool": int(len(po)),
                "graders": {},
            }
        )
        for grader in cfg.graders:
            t0 = time.perf_counter()
            block["graders"][grader.value] = _grader_runs(
                task,
                grader,
                cfg,
                seed,
                train,
                test,
                pool_set,
                feats.get(grader, {}),
                (y_train, y_test, y_pool),
                (tr, te, po),
                subjects,
                test_subjects,
                runs,
                timings,
            )
            log(f"utility: {name} / {grader.value}: {time.perf_counter() - t0:.1f} s")
        tasks[name] = block
    protocol = {
        "seed": seed,
        "repeats": cfg.repeats,
        "bootstrap": cfg.bootstrap,
        "confidence": cfg.confidence,
        "ci_over": "test subjects",
        "regimes": [r.label for r in regimes(cfg)],
        "n_real_train": len(train),
        "n_real_test": len(test),
        "test_subjects": len(test_subjects),
    }
    return Result(
        pd.DataFrame(runs),
        {
            "tasks": tasks,
            "leaks": leak_block,
            "protocol": protocol,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        },
    )


def _grader_runs(
    task: Task,
    grader: Grader,
    cfg: UtilityConfig,
    seed: int,
    train: Samples,
    test: Samples,
    pool: Samples,
    feats: dict[str, np.ndarray],
    ys: tuple[np.ndarray, ...],
    rows: tuple[np.ndarray, ...],
    subjects: np.ndarray,
    test_subjects: set[str],
    runs: list[dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """Every regime of one (task, grader): per-repeat runs appended to ``runs``; the regimes' summaries."""
    y_train, y_test, y_pool = ys
    tr, te, po = rows
    out: dict[str, Any] = {}
    # a fresh generator per regime from one seed: the same subject draws for every regime (paired)
    boot_rng = functools.partial(rng, seed, "utility-bootstrap", task.name, grader.value)
    real_boot: dict[str, np.ndarray] | None = None
    for regime in regimes(cfg):
        if regime.name != "real" and not len(po):
            out[regime.label] = {"status": "skipped", "reason": "no usable generated image has this label"}
            continue
        scores, n_syn = [], []
        for r in range(cfg.repeats):
            draw = synthetic_draw(regime, len(tr), po, rng(seed, "utility-draw", task.name, regime.label, r))
            real_rows = tr if regime.uses_real else tr[:0]
            leaks.check_training_set(train.table["subject"].to_numpy()[real_rows], pool.table.iloc[draw], test_subjects)
            y = np.concatenate([y_train[real_rows], y_pool[draw]])
            if task.kind.value != "regression" and len(np.unique(y)) < 2:
                break
            model_seed = derive(seed, "utility-model", task.name, grader.value, r) % (2**31)
            t0 = time.perf_counter()
            if grader is Grader.APPEARANCE:
                x_img = Rows((_images(train), real_rows), (_images(pool), draw))  # gathered per batch, never stacked
                s = appearance_grader(x_img, y, _images(test)[te], task.kind, cfg.appearance, model_seed)
            else:
                x = np.concatenate([feats["train"][real_rows], feats["pool"][draw]])
                if grader is Grader.GEOMETRY:
                    s = geometry_grader(x, y, feats["test"][te], task.kind, cfg.geometry, model_seed)
                else:
                    s = ir50_grader(x, y, feats["test"][te], task.kind, cfg.ir50, model_seed)
            _add_time(timings, f"{grader.value}_training", t0)
            scores.append(np.asarray(s, np.float64))
            n_syn.append(len(draw))
            runs.append(
                {
                    "task": task.name,
                    "grader": grader.value,
                    "regime": regime.name,
                    "ratio": np.nan if regime.ratio is None else regime.ratio,
                    "repeat": r,
                    "seed": model_seed,
                    "n_train_real": int(len(real_rows)),
                    "n_train_synthetic": int(len(draw)),
                    "n_test": int(len(te)),
                    **task_metrics(task.kind, y_test[te], s),
                }
            )
        if not scores:
            out[regime.label] = {"status": "skipped", "reason": "the training set holds a single class"}
            continue
        t0 = time.perf_counter()
        block, boot = _summarise(task, np.stack(scores), y_test[te], subjects[te], cfg, boot_rng)
        _add_time(timings, f"{grader.value}_bootstrap", t0)
        if regime == REAL:
            real_boot = boot
        elif real_boot is not None and cfg.bootstrap:
            diff = boot[task.metric] - real_boot[task.metric]
            lo, hi = interval(diff, cfg.confidence)
            a, b = block["metrics"][task.metric]["value"], out[REAL.label]["metrics"][task.metric]["value"]
            block["gain_vs_real"] = {
                "metric": task.metric,
                "value": None if a is None or b is None else a - b,
                "ci": [lo, hi],
            }
        out[regime.label] = {
            "status": "ok",
            "regime": regime.name,
            "ratio": regime.ratio,
            "n_train_real": int(len(tr)) if regime.uses_real else 0,
            "n_train_synthetic": int(np.mean(n_syn)),
            **block,
        }
    return out


def _summarise(
    task: Task,
    scores: np.ndarray,
    y: np.ndarray,
    subjects: np.ndarray,
    cfg: UtilityConfig,
    boot_rng: Callable[[], np.random.Generator],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of the repeats' outputs ``scores`` (R, N): mean and sd over repeats, subject-bootstrap CI
    of the repeat-mean."""
    per_repeat = [task_metrics(task.kind, y, s) for s in scores]

    def mean_over_repeats(rows: np.ndarray) -> dict[str, float]:
        vals = [task_metrics(task.kind, y[rows], s[rows]) for s in scores]
        return {
            k: float(np.nanmean([v[k] for v in vals])) if any(np.isfinite(v[k]) for v in vals) else float("nan")
            for k in vals[0]
        }

    boot = subject_bootstrap(subjects, mean_over_repeats, cfg.bootstrap, boot_rng()) if cfg.bootstrap else {}
    metrics: dict[str, Any] = {}
    for name in METRICS[task.kind]:
        values = np.array([m[name] for m in per_repeat])
        finite = values[np.isfinite(values)]
        lo, hi = interval(boot[name], cfg.confidence) if boot else (None, None)
        metrics[name] = {
            "value": float(finite.mean()) if len(finite) else None,
            "sd_repeats": float(finite.std()) if len(finite) > 1 else None,
            "ci": [lo, hi],
        }
    return {"metrics": metrics, "repeats": int(len(scores))}, boot

"""fpsynth utility on rendered faces whose truth is known (the demo renderer's exact palsy).

The falsifiable tests of issue 15: (a) a grader trained on real (rendered) train subjects beats
chance on the test subjects by a stated margin; (b) a "synthetic" set that carries shuffled labels,
or is noise, gives no gain over real only; (c) extra correctly labelled rendered subjects offered as
the synthetic set improve the metric. Then the leak rules and the subject-level bootstrap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fpsynth.demo.rendered import as_synthetic, rendered_samples, with_split
from fpsynth.utility import leaks
from fpsynth.utility.benchmark import evaluate
from fpsynth.utility.config import Grader, UtilityConfig
from fpsynth.utility.metrics import subject_bootstrap, task_metrics
from fpsynth.utility.regimes import Regime, Samples, synthetic_draw
from fpsynth.utility.tasks import Kind

SEV = [0.0, 0.5, 0.0, 0.8, 0.0, 0.35, 0.0, 1.0]
TEST_SEV = [0.0, 0.62, 0.0, 0.2, 0.0, 0.9, 0.0, 0.5]
GEOMETRY = UtilityConfig(
    graders=(Grader.GEOMETRY,), tasks=("palsy", "severity", "eface"), repeats=2, bootstrap=200, ratios=(1.0, 4.0)
)


def real_set(train_sev: list[float]) -> Samples:
    """Train subjects r000.. with ``train_sev``, then eight test subjects of other severities and faces."""
    samples = rendered_samples(train_sev + TEST_SEV, seed=1)
    return with_split(samples, [f"r{k:03d}" for k in range(len(train_sev), len(train_sev) + len(TEST_SEV))])


@pytest.fixture(scope="module")
def real() -> Samples:
    return real_set(SEV * 2)  # 16 train subjects


@pytest.fixture(scope="module")
def extra() -> Samples:
    return as_synthetic(rendered_samples(SEV * 3, seed=2, prefix="x"))  # 24 other rendered subjects


def value(result, task: str, regime: str, metric: str | None = None) -> float:
    block = result.summary["tasks"][task]
    return block["graders"]["geometry"][regime]["metrics"][metric or block["metric"]]["value"]


def test_a_real_only_grader_beats_chance_on_test_subjects(real, extra):
    r = evaluate(real, extra, GEOMETRY, seed=0)
    # palsy vs normal: chance is 0.5 balanced accuracy / AUROC; demand a clear margin
    assert value(r, "palsy", "real") >= 0.75
    assert value(r, "palsy", "real", "auroc") >= 0.8
    # severity: chance QWK is 0; eFACE: predicting the training mean gives an MAE of about 15 points here
    assert value(r, "severity", "real") >= 0.6
    y = real.table.loc[real.table["split"] == "test", "eface"].to_numpy()
    mean_mae = np.abs(y - real.table.loc[real.table["split"] == "train", "eface"].mean()).mean()
    assert value(r, "eface", "real") < 0.5 * mean_mae


def shuffled(samples: Samples, seed: int) -> Samples:
    """The same images with their subjects' labels permuted across subjects (label noise, same marginals)."""
    t = samples.table.copy()
    subjects = t["style_subject"].unique()
    perm = dict(zip(subjects, np.random.default_rng(seed).permutation(subjects)))
    first = t.drop_duplicates("style_subject").set_index("style_subject")
    for col in ("severity", "eface", "side"):
        t[col] = t["style_subject"].map(lambda s, c=col: first.loc[perm[s], c]).to_numpy()
    return Samples(t, samples.landmarks, samples.images)


def test_b_shuffled_labels_give_no_gain(real, extra):
    bad = shuffled(extra, seed=5)
    assert (bad.table["severity"] != extra.table["severity"]).mean() > 0.3  # the shuffle changed labels
    r = evaluate(real, bad, GEOMETRY, seed=0)
    for task in ("palsy", "severity"):
        base = value(r, task, "real")
        assert value(r, task, "real+synthetic x1") <= base + 0.02
        assert value(r, task, "real+synthetic x4") <= base + 0.02
        assert value(r, task, "synthetic") < base - 0.1  # trained on wrong labels alone: far worse
    assert value(r, "eface", "real+synthetic x4") >= value(r, "eface", "real") - 0.5  # MAE: lower is better


def test_b_noise_images_give_no_gain(real, extra):
    from fpsynth.metrics.landmarks import dlib_crop_landmarker

    rng = np.random.default_rng(3)
    noise_images = rng.integers(0, 256, extra.images.shape, dtype=np.uint8)
    # landmarks of the noise from the detector, as the stage computes them for generated images
    noise = Samples(extra.table, dlib_crop_landmarker()(noise_images), noise_images)
    r = evaluate(real, noise, GEOMETRY, seed=0)
    for task in ("palsy", "severity"):
        assert value(r, task, "real+synthetic x4") <= value(r, task, "real") + 0.02
        assert value(r, task, "synthetic") < value(r, task, "real") - 0.1
    gain = r.summary["tasks"]["palsy"]["graders"]["geometry"]["real+synthetic x4"]["gain_vs_real"]
    assert gain["value"] <= 0.02


def test_c_correct_extra_subjects_improve_a_small_real_set(extra):
    small = real_set([0.0, 0.5, 0.0, 0.8])  # four train subjects
    r = evaluate(small, extra, GEOMETRY, seed=0)
    sev = r.summary["tasks"]["severity"]["graders"]["geometry"]["real+synthetic x4"]
    assert value(r, "severity", "real+synthetic x4") >= value(r, "severity", "real") + 0.05
    assert sev["gain_vs_real"]["ci"][0] > 0  # the subject-bootstrap CI of the gain excludes zero
    assert value(r, "eface", "real+synthetic x4") < 0.5 * value(r, "eface", "real")


def test_appearance_grader_is_seeded_and_runs_on_arrays():
    from fpsynth.utility.config import AppearanceConfig
    from fpsynth.utility.graders import appearance_grader

    s = rendered_samples([0.0, 1.0, 0.0, 0.8], seed=4, frames=2)
    y = (s.table["severity"] != "normal").to_numpy(float)
    cfg = AppearanceConfig(epochs=1, width=4, batch_size=8)
    p1 = appearance_grader(s.images, y, s.images[:5], Kind.BINARY, cfg, seed=7)
    p2 = appearance_grader(s.images, y, s.images[:5], Kind.BINARY, cfg, seed=7)
    assert p1.shape == (5,) and np.all((p1 >= 0) & (p1 <= 1))
    np.testing.assert_array_equal(p1, p2)
    eface = appearance_grader(s.images, s.table["eface"].to_numpy(), s.images[:3], Kind.REGRESSION, cfg, seed=7)
    assert eface.shape == (3,) and np.isfinite(eface).all()


# --------------------------------------------------------------------------- leak rules


def test_a_test_subject_never_trains_in_any_regime(real, extra):
    test_subjects = sorted(set(real.table.loc[real.table["split"] == "test", "subject"]))
    # a generated set that copies the TEST frames (style = a test subject) on top of the extra subjects
    test_rows = real.take(np.flatnonzero(real.table["split"] == "test"))
    leaked = as_synthetic(Samples(test_rows.table.drop(columns="split"), test_rows.landmarks, test_rows.images))
    both = Samples(
        pd.concat([extra.table, leaked.table]),
        np.concatenate([extra.landmarks, leaked.landmarks]),
        np.concatenate([extra.images, leaked.images]),
    )
    r = evaluate(real, both, GEOMETRY, seed=0)
    assert r.summary["leaks"]["synthetic_excluded"] == {"style source is a test subject": len(leaked)}
    assert r.summary["leaks"]["synthetic_usable"] == len(extra)
    # the generated pool after the rules never names a test subject; the synthetic-only regime used exactly it
    runs = r.runs[(r.runs["regime"] == "synthetic") & (r.runs["task"] == "palsy")]
    assert (runs["n_train_synthetic"] == len(extra)).all()
    assert not set(test_subjects) & set(extra.table["style_subject"])


def test_leak_rules_name_each_exclusion():
    table = pd.DataFrame(
        {
            "style_subject": ["a", "t1", "b", "c"],
            "style_frame": ["a/1", "t1/1", "x/9", "c/1"],
            "identity_source": ["ids/z.png", "ids/q.png", "ids/y.png", "ids/t2.png"],
        }
    )
    reasons = leaks.synthetic_exclusions(table, {"t1", "t2"}, {"x/9"})
    assert reasons.tolist() == [
        "",
        "style source is a test subject",
        "style source is a test frame",
        "identity source is a test subject",
    ]
    with pytest.raises(leaks.LeakError):
        leaks.check_training_set(np.array(["a", "t1"]), table.iloc[:0], {"t1"})
    with pytest.raises(leaks.LeakError):
        leaks.check_training_set(np.array(["a"]), table.iloc[[1]], {"t1"})


def test_overlapping_splits_never_train_on_a_test_subject(real, extra):
    """A frames table where a subject is in both splits: its frames are tested on, never trained on."""
    t = real.table.copy()
    s = t.loc[t["split"] == "test", "subject"].iloc[0]
    rows = np.flatnonzero(t["subject"] == s)[:2]
    t.loc[rows, "split"] = "train"
    r = evaluate(Samples(t, real.landmarks, real.images), extra, GEOMETRY, seed=0)
    n_train = int((t["split"] == "train").sum()) - 2
    assert (r.runs.loc[r.runs["regime"] == "real", "n_train_real"] <= n_train).all()


def test_regime_draws_are_sized_by_the_real_count():
    pool = np.arange(100)
    rng = np.random.default_rng(0)
    assert len(synthetic_draw(Regime("real+synthetic", 0.5), 40, pool, rng)) == 20
    assert len(synthetic_draw(Regime("real+synthetic", 4.0), 40, pool, rng)) == 100  # capped by the pool
    assert len(synthetic_draw(Regime("synthetic", None), 40, pool, rng)) == 100
    assert len(synthetic_draw(Regime("real", None), 40, pool, rng)) == 0


# --------------------------------------------------------------------------- metrics


def test_bootstrap_resamples_subjects_not_images():
    # two subjects: one with 100 rows all right, one with 1 row wrong. Resampling images would almost
    # never draw the wrong row; resampling subjects draws only it in about a quarter of the resamples.
    subjects = np.array(["a"] * 100 + ["b"])
    y = np.ones(101)
    s = np.r_[np.ones(100), 0.0]
    vals = subject_bootstrap(
        subjects, lambda rows: {"acc": float(np.mean((s[rows] >= 0.5) == y[rows]))}, 400, np.random.default_rng(0)
    )["acc"]
    assert set(np.round(np.unique(vals), 4)) <= {0.0, round(100 / 101, 4), round(200 / 202, 4), 1.0}
    assert 0.15 < np.mean(vals == 0.0) < 0.35


def test_metrics_match_scikit_learn():
    from sklearn import metrics as M

    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 300).astype(float), np.round(rng.random(300), 2)
    m = task_metrics(Kind.BINARY, y, s)
    assert m["auroc"] == pytest.approx(M.roc_auc_score(y, s))
    assert m["macro_f1"] == pytest.approx(M.f1_score(y, s >= 0.5, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(M.balanced_accuracy_score(y, s >= 0.5))
    assert m["sensitivity"] == pytest.approx(M.recall_score(y, s >= 0.5))
    y, s = rng.integers(0, 6, 300).astype(float), rng.normal(2.5, 1.5, 300)
    m = task_metrics(Kind.ORDINAL, y, s)
    p = np.clip(np.rint(s), 0, 5)
    assert m["qwk"] == pytest.approx(M.cohen_kappa_score(y, p, weights="quadratic"))
    assert m["mae_categories"] == pytest.approx(M.mean_absolute_error(y, p))
    assert np.isnan(task_metrics(Kind.BINARY, np.ones(5), np.full(5, 0.7))["auroc"])  # one class: undefined

"""The appearance graders on arrays: the CNN learns an exact rendered palsy; frozen IR-50 features + a linear head.

The rendered faces (fpsynth.demo) carry a one-sided palsy of known severity and side, so the
truth is known: a grader that learned the palsy beats chance on subjects it never saw, and the
same grader trained on labels shuffled across subjects (nothing to learn) does not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpsynth.demo.rendered import rendered_samples, with_split
from fpsynth.demo_config import Movement
from fpsynth.nets.config import IRConfig
from fpsynth.utility.config import AppearanceConfig, AppearanceInput, Grader, Ir50GraderConfig, UtilityConfig
from fpsynth.utility.graders import appearance_grader, cnn_input, ir50_grader, training_steps
from fpsynth.utility.metrics import task_metrics
from fpsynth.utility.regimes import Rows
from fpsynth.utility.tasks import TASKS, Kind, labels

SEV = [0.0, 0.5, 0.0, 0.8, 0.0, 0.35, 0.0, 1.0]
TEST_SEV = [0.0, 0.62, 0.0, 0.2, 0.0, 0.9, 0.0, 0.5]
pytestmark = pytest.mark.usefixtures("one_thread")  # a shared 2-core CPU: one torch thread is faster
TINY_IR = IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(16, 32, 64, 128), embedding_dim=128)


@pytest.fixture(scope="module")
def rendered():
    """32 train subjects (288 crops), 16 test subjects of other severities and faces (144 crops)."""
    train, test = SEV * 4, TEST_SEV * 2
    s = rendered_samples(train + test, seed=1)
    s = with_split(s, [f"r{k:03d}" for k in range(len(train), len(train) + len(test))])
    return s, np.flatnonzero(s.table["split"] == "train"), np.flatnonzero(s.table["split"] == "test")


def test_cnn_beats_chance_on_unseen_subjects_and_not_on_shuffled_labels(rendered):
    s, tr, te = rendered
    cfg = AppearanceConfig()  # the defaults: mirror input, 20 epochs
    y = labels(s.table, TASKS["palsy"])
    learned = task_metrics(
        Kind.BINARY, y[te], appearance_grader(s.images[tr], y[tr], s.images[te], Kind.BINARY, cfg, 0)
    )
    # chance is 0.5 for both; measured 0.83-0.86 AUROC, 0.76-0.79 balanced accuracy over seeds (side 56 and 112)
    assert learned["auroc"] >= 0.75 and learned["balanced_accuracy"] >= 0.65
    # the control: every training subject gets another subject's label; the images are the same
    subj = s.table["subject"].to_numpy()[tr]
    uniq = np.unique(subj)
    first = {u: y[tr][subj == u][0] for u in uniq}
    perm = dict(zip(uniq, np.random.default_rng(0).permutation(uniq)))
    y_shuffled = np.array([first[perm[u]] for u in subj])
    assert (y_shuffled != y[tr]).mean() > 0.3
    control = task_metrics(
        Kind.BINARY, y[te], appearance_grader(s.images[tr], y_shuffled, s.images[te], Kind.BINARY, cfg, 0)
    )
    assert control["auroc"] < 0.65 and learned["auroc"] >= control["auroc"] + 0.15
    # severity (ordinal, chance QWK 0): measured 0.77-0.84
    sev = labels(s.table, TASKS["severity"])
    out = appearance_grader(s.images[tr], sev[tr], s.images[te], Kind.ORDINAL, cfg, 0)
    assert task_metrics(Kind.ORDINAL, sev[te], out)["qwk"] >= 0.5


def test_mirror_input_keeps_the_asymmetry_alone_in_half_the_width():
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (2, 112, 56, 3), dtype=np.uint8)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)  # (2, 112, 112, 3), mirror-symmetric
    d = cnn_input(symmetric, AppearanceInput.MIRROR, torch.device("cpu"))
    assert d.shape == (2, 3, 112, 56) and float(d.abs().max()) == 0.0  # nothing left of a symmetric face
    face = rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    full = cnn_input(face, AppearanceInput.RGB, torch.device("cpu"))
    diff = full - full.flip(3)
    # the dropped right half is the kept left half mirrored and negated: no information is lost
    torch.testing.assert_close(diff[..., 56:], -cnn_input(face, AppearanceInput.MIRROR, torch.device("cpu")).flip(3))
    assert cnn_input(face, AppearanceInput.BOTH, torch.device("cpu")).shape == (2, 6, 112, 112)


def test_training_length_is_epochs_capped_by_steps():
    assert training_steps(288, AppearanceConfig(epochs=20, batch_size=32, max_steps=0)) == 180
    assert training_steps(289, AppearanceConfig(epochs=2, batch_size=32, max_steps=0)) == 18  # a batch of 1 dropped
    assert training_steps(290, AppearanceConfig(epochs=2, batch_size=32, max_steps=0)) == 20
    assert training_steps(90_000, AppearanceConfig(epochs=20, batch_size=32, max_steps=500)) == 500


def test_rows_gathers_like_the_stacked_arrays():
    a, b = np.arange(40).reshape(10, 4), 100 + np.arange(24).reshape(6, 4)
    ra, rb = np.array([7, 1, 3]), np.array([5, 0])
    stacked = np.concatenate([a[ra], b[rb]])
    rows = Rows((a, ra), (b, rb))
    idx = np.array([4, 0, 2, 3, 1])
    assert len(rows) == 5
    np.testing.assert_array_equal(rows[idx], stacked[idx])


def test_appearance_grader_is_seeded_on_a_lazy_training_set():
    s = rendered_samples([0.0, 1.0, 0.0, 0.8], seed=4, frames=2)
    y = labels(s.table, TASKS["palsy"])
    cfg = AppearanceConfig(epochs=2, width=4, batch_size=8)
    lazy = Rows((s.images, np.arange(len(y))))
    p1 = appearance_grader(lazy, y, s.images[:5], Kind.BINARY, cfg, seed=7)
    p2 = appearance_grader(s.images, y, s.images[:5], Kind.BINARY, cfg, seed=7)
    np.testing.assert_array_equal(p1, p2)
    for mode in AppearanceInput:
        out = appearance_grader(
            s.images,
            labels(s.table, TASKS["eface"]),
            s.images[:3],
            Kind.REGRESSION,
            AppearanceConfig(epochs=1, width=4, batch_size=8, input=mode),
            seed=7,
        )
        assert out.shape == (3,) and np.isfinite(out).all()


# --------------------------------------------------------------------------- frozen IR-50 + linear head


def _ir50_file(tmp_path, ir: IRConfig):
    """An IR state made here (random weights, seeded) saved as a torch state dict: the plumbing, not a face model."""
    from fpsynth.nets.ir50 import IResNet

    torch.manual_seed(0)
    net = IResNet(ir)
    path = tmp_path / "ir50.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize(
    "ir, dim", [(TINY_IR, 128), pytest.param(IRConfig(), 512, marks=pytest.mark.slow)], ids=["tiny", "ir50"]
)
def test_ir50_features_have_their_shape_and_are_deterministic(tmp_path, ir, dim):
    from fpsynth.utility.ir50 import ir50_features, load_ir50

    cfg = Ir50GraderConfig(network=ir, batch_size=2)
    net, record = load_ir50(cfg, _ir50_file(tmp_path, ir))
    assert record.path is not None and not record.random_init and len(record.sha256) == 64
    crops = rendered_samples([0.0, 1.0], seed=3, frames=2, movements=(Movement.SMILE_OPEN,)).images
    f = ir50_features(crops, net, cfg)  # (N, 2E): [e, e - e(flip)]
    assert f.shape == (len(crops), 2 * dim) and f.dtype == np.float32 and np.isfinite(f).all()
    np.testing.assert_allclose(np.linalg.norm(f[:, :dim], axis=1), 1.0, rtol=1e-5)
    again = ir50_features(crops, net, Ir50GraderConfig(network=ir, batch_size=3))  # other batches: same numbers
    np.testing.assert_allclose(again, f, atol=1e-5)
    plain = ir50_features(crops, net, Ir50GraderConfig(network=ir, mirror=False))
    assert plain.shape == (len(crops), dim)
    half = crops[:, :, :56]
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    assert np.abs(ir50_features(symmetric, net, cfg)[:, dim:]).max() < 1e-5  # a symmetric face: no asymmetry


def test_ir50_weights_missing_or_wrong_fail_in_one_line(tmp_path):
    from fpsynth.errors import FpsynthError
    from fpsynth.utility.ir50 import load_ir50

    with pytest.raises(FpsynthError, match="weights.ir50_id"):
        load_ir50(Ir50GraderConfig(), None)
    with pytest.raises(FpsynthError, match="layout does not match"):
        load_ir50(Ir50GraderConfig(), _ir50_file(tmp_path, TINY_IR))  # a tiny state for an IR-50


def test_linear_head_fits_separable_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200).astype(float)
    x = rng.normal(size=(200, 64)).astype(np.float32)
    x[:, 3] += 4.0 * (2 * y - 1)  # the classes lie 8 sd apart along one feature: linearly separable
    p = ir50_grader(x[:150], y[:150], x[150:], Kind.BINARY, Ir50GraderConfig(), seed=0)
    m = task_metrics(Kind.BINARY, y[150:], p)
    assert m["auroc"] > 0.99 and m["balanced_accuracy"] > 0.95
    target = 50 + 10 * x[:, 0] - 5 * x[:, 7]
    out = ir50_grader(x[:150], target[:150], x[150:], Kind.REGRESSION, Ir50GraderConfig(), seed=0)
    assert np.abs(out - target[150:]).mean() < 1.0


def test_evaluate_runs_the_ir50_grader_on_image_features(rendered):
    from fpsynth.demo.rendered import as_synthetic
    from fpsynth.utility.benchmark import evaluate

    s, _, _ = rendered
    extra = as_synthetic(rendered_samples(SEV, seed=2, prefix="x", frames=2))
    cfg = UtilityConfig(graders=(Grader.IR50,), tasks=("palsy",), repeats=1, bootstrap=20, ratios=(1.0,))
    with pytest.raises(ValueError, match="image_features"):
        evaluate(s, extra, cfg, seed=0)
    seen = []

    def features(images: np.ndarray) -> np.ndarray:  # the mean colour of each half: a stand-in for IR-50
        seen.append(len(images))
        return np.concatenate([images[:, :, :56].mean((1, 2)), images[:, :, 56:].mean((1, 2))], 1)

    r = evaluate(s, extra, cfg, seed=0, image_features=features)
    assert sorted(seen) == sorted(
        [len(extra), int((s.table["split"] == "train").sum()), int((s.table["split"] == "test").sum())]
    )  # each image once
    assert set(r.summary["tasks"]["palsy"]["graders"]["ir50"]) == {"real", "synthetic", "real+synthetic x1"}
    assert {"features_ir50", "ir50_training", "ir50_bootstrap"} <= set(r.summary["timings_s"])


def test_appearance_side_is_checked_and_shrinks_the_input():
    with pytest.raises(ValueError, match="appearance.side"):
        AppearanceConfig(side=57)
    face = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    x = cnn_input(face, AppearanceInput.MIRROR, torch.device("cpu"), 56)
    assert x.shape == (2, 3, 56, 28)  # area shrink to 56, then the left half of the mirror difference

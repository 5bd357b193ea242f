"""Table 1 on the paper's scale: the authors' PSNR, SSIM and PL against independent computations.

SSIM and PSNR: scikit-image called exactly as the authors' evaluation script calls it (8-bit files
read as x / 255 in float64, ``data_range=1.0``, ``channel_axis=-1``, its default window). PL: the
mean squared difference of a VGG16 ``features`` stack written out here in torchvision's layout,
loaded from tensors with torchvision's key names. Then how the report's Table 1 picks a convention.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from fpsynth.data.pixels import to_unit
from fpsynth.metrics.config import Table1Convention
from fpsynth.metrics.perceptual import perceptual_distance, perceptual_loss_authors
from fpsynth.metrics.pixel import PSNR_OF_IDENTICAL, psnr, ssim, ssim_authors
from fpsynth.metrics.table1 import CONVENTIONS, PAIR_METRICS, TABLE1_COLUMNS, describe_convention
from fpsynth.nets.vgg import imagenet_normalize, load_vgg16
from fpsynth.report import sections
from fpsynth.report.summary import table1_row
from helpers.fixtures import fixture_path


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """The 55 real face crops of the fixtures at 112x112 (the report's size), uint8 RGB (55, 112, 112, 3)."""
    files = sorted(fixture_path("faces", "people").glob("*/*.jpg"))
    return np.stack(
        [
            cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (112, 112), interpolation=cv2.INTER_AREA)
            for f in files
        ]
    )


# The 6 pairs of table1.py's docstring: two photos of one person (crops of a person are 11 in a row).
SAME_PERSON = ([0, 11, 22, 33, 44, 1], [1, 12, 23, 34, 45, 2])


def _pairs(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Different people, the same person, and slightly noisy copies: SSIM from low to near 1."""
    rng = np.random.default_rng(0)
    noisy = np.clip(crops.astype(int) + rng.integers(-3, 4, crops.shape), 0, 255).astype(np.uint8)
    return np.concatenate([crops[:-1], crops[:10]]), np.concatenate([crops[1:], noisy[:10]])


def test_ssim_authors_is_scikit_image_on_images_in_0_1(crops):
    a, b = _pairs(crops)
    ours = ssim_authors(to_unit(a), to_unit(b)).numpy()  # fpsynth images: u8 / 127.5 - 1, float32
    ref = np.array([structural_similarity(x / 255.0, y / 255.0, channel_axis=-1, data_range=1.0) for x, y in zip(a, b)])
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert ref.min() < 0.3 and ref.max() > 0.9


def test_the_two_ssim_conventions_on_real_face_pairs(crops):
    a, b = (to_unit(crops[i]).double() for i in SAME_PERSON)
    authors, standard = ssim_authors(a, b), ssim(a, b, data_range=2.0, gaussian=True)
    # the figures table1.py quotes: the authors' way is about twice the standard way
    assert float(authors.mean()) == pytest.approx(0.4413, abs=5e-4)
    assert float(standard.mean()) == pytest.approx(0.2258, abs=5e-4)
    assert (authors > standard).all()


@pytest.mark.filterwarnings("ignore:divide by zero")  # scikit-image's own inf for identical images
def test_psnr_of_identical_images_is_100_as_the_authors_report_it(crops):
    a, b = crops[:6], crops[1:7]
    ours = psnr(to_unit(a), to_unit(b), data_range=2.0, identical=PSNR_OF_IDENTICAL).numpy()
    ref = [peak_signal_noise_ratio(x / 255.0, y / 255.0, data_range=1.0) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)  # [-1, 1] with range 2 = [0, 1] with range 1
    same = to_unit(a)
    assert psnr(same, same, identical=PSNR_OF_IDENTICAL).tolist() == [100.0] * 6
    assert torch.isinf(psnr(same, same)).all()  # the standard value
    assert peak_signal_noise_ratio(a[0] / 255.0, a[0] / 255.0, data_range=1.0) == np.inf


def _torchvision_vgg16_features() -> nn.Module:
    """torchvision's ``vgg16().features`` written out (configuration "D"): 3x3 convolutions with
    padding 1, each followed by a ReLU, and 2x2 max-pools of stride 2; 31 modules."""
    modules: list[nn.Module] = []
    cin = 3
    for width, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(convs):
            modules += [nn.Conv2d(cin, width, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True)]
            cin = width
        modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    holder = nn.Module()
    holder.features = nn.Sequential(*modules)
    assert len(holder.features) == 31 and isinstance(holder.features[30], nn.MaxPool2d)
    return holder


def test_pl_authors_is_the_mse_of_the_whole_vgg16_features_stack(crops, tmp_path):
    hand = _torchvision_vgg16_features().eval()
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in hand.state_dict().items():  # "features.0.weight" ... "features.28.bias"
        fan_in = value[0].numel() if value.dim() > 1 else 1
        state[key] = (
            torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            if value.dim() > 1
            else torch.randn(value.shape, generator=gen) * 0.01
        )
    hand.load_state_dict(state)
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    vgg, record = load_vgg16(tmp_path / "vgg16-397923af.pth", verify_checksum=False)
    assert not record.random_init

    x, y = to_unit(crops[[0, 11]]), to_unit(crops[[1, 22]])  # same person; other people
    with torch.no_grad():
        ours = perceptual_loss_authors(vgg, x, y)
        feats = [(hand.features(x[i : i + 1]), hand.features(y[i : i + 1])) for i in range(2)]
        ref = torch.stack([F.mse_loss(fx, fy) for fx, fy in feats])  # the script: one image at a time
        normalised = F.mse_loss(hand.features(imagenet_normalize(x[:1])), hand.features(imagenet_normalize(y[:1])))
        johnson = perceptual_distance(vgg, x, y)
    assert feats[0][0].shape == (1, 512, 3, 3)  # through the fifth max-pool at 112x112
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
    assert ours[0] > 0 and not torch.isclose(ours[0], normalised, rtol=1e-3)  # fed [-1, 1], not standardised
    assert not torch.allclose(ours, johnson, rtol=1e-2)


# --------------------------------------------------------------------------- the report's Table 1


def _evaluation() -> dict:
    """A set's figures with a distinct mean per pair metric and reference."""
    pairwise = {m: {"x_id": {"mean": float(i)}, "x_style": {"mean": i + 0.5}} for i, m in enumerate(PAIR_METRICS)}
    return {"n": 3, "pairwise": pairwise, "fid": {"status": "ok", "value": 1.0}}


@pytest.mark.parametrize(
    "convention, expected",
    [
        (Table1Convention.AUTHORS, {"psnr": "psnr", "ssim": "ssim", "lpips": "lpips", "pl": "pl"}),
        (
            Table1Convention.STANDARD,
            {"psnr": "psnr_uncapped", "ssim": "ssim_wang", "lpips": "lpips", "pl": "pl_johnson"},
        ),
    ],
)
def test_table1_shows_the_configured_convention_and_says_which(convention, expected):
    evaluation = _evaluation()
    row = table1_row("dataset", evaluation, None, convention)
    assert row["convention"] == convention.value and tuple(CONVENTIONS[convention]) == TABLE1_COLUMNS
    for column, metric in expected.items():
        assert row[column] == {
            "x_id": evaluation["pairwise"][metric]["x_id"]["mean"],
            "x_style": evaluation["pairwise"][metric]["x_style"]["mean"],
        }
    recorded = describe_convention(convention)
    assert recorded["name"] == convention.value
    assert {c: v["metric"] for c, v in recorded["columns"].items()} == expected
    report = {
        "table1": [row],
        "table1_convention": recorded,
        "sets": {"dataset": evaluation},
        "evaluated": {"model": None},
        "reference": {"split": "test", "n": 4},
    }
    html = sections.table1(report)
    assert f"({convention.value} convention)" in html
    for metric in expected.values():
        assert f"<code>{metric}</code>" in html and PAIR_METRICS[metric].definition.split(":")[0][:30] in html

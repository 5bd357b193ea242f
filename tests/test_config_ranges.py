"""Bad values are refused with a message naming the key (issue 14 item 8, the parts outside prepare)."""

from __future__ import annotations

import pytest

from fpsynth.config import ConfigError
from fpsynth.pipeline import load_pipeline


@pytest.mark.parametrize(
    "override,named",
    [
        ("train.optim.lr=nan", "train.optim.lr: expected a finite number"),
        ("train.optim.lr=inf", "train.optim.lr: expected a finite number"),
        ("train.loss.sigma=-inf", "train.loss.sigma: expected a finite number"),
        ("generate.sampler.eta=nan", "generate.sampler.eta: expected a finite number"),
        ("seed=-1", "seed must be in 0 .. 2**63 - 1"),
        ("seed=9223372036854775808", "seed must be in 0 .. 2**63 - 1"),
    ],
)
def test_non_finite_numbers_and_negative_seeds_are_refused(override, named):
    with pytest.raises(ConfigError, match=named.replace("*", r"\*").replace(".", r"\.")):
        load_pipeline("tiny", [override])


def test_valid_values_still_pass():
    cfg = load_pipeline("tiny", ["train.optim.lr=0.0002", "seed=0", "train.loss.sigma=0.0"])
    assert (cfg.train.optim.lr, cfg.seed, cfg.train.loss.sigma) == (0.0002, 0, 0.0)


def test_a_huge_count_is_refused_with_an_estimate_unless_allowed():
    with pytest.raises(ConfigError, match=r"about 24\.0 TB of images .*generate\.allow_large=true"):
        load_pipeline("tiny", ["generate.count=1000000000"])
    assert load_pipeline("tiny", ["generate.count=1000000000", "generate.allow_large=true"]).generate.count == 10**9

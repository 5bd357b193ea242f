"""DDIM and DPM-Solver++: closed-form loops, oracle recovery, per-item determinism."""

import pytest
import torch

from fpsynth.diffusion.config import SamplerConfig, SamplerKind
from fpsynth.diffusion.samplers import ddim_sample, ddim_timesteps, item_generators, sample
from fpsynth.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule()
SHAPE = (3, 8, 8)


def test_ddim_timesteps_leading_spacing():
    ts = ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 980 and ts[-1] == 0 and ts[1] - ts[0] == -20
    assert ddim_timesteps(1000, 2) == [500, 0]
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def test_ddim_two_step_loop_closed_form():
    # eps_theta = c everywhere, eta = 0, steps at t = 500 then t = 0. Step 1 gives
    # x0 = (x_T - sqrt(1 - ab500) c) / sqrt(ab500) and x_0' = sqrt(ab0) x0 + sqrt(1 - ab0) c;
    # step 2 recovers the same x0 from it and, with alpha_bar_prev = 1, returns it.
    ab500 = 0.0777966583650239  # pinned in test_diffusion_schedule
    c, x_T = 0.05, 0.1
    expected = (x_T - (1 - ab500) ** 0.5 * c) / ab500**0.5
    out = ddim_sample(lambda x, t: torch.full_like(x, c), SCHEDULE, SamplerConfig(steps=2, eta=0.0),
                      torch.full((2, *SHAPE), x_T, dtype=torch.float64), [])
    torch.testing.assert_close(out, torch.full((2, *SHAPE), expected, dtype=torch.float64))
    assert out.sum().item() == pytest.approx(2 * 3 * 8 * 8 * expected)


def _oracle(x0_true):
    # A perfect denoiser for a single known image: the noise that takes x0_true to x_t.
    return lambda x, t: SCHEDULE.predict_eps(x, t, x0_true.to(x.dtype))


@pytest.mark.parametrize(
    "cfg",
    [SamplerConfig(steps=10, eta=0.0), SamplerConfig(steps=10, eta=1.0),
     SamplerConfig(kind=SamplerKind.DPM_SOLVER_PP, steps=10)],
    ids=["ddim-eta0", "ddim-eta1", "dpm-solver++"],
)
def test_samplers_recover_the_image_from_an_oracle(cfg):
    x0_true = torch.rand((3, *SHAPE), generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    out = sample(_oracle(x0_true), SCHEDULE, cfg, item_generators([1, 2, 3]), shape=SHAPE)
    torch.testing.assert_close(out, x0_true, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", list(SamplerKind))
def test_an_items_image_depends_only_on_its_seed(kind):
    cfg = SamplerConfig(kind=kind, steps=5, eta=1.0)
    eps_fn = lambda x, t: 0.5 * x + 0.001 * t.view(-1, 1, 1, 1)  # noqa: E731 - any per-item denoiser
    batch = sample(eps_fn, SCHEDULE, cfg, item_generators([11, 12, 13]), shape=SHAPE)
    alone = sample(eps_fn, SCHEDULE, cfg, item_generators([13]), shape=SHAPE)
    torch.testing.assert_close(batch[2], alone[0])
    assert not torch.allclose(batch[0], batch[1])
    again = sample(eps_fn, SCHEDULE, cfg, item_generators([11, 12, 13]), shape=SHAPE)
    assert torch.equal(batch, again)
    assert batch.abs().max() <= 1.0


def test_ddim_eta_controls_the_stochasticity():
    eps_fn = lambda x, t: 0.5 * x  # noqa: E731
    a = sample(eps_fn, SCHEDULE, SamplerConfig(steps=5, eta=0.0), item_generators([1]), shape=SHAPE)
    b = sample(eps_fn, SCHEDULE, SamplerConfig(steps=5, eta=1.0), item_generators([1]), shape=SHAPE)
    assert not torch.allclose(a, b)


def test_sampler_config_validation():
    with pytest.raises(ValueError):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError):
        SamplerConfig(eta=-1.0)

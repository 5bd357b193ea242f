"""DDIM and DPM-Solver++: closed-form loops and steps, oracle recovery, per-item determinism, the registry."""

import contextlib

import pytest
import torch

from fpsynth.diffusion.config import SamplerConfig, SamplerKind
from fpsynth.diffusion.samplers import (
    DDIM,
    SAMPLERS,
    DPMSolverPP,
    NoiseSource,
    Sampler,
    StepOutput,
    ddim_timesteps,
    item_generators,
    make_sampler,
    sample,
    sample_conditioned,
    sampler_class,
)
from fpsynth.diffusion.samplers import denoise as ddim_sample
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
    out = ddim_sample(
        lambda x, t: torch.full_like(x, c),
        SCHEDULE,
        SamplerConfig(steps=2, eta=0.0),
        torch.full((2, *SHAPE), x_T, dtype=torch.float64),
        [],
    )
    torch.testing.assert_close(out, torch.full((2, *SHAPE), expected, dtype=torch.float64))
    assert out.sum().item() == pytest.approx(2 * 3 * 8 * 8 * expected)


def _oracle(x0_true):
    # A perfect denoiser for a single known image: the noise that takes x0_true to x_t.
    return lambda x, t: SCHEDULE.predict_eps(x, t, x0_true.to(x.dtype))


@pytest.mark.parametrize(
    "cfg",
    [
        SamplerConfig(steps=10, eta=0.0),
        SamplerConfig(steps=10, eta=1.0),
        SamplerConfig(kind=SamplerKind.DPM_SOLVER_PP, steps=10),
    ],
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


def test_every_kind_has_one_registered_sampler():
    assert set(SAMPLERS) == set(SamplerKind)
    for kind in SamplerKind:
        sampler = make_sampler(SCHEDULE, SamplerConfig(kind=kind))
        assert type(sampler) is sampler_class(kind) and isinstance(sampler, Sampler)
    assert sampler_class(SamplerKind.DDIM) is DDIM and sampler_class(SamplerKind.DPM_SOLVER_PP) is DPMSolverPP
    assert DDIM.uses_eta and not DPMSolverPP.uses_eta


def test_ddim_step_returns_the_closed_form_step_output():
    # eps = c, x_t = 0.1, eta = 0, timesteps 500 then 0: x0 = (x_t - sqrt(1 - ab500) c) / sqrt(ab500),
    # x_0' = sqrt(ab0) x0 + sqrt(1 - ab0) c with ab0 = 1 - beta_0 = 0.9999
    ab500, ab0, c, x_t = 0.0777966583650239, 1 - 1e-4, 0.05, 0.1
    sampler = make_sampler(SCHEDULE, SamplerConfig(steps=2, eta=0.0))
    sampler.set_timesteps(2)
    assert sampler.timesteps == [500, 0]
    x = torch.full((1, *SHAPE), x_t, dtype=torch.float64)
    out = sampler.step(torch.full_like(x, c), 500, x)
    assert isinstance(out, StepOutput)
    x0 = (x_t - (1 - ab500) ** 0.5 * c) / ab500**0.5
    torch.testing.assert_close(out.pred_original_sample, torch.full_like(x, x0))
    torch.testing.assert_close(out.prev_sample, torch.full_like(x, ab0**0.5 * x0 + (1 - ab0) ** 0.5 * c))
    assert out.pred_x0 is out.pred_original_sample
    last = sampler.step(torch.full_like(x, c), 0, out.prev_sample)  # alpha_bar past the last step = 1
    torch.testing.assert_close(last.prev_sample, last.pred_original_sample)
    with pytest.raises(ValueError, match="timestep 20"):
        sampler.step(x, 20, x)


def test_a_stochastic_ddim_step_needs_its_noise():
    sampler = make_sampler(SCHEDULE, SamplerConfig(steps=2, eta=1.0))
    sampler.set_timesteps(2)
    x = torch.zeros((1, *SHAPE))
    with pytest.raises(ValueError, match="Gaussian draw"):
        sampler.step(x, 500, x)
    assert sampler.step(x, 500, x, NoiseSource(item_generators([1]))).prev_sample.abs().sum() > 0


def test_dpm_solver_step_outputs_its_x0_prediction():
    x0_true = torch.rand((2, *SHAPE), generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    sampler = make_sampler(SCHEDULE, SamplerConfig(kind=SamplerKind.DPM_SOLVER_PP, steps=4))
    sampler.set_timesteps(4)
    assert len(sampler.timesteps) == 4 and sampler.timesteps == sorted(sampler.timesteps, reverse=True)
    x = torch.randn((2, *SHAPE), generator=torch.Generator().manual_seed(1))
    t = sampler.timesteps[0]
    out = sampler.step(_oracle(x0_true)(x, torch.full((2,), t)), t, x)
    torch.testing.assert_close(out.pred_original_sample, x0_true, atol=1e-4, rtol=0)  # fp32 at t = 999
    assert out.prev_sample.shape == x.shape


class _Stub:
    """A conditioned model: conditions = x_id + style, eps = 0.5 x + 0.01 cond, in float64 to see the fp32 cast."""

    def style_features(self, x0):
        return 2 * x0

    def conditions(self, x_id, style):
        return x_id + style

    def __call__(self, x_t, t, cond):
        return (0.5 * x_t + 0.01 * cond).double()


def test_conditioned_sampling_is_conditions_once_then_the_loop():
    x_id = torch.rand((2, 3, 112, 112), generator=torch.Generator().manual_seed(2)) * 2 - 1
    x_style = torch.rand((2, 3, 112, 112), generator=torch.Generator().manual_seed(3)) * 2 - 1
    cfg, entered = SamplerConfig(steps=3), []

    def amp():
        entered.append(1)
        return contextlib.nullcontext()

    model = _Stub()
    out = sample_conditioned(model, x_id, x_style, item_generators([7, 8]), SCHEDULE, cfg, amp=amp)
    cond = x_id + 2 * x_style
    expected = sample(lambda x, t: model(x, t, cond).float(), SCHEDULE, cfg, item_generators([7, 8]))
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert len(entered) == 1 + cfg.steps  # the conditions, then each network call

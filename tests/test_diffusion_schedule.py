"""Noise schedule: closed-form values, forward diffusion and Eq. 7."""

import math

import pytest
import torch

from fpsynth.diffusion.config import DiffusionConfig
from fpsynth.diffusion.schedule import NoiseSchedule


def test_linear_schedule_pinned_values():
    s = NoiseSchedule()
    assert s.num_timesteps == 1000
    assert s.betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert s.betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    assert s.alphas_cumprod[0].item() == pytest.approx(0.9999, abs=1e-15)  # 1 - beta_0
    # prod_{i<1000} (1 - beta_i), beta linear 1e-4 .. 0.02 (computed by hand in float64)
    assert s.alphas_cumprod[999].item() == pytest.approx(4.0358297653756754e-05, rel=1e-12)
    assert s.alphas_cumprod[500].item() == pytest.approx(0.0777966583650239, rel=1e-12)
    # independent recomputation
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    assert s.alphas_cumprod[250].item() == pytest.approx(math.prod(1 - b for b in betas[:251]), rel=1e-12)


def test_q_sample_and_predict_x0_invert_each_other():
    s = NoiseSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64) * 1.8 - 0.9
    eps = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    x_t = s.q_sample(x0, t, eps)
    ab = s.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    torch.testing.assert_close(s.predict_x0(x_t, t, eps, clip=False), x0)
    torch.testing.assert_close(s.predict_eps(x_t, t, x0), eps)


def test_predict_x0_is_clipped_to_the_data_range():
    s = NoiseSchedule()
    x_t = torch.full((1, 3, 2, 2), 5.0)
    t = torch.tensor([999])
    assert s.predict_x0(x_t, t, torch.zeros_like(x_t)).max().item() == 1.0
    assert s.predict_x0(x_t, t, torch.zeros_like(x_t), clip=False).max().item() > 100


def test_sample_timesteps_uniform_and_seeded():
    s = NoiseSchedule(DiffusionConfig(num_timesteps=10))
    t = s.sample_timesteps(5000, torch.Generator().manual_seed(1))
    assert t.min().item() == 0 and t.max().item() == 9 and t.dtype == torch.long
    assert torch.equal(t, s.sample_timesteps(5000, torch.Generator().manual_seed(1)))


def test_diffusion_config_validation():
    with pytest.raises(ValueError):
        DiffusionConfig(beta_start=0.03, beta_end=0.02)

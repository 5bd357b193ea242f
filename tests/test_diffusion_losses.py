"""Loss terms of Algorithm 1 against hand computations."""

import pytest
import torch

from fpsynth.diffusion.losses import identity_loss, landmark_loss, mse_eps

# Three embeddings with known cosines: f_hat = e1; f_id = e2 (cos 0); f_0 = e1 + e2 (cos 1/sqrt 2).
F_HAT = torch.tensor([[1.0, 0.0]])
F_ID = torch.tensor([[0.0, 3.0]])
F_0 = torch.tensor([[2.0, 2.0]])
TO_ID, TO_X0 = 1.0, 1.0 - 2**-0.5


def test_identity_loss_at_t0_uses_only_the_style_image():
    assert identity_loss(F_HAT, F_ID, F_0, torch.tensor([0]), 1000).item() == pytest.approx(TO_X0)


def test_identity_loss_at_T_uses_only_the_identity_image():
    assert identity_loss(F_HAT, F_ID, F_0, torch.tensor([1000]), 1000).item() == pytest.approx(TO_ID)


def test_identity_loss_in_between_and_batch_mean():
    f_hat, f_id, f_0 = F_HAT.repeat(2, 1), F_ID.repeat(2, 1), F_0.repeat(2, 1)
    t = torch.tensor([250, 500])
    expected = (0.25 * TO_ID + 0.75 * TO_X0 + 0.5 * TO_ID + 0.5 * TO_X0) / 2
    assert identity_loss(f_hat, f_id, f_0, t, 1000).item() == pytest.approx(expected)
    # scale-invariant in every embedding (cosine)
    assert identity_loss(7 * f_hat, 0.1 * f_id, 3 * f_0, t, 1000).item() == pytest.approx(expected)


def test_landmark_and_mse_losses():
    a = torch.zeros(2, 68, 2)
    b = torch.zeros(2, 68, 2)
    b[0, 0] = torch.tensor([0.3, 0.4])  # one point off by (0.3, 0.4): squared error 0.25 over 272 values
    assert landmark_loss(a, b).item() == pytest.approx(0.25 / 272)
    assert mse_eps(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)).item() == pytest.approx(1.0)

"""The loss terms of Algorithm 1, as functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse_eps(eps_hat: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """L_mse = mean over all elements of (eps - eps_hat)^2 (Eq. 2)."""
    return F.mse_loss(eps_hat, eps)


def identity_loss(
    f_hat: torch.Tensor, f_id: torch.Tensor, f_0: torch.Tensor, t: torch.Tensor, num_timesteps: int
) -> torch.Tensor:
    """DCFace's time-dependent identity loss.

    f_hat = f(x0_hat), f_id = f(x_id), f_0 = f(x0), each (B, E); t (B,). With w = t / T:
    mean_b [ w (1 - cos(f_hat, f_id)) + (1 - w) (1 - cos(f_hat, f_0)) ]. Near t = 0 the prediction is
    held to the style image's identity (it is nearly x0); near t = T, to the identity image's.
    This is Algorithm 1's -(t/T) CS1 - ((T-t)/T) CS2 plus the constant 1 (same gradients).
    """
    dtype = torch.promote_types(f_hat.dtype, torch.float32)  # half-precision features: compute in fp32
    f_hat, f_id, f_0 = f_hat.to(dtype), f_id.to(dtype), f_0.to(dtype)
    w = t.to(dtype) / num_timesteps  # (B,)
    to_id = 1 - F.cosine_similarity(f_hat, f_id, dim=-1)
    to_x0 = 1 - F.cosine_similarity(f_hat, f_0, dim=-1)
    return (w * to_id + (1 - w) * to_x0).mean()


def landmark_loss(lm_hat: torch.Tensor, lm_0: torch.Tensor) -> torch.Tensor:
    """L_lm = mean squared difference of D_LM's landmarks (B, 68, 2) of x0_hat and of x0."""
    return F.mse_loss(lm_hat, lm_0)

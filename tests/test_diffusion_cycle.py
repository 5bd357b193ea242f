"""Algorithm 1 on a toy network, against an independent NumPy computation of every step; and the
authors' variant of the second pass (``recompute_from_x0_hat``) against the same reference."""

import numpy as np
import pytest
import torch

from fpsynth.diffusion.config import DiffusionConfig, LossConfig, SecondPassConditions
from fpsynth.diffusion.cycle import cycle_losses
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import LossTargets

T = 10
BETAS = np.linspace(0.05, 0.3, T)
T_BATCH = np.array([2, 9])
RNG = np.random.default_rng(7)
X0 = RNG.uniform(-0.9, 0.9, (2, 1, 2, 3))
X_ID = RNG.uniform(-0.9, 0.9, (2, 1, 2, 3))
EPS = RNG.normal(size=(2, 1, 2, 3))
COND = np.array([0.3, -0.2]).reshape(2, 1, 1, 1)
W_ID = RNG.normal(size=(6, 3))  # toy recognition network f: flatten -> 3-d embedding
M_LM = RNG.normal(size=(6, 4))  # toy landmark detector D: flatten -> 2 points
A = 1.7
CFG = LossConfig(lambda_id=0.05, gamma_lm=1.0, landmark_scale=10.0, sigma=0.3)


# ----------------------------------------------------------------------------- NumPy reference


def ref_denoise(x, t, c, a=A):
    return np.tanh(a * x) + 0.5 * c + 0.01 * t.reshape(-1, 1, 1, 1)


def ref_condition(style):
    """Toy conditions of a style image (the authors' second pass recomputes them from x0_hat)."""
    return np.tanh(style.mean(axis=(1, 2, 3))).reshape(-1, 1, 1, 1)


def ref_losses(a=A, cfg=CFG, recompute=False):
    ab = np.cumprod(1 - BETAS)[T_BATCH].reshape(-1, 1, 1, 1)
    f = lambda x: x.reshape(2, -1) @ W_ID  # noqa: E731
    d = lambda x: (x.reshape(2, -1) @ M_LM).reshape(2, 2, 2)  # noqa: E731

    def cos(u, v):
        return (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)

    def pass_losses(eps_hat, x0_hat, style):
        # L_id: weight t/T towards the identity image, 1 - t/T towards the pass's style image
        w = T_BATCH / T
        fh = f(x0_hat)
        l_id = np.mean(w * (1 - cos(fh, f(X_ID))) + (1 - w) * (1 - cos(fh, f(style))))
        l_mse = np.mean((eps_hat - EPS) ** 2)
        l_lm = np.mean((d(x0_hat) - d(X0)) ** 2)  # always the ORIGINAL x0's landmarks
        return l_mse + cfg.lambda_id * l_id + cfg.gamma_lm * cfg.landmark_scale * l_lm, l_mse, l_id, l_lm

    x_t = np.sqrt(ab) * X0 + np.sqrt(1 - ab) * EPS
    eps_hat = ref_denoise(x_t, T_BATCH, COND, a)
    x0_hat = np.clip((x_t - np.sqrt(1 - ab) * eps_hat) / np.sqrt(ab), -1, 1)
    first = pass_losses(eps_hat, x0_hat, X0)
    x_t2 = np.sqrt(ab) * x0_hat + np.sqrt(1 - ab) * EPS  # same eps, same t
    # Algorithm 1: the same conditions, L'_id towards x0; the authors: style image := x0_hat
    style2 = x0_hat if recompute else X0
    cond2 = ref_condition(x0_hat) if recompute else COND
    eps_hat2 = ref_denoise(x_t2, T_BATCH, cond2, a)
    x0_hat2 = np.clip((x_t - np.sqrt(1 - ab) * eps_hat2) / np.sqrt(ab), -1, 1)  # FIRST pass's x_t
    second = pass_losses(eps_hat2, x0_hat2, style2)
    return first, second, first[0] + cfg.sigma * second[0], x0_hat


# ----------------------------------------------------------------------------- fpsynth


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def run(cfg=CFG, a=None, recondition=None):
    a = _t(A) if a is None else a
    f = lambda x: x.flatten(1) @ _t(W_ID)  # noqa: E731
    d = lambda x: (x.flatten(1) @ _t(M_LM)).view(-1, 2, 2)  # noqa: E731
    x0, x_id = _t(X0), _t(X_ID)
    targets = LossTargets(id_of_xid=f(x_id), id_of_x0=f(x0), landmarks_of_x0=d(x0))
    schedule = NoiseSchedule(DiffusionConfig(num_timesteps=T, beta_start=0.05, beta_end=0.3))
    calls = []

    def denoise(x, t, c):
        calls.append(c)
        return torch.tanh(a * x) + 0.5 * c + 0.01 * t.view(-1, 1, 1, 1).double()

    out = cycle_losses(denoise, f, d, schedule, cfg, x0, _t(COND), targets, torch.tensor(T_BATCH), _t(EPS), recondition)
    return out, calls


def test_cycle_matches_hand_reference():
    (first, mse, l_id, l_lm), (second, mse2, l_id2, l_lm2), total, x0_hat = ref_losses()
    assert np.abs(x0_hat).max() == 1.0  # the t = 9 sample is clipped: the test covers Eq. 7's clip
    out, calls = run()
    assert out.total.item() == pytest.approx(total, rel=1e-12)
    assert (out.first, out.mse, out.identity, out.landmark) == pytest.approx((first, mse, l_id, l_lm), rel=1e-12)
    assert (out.second, out.mse2, out.identity2, out.landmark2) == pytest.approx(
        (second, mse2, l_id2, l_lm2), rel=1e-12
    )
    assert len(calls) == 2 and calls[0] is calls[1]  # Algorithm 1: the second pass keeps the conditions
    assert out.as_dict()["loss"] == pytest.approx(total)


def test_cycle_off_is_the_first_pass_only():
    (first, mse, l_id, l_lm), _, _, _ = ref_losses()
    out, calls = run(LossConfig(cycle=False))
    assert len(calls) == 1
    assert out.total.item() == pytest.approx(first, rel=1e-12)
    assert out.second is None and out.mse2 is None
    assert set(out.as_dict()) == {"loss", "first", "mse", "identity", "landmark"}


RECOMPUTE = LossConfig(second_pass_conditions=SecondPassConditions.RECOMPUTE_FROM_X0_HAT)


def recondition(x0_hat):
    return torch.tanh(x0_hat.mean(dim=(1, 2, 3))).view(-1, 1, 1, 1)


def test_authors_second_pass_matches_the_hand_reference():
    """Style image := x0_hat: conditions recomputed from it, L'_id towards f(x_id) and f(x0_hat),
    L'_lm towards the original x0 (the authors' trainer and consistency losses)."""
    first, (second, mse2, l_id2, l_lm2), total, _ = ref_losses(cfg=RECOMPUTE, recompute=True)
    out, calls = run(RECOMPUTE, recondition=recondition)
    assert out.total.item() == pytest.approx(total, rel=1e-12)
    assert (out.first, out.mse, out.identity, out.landmark) == pytest.approx(first, rel=1e-12)
    assert (out.second, out.mse2, out.identity2, out.landmark2) == pytest.approx(
        (second, mse2, l_id2, l_lm2), rel=1e-12
    )
    assert calls[0] is not calls[1]
    # the reference tells the variants apart: Algorithm 1's second pass gives other values
    (_, _, l_id2_alg1, _) = ref_losses(cfg=RECOMPUTE)[1]
    assert abs(l_id2 - l_id2_alg1) > 1e-3
    with pytest.raises(ValueError, match="recondition"):
        run(RECOMPUTE)


def test_authors_second_pass_keeps_the_gradient_through_x0_hat():
    # Nothing detached: the recomputed conditions and f(x0_hat) carry the first prediction's gradient.
    a = _t(A).requires_grad_(True)
    out, _ = run(RECOMPUTE, a=a, recondition=recondition)
    out.total.backward()
    h = 1e-6
    numeric = (
        ref_losses(a=A + h, cfg=RECOMPUTE, recompute=True)[2] - ref_losses(a=A - h, cfg=RECOMPUTE, recompute=True)[2]
    ) / (2 * h)
    assert a.grad.item() == pytest.approx(numeric, rel=1e-6)
    a_detached = _t(A).requires_grad_(True)  # with the conditions detached the gradient differs
    out, _ = run(RECOMPUTE, a=a_detached, recondition=lambda x: recondition(x.detach()))
    out.total.backward()
    assert a_detached.grad.item() != pytest.approx(numeric, rel=1e-4)


def test_gradient_flows_through_both_passes_and_x0_hat():
    # d total / d a from autograd equals the finite difference of the reference: nothing is detached.
    a = _t(A).requires_grad_(True)
    out, _ = run(a=a)
    out.total.backward()
    h = 1e-6
    numeric = (ref_losses(a=A + h)[2] - ref_losses(a=A - h)[2]) / (2 * h)
    assert a.grad.item() == pytest.approx(numeric, rel=1e-6)


def test_no_landmark_network_means_no_landmark_term():
    f = lambda x: x.flatten(1) @ _t(W_ID)  # noqa: E731
    targets = LossTargets(id_of_xid=f(_t(X_ID)), id_of_x0=f(_t(X0)), landmarks_of_x0=None)
    schedule = NoiseSchedule(DiffusionConfig(num_timesteps=T, beta_start=0.05, beta_end=0.3))
    out = cycle_losses(
        lambda x, t, c: torch.tanh(A * x), f, None, schedule, CFG, _t(X0), None, targets, torch.tensor(T_BATCH), _t(EPS)
    )
    assert out.landmark is None and out.landmark2 is None
    assert out.first == pytest.approx(out.mse + CFG.lambda_id * out.identity)

"""Through the real loop's optimizer: every trainable module learns, no frozen network changes, and
the EMA is taken when ``train.ema.timing`` says."""

from __future__ import annotations

import pytest
import torch

from fpsynth.pipeline import load_pipeline
from fpsynth.train.data import Batching
from fpsynth.train.distributed import DistContext
from fpsynth.train.loop import build_trainer
from helpers.train import MICRO


@pytest.mark.parametrize("variant", ["ccfexp", "dcface"])
@pytest.mark.slow
def test_optimizer_holds_exactly_the_trainable_parameters_and_all_of_them_learn(variant):
    cfg = load_pipeline("tiny", [*MICRO, f"train.model.variant={variant}"])
    trainer = build_trainer(cfg.train, cfg.weights, cfg.seed, DistContext(), resume=None)
    model = trainer.model
    expected = {
        "unet",
        "id_encoder",
        "fusion",
        "context_proj",
        *(("exp_adapter",) if variant == "ccfexp" else ("style_encoder",)),
    }
    assert set(model.trainable_modules()) == expected
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    trainable = {id(p) for m in model.trainable_modules().values() for p in m.parameters()}
    assert in_optimizer == trainable
    frozen = {name: m for name, m in model.frozen_modules().items()}
    assert set(frozen) == ({"id_net", "face_net", "landmark_net"} if variant == "ccfexp" else {"id_net"})
    assert all(id(p) not in in_optimizer and not p.requires_grad for m in frozen.values() for p in m.parameters())
    frozen_before = {f"{n}.{k}": v.clone() for n, m in frozen.items() for k, v in m.state_dict().items()}

    g = torch.Generator().manual_seed(0)
    x0, x_id = torch.rand(2, 2, 3, 112, 112, generator=g) * 2 - 1
    batching = Batching(batch_size=2, world_size=1, accum=1)
    # Step 1 reaches only the U-Net: its attention outputs start at zero (ADM's zero_module), so
    # the condition tokens' gradient is zero until they have moved; steps 2-3 reach the encoders.
    for step in range(3):
        t = torch.tensor([100 + 400 * step, 700])
        eps = torch.randn(2, 3, 112, 112, generator=g)
        values = trainer.train_step(batching, x0, x_id, t, eps, [step], lr=1e-4, grad_clip=1.0)
        assert values["grad_norm"] > 0
    # AdamW's first moment is a running mean of the gradients: non-zero iff a gradient arrived
    state = trainer.optimizer.state
    for module_name, module in model.trainable_modules().items():
        silent = [n for n, p in module.named_parameters() if not state[p]["exp_avg"].abs().sum() > 0]
        assert not silent, f"{module_name}: no gradient reached {silent}"
    after = {f"{n}.{k}": v for n, m in frozen.items() for k, v in m.state_dict().items()}
    assert all(torch.equal(frozen_before[k], after[k]) for k in after)  # weights and BatchNorm statistics
    assert all(m.training is False for m in frozen.values())


@pytest.mark.parametrize("timing", ["before_step", "after_step"])
def test_ema_timing_in_the_real_loop(timing, one_thread):
    """before_step (the authors'): update n averages the weights optimizer step n starts from, with
    decay d(n - 1); after_step: the weights step n made, with d(n). Two steps tell them apart."""
    cfg = load_pipeline("tiny", [*MICRO, f"train.ema.timing={timing}"])
    trainer = build_trainer(cfg.train, cfg.weights, cfg.seed, DistContext(), resume=None)
    unet = trainer.model.unet
    names = [n for n, _ in unet.named_parameters()]
    weights = [{n: p.detach().clone() for n, p in unet.named_parameters()}]  # w_0, then after each step
    g = torch.Generator().manual_seed(0)
    x0, x_id = torch.rand(2, 2, 3, 112, 112, generator=g) * 2 - 1
    for step in range(2):
        trainer.train_step(
            Batching(batch_size=2, world_size=1, accum=1),
            x0,
            x_id,
            torch.tensor([300, 800]),
            torch.randn(2, 3, 112, 112, generator=g),
            [step],
            lr=1e-3,
            grad_clip=0.0,
        )
        weights.append({n: p.detach().clone() for n, p in unet.named_parameters()})
    d1 = 1 - 2**-0.75  # d(1) = 1 - (1 + 1)^-0.75; d(0) = 0
    if timing == "before_step":  # u0 = w_0 (d 0), u1 = w_1 (d(0) = 0): the newest weights w_2 not yet in
        expected = weights[1]
    else:  # u0 = w_1 (d(0) = 0), u1 = d(1) w_1 + (1 - d(1)) w_2
        expected = {n: d1 * weights[1][n] + (1 - d1) * weights[2][n] for n in names}
    moved = [n for n in names if not torch.equal(weights[2][n], weights[1][n])]
    assert len(moved) > len(names) // 2 and trainer.ema.updates == 2
    for n in names:
        torch.testing.assert_close(trainer.ema.shadow[n], expected[n], rtol=1e-6, atol=1e-7)

"""The training loop: Algorithm 1 over the prepared pairs, with AdamW, EMA, autocast and checkpoints.

    summary = train(cfg, out_dir, prepare_dir, ctx, resume=None)   # or resume=checkpoint folder

One optimizer step: the global batch's pairs, timesteps and noise (``fpsynth.train.data``), this
process's micro-batches through ``CycleObjective`` (frozen features once per micro-batch, both
U-Net passes in one forward, wrapped in DistributedDataParallel under torchrun), gradients
averaged, unscaled (fp16) and clipped (when ``optim.grad_clip`` asks), AdamW over the trainable
parameters only, and the EMA of the U-Net, just before the optimizer step (the authors' timing) or
just after it (``ema.timing``). Everything a resumed run needs is in the checkpoint: weights, EMA,
optimizer, loss scaler, the window of the log, and the step, from which the data order, the noise and the
dropout masks follow (each rank's global RNG state is stored and restored too, though the loop
draws nothing from it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from fpsynth.data.dataset import PairDataset
from fpsynth.device import Amp
from fpsynth.diffusion.objective import CycleObjective
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.errors import FpsynthError
from fpsynth.models.ccfexp import CCFExp, build_model
from fpsynth.seeds import global_torch_rng
from fpsynth.stages import TRAIN
from fpsynth.train import checkpoint as ckpt
from fpsynth.train.config import TrainConfig
from fpsynth.train.data import Batching, StepBatches, dropout_seeds, pair_loader, step_noise, steps_per_epoch
from fpsynth.train.distributed import DistContext, gather_objects, mean_over_ranks
from fpsynth.train.ema import EMA
from fpsynth.train.grids import held_out_pairs, sample_grid, write_png
from fpsynth.train.init import init_model_from, resolve_init_from
from fpsynth.train.logs import LogWindow, TrainLogger
from fpsynth.weights import LoadRecord, WeightsConfig

if TYPE_CHECKING:  # pipeline.py sits above the stage packages; train() records the whole config
    from fpsynth.pipeline import PipelineConfig


class TrainingDiverged(FpsynthError, RuntimeError):
    """The loss became NaN or infinite."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then constant."""
    warm = cfg.optim.warmup_steps
    return cfg.optim.lr * (min(1.0, (step + 1) / warm) if warm else 1.0)


def parameter_names(model: CCFExp) -> list[str]:
    """Name of each of ``model.trainable_parameters()``, in the optimizer's order."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for p in model.trainable_parameters()]


def make_optimizer(model: CCFExp, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    o = cfg.optim
    return torch.optim.AdamW(
        model.trainable_parameters(),
        lr=o.lr,
        betas=o.betas,
        eps=o.eps,
        weight_decay=o.weight_decay,
        fused=device.type == "cuda",
    )


@dataclasses.dataclass
class Trainer:
    """The live objects of a run (one per process)."""

    model: CCFExp
    records: list[LoadRecord]
    ema: EMA
    optimizer: torch.optim.AdamW
    scaler: torch.amp.GradScaler
    objective: torch.nn.Module  # CycleObjective, or DistributedDataParallel around it
    amp: Amp
    step: int  # optimizer steps done
    window: LogWindow

    def train_step(
        self,
        batching: Batching,
        x0: torch.Tensor,
        x_id: torch.Tensor,
        t: torch.Tensor,
        eps: torch.Tensor,
        seeds: list[int],
        lr: float,
        grad_clip: float,
    ) -> dict[str, float]:
        """One optimizer step over this process's micro-batches; returns its logged values.

        ``seeds``: one per micro-batch, for its dropout masks (``fpsynth.train.data.dropout_seeds``);
        the draws happen inside ``fork_rng``, so the process's global RNG is left as it was.
        """
        values: dict[str, float] = {}
        accum, micro = batching.accum, batching.micro
        devices = [x0.device] if x0.device.type == "cuda" else []
        for k in range(accum):
            part = slice(k * micro, (k + 1) * micro)
            last = k == accum - 1
            sync = (
                self.objective.no_sync()
                if isinstance(self.objective, DistributedDataParallel) and not last
                else contextlib.nullcontext()
            )
            with sync, global_torch_rng(seeds[k], "train-dropout-mask", devices=devices):
                with self.amp.context():
                    losses = self.objective(x0[part], x_id[part], t[part], eps[part])
                self.scaler.scale(losses.total / accum).backward()
            for name, value in losses.as_dict().items():
                values[name] = values.get(name, 0.0) + value / accum
        params = self.model.trainable_parameters()
        self.scaler.unscale_(self.optimizer)
        if grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.ema.before_step:  # the authors': the average of the weights this step starts from
            self.ema.update(self.model.unet)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if not self.ema.before_step:
            self.ema.update(self.model.unet)
        self.step += 1
        values["grad_norm"] = float(norm)
        return values


def build_trainer(tc: TrainConfig, weights: WeightsConfig, seed: int, ctx: DistContext, resume: Path | None) -> Trainer:
    """Model, EMA, optimizer and scaler: fresh (pretrained ``weights``, init seeded by ``seed``) or
    from a checkpoint."""
    device = ctx.device
    amp = Amp.resolve(tc.precision, device)
    state: dict[str, Any] = {}
    if resume is None:
        with global_torch_rng(seed, "train-init"):  # seeded init of the random parts; global RNG untouched
            model, records = build_model(tc.model, weights)
        init = resolve_init_from(tc.init_from)
        if init is not None:
            record = init_model_from(model, init)
            if ctx.is_main:
                for line in record.lines():
                    Console(stderr=True).print(line, highlight=False, markup=False)
            records.append(LoadRecord(f"init_from-{record.kind}", record.path, record.sha256, False))
        _check_finite(model, records)
        model = model.to(device)
    else:
        state = ckpt.read_state(resume)
        model, _ = ckpt.rebuild_model(resume, state, ema=False, device=device)
        records = [LoadRecord(**r) for r in state["load_records"]]
    model.train()
    ema = EMA(model.unet, tc.ema)
    optimizer = make_optimizer(model, tc, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp.needs_scaler)
    objective: torch.nn.Module = CycleObjective(model, NoiseSchedule(tc.diffusion), tc.loss)
    window = LogWindow()
    if resume is not None:
        shadow, _ = ckpt.read_tensors(resume, ckpt.EMA_FILE, state, device)
        ema.load_state_dict({k[len("unet.") :]: v for k, v in shadow.items()}, state["ema_updates"])
        opt_state, names = ckpt.read_optimizer(resume, state)
        if names != parameter_names(model):
            raise ckpt.CheckpointError(f"{resume}: the optimizer state belongs to another parameter list")
        optimizer.load_state_dict(opt_state)
        if amp.needs_scaler and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        window = LogWindow(**state["log_window"])
        _restore_rng(state["rng"], ctx)
    if ctx.distributed:
        objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    return Trainer(model, records, ema, optimizer, scaler, objective, amp, int(state.get("step", 0)), window)


def _check_finite(model: CCFExp, records: list[LoadRecord]) -> None:
    """Weights with NaN or inf would make the first loss NaN, which looks like a learning-rate
    problem; name the tensors and the files they came from instead."""
    bad = [
        name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        files = ", ".join(f"{r.name}: {r.path}" for r in records if r.path) or "no file (random init)"
        raise TrainingDiverged(
            f"train: {len(bad)} weight tensor(s) hold NaN or inf before training (e.g. {', '.join(bad[:4])}); "
            f"the weights came from {files}: replace the damaged file"
        )


def _rng_state(device: torch.device) -> dict[str, str | None]:
    cuda = ckpt.encode_bytes(torch.cuda.get_rng_state(device)) if device.type == "cuda" else None
    return {"torch_cpu": ckpt.encode_bytes(torch.get_rng_state()), "torch_cuda": cuda}


def _restore_rng(saved: dict[str, Any], ctx: DistContext) -> None:
    """The global RNG states each rank had (the loop draws nothing from them: see fpsynth.train.data)."""
    per_rank = saved["per_rank"]
    if ctx.rank >= len(per_rank):  # more processes than when saved: this rank's state is its own
        return
    mine = per_rank[ctx.rank]
    torch.set_rng_state(ckpt.decode_bytes(mine["torch_cpu"]))
    if mine["torch_cuda"] is not None and ctx.device.type == "cuda":
        torch.cuda.set_rng_state(ckpt.decode_bytes(mine["torch_cuda"]), ctx.device)


def save(trainer: Trainer, cfg: PipelineConfig, out_dir: Path, ctx: DistContext, run: dict[str, Any]) -> Path | None:
    """Checkpoint after ``trainer.step`` steps (collective: every rank hands in its RNG state)."""
    rng = gather_objects(ctx, _rng_state(ctx.device))
    if not ctx.is_main:
        return None
    epoch, in_epoch = divmod(trainer.step, run["steps_per_epoch"])
    state = {
        **ckpt.describe_run(cfg, trainer.records),
        **run,
        "epoch": epoch,
        "batch_in_epoch": in_epoch,
        "images_seen": trainer.step * cfg.train.data.batch_size,
        "world_size": ctx.world_size,
        "precision": trainer.amp.name,
        "ema_updates": trainer.ema.updates,
        "rng": {
            "per_rank": rng,
            "seed": cfg.seed,
            "draws": "derived from (seed, stream, step, micro-batch): fpsynth.train.data",
        },
        "scaler": trainer.scaler.state_dict() if trainer.amp.needs_scaler else None,
        "log_window": trainer.window.state(),
    }
    payload = ckpt.CheckpointPayload(
        trainer.model.state_dict(),
        trainer.ema.state_dict(),
        trainer.optimizer.state_dict(),
        parameter_names(trainer.model),
        state,
    )
    return ckpt.save_checkpoint(out_dir / ckpt.CHECKPOINTS, trainer.step, payload, cfg.train.checkpoint.keep_last)


def _due(done: int, every: int, total: int) -> bool:
    return done == total or (every > 0 and done % every == 0)


def train(
    cfg: PipelineConfig,
    out_dir: Path,
    prepare_dir: Path,
    ctx: DistContext,
    *,
    resume: Path | None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train until the configured duration; resume from ``resume`` (a checkpoint folder) if given.

    ``run`` is stored in every checkpoint's state (the stage puts the run key there).
    """
    tc: TrainConfig = cfg.train
    pairs = PairDataset(prepare_dir, split=tc.data.split)
    batching = Batching(tc.data.batch_size, ctx.world_size, tc.data.grad_accum)
    per_epoch = steps_per_epoch(len(pairs), tc.data.batch_size)
    total = tc.max_steps if tc.max_steps is not None else tc.epochs * per_epoch
    trainer = build_trainer(tc, cfg.weights, cfg.seed, ctx, resume)
    start = trainer.step
    run = {**(run or {}), "steps_per_epoch": per_epoch, "total_steps": total, "num_pairs": len(pairs)}
    logger = TrainLogger(
        out_dir,
        start_step=start,
        total_steps=total,
        resumed=resume is not None,
        every=tc.log.every,
        tensorboard=tc.log.tensorboard,
        progress=tc.log.progress,
        enabled=ctx.is_main,
    )
    logger.note(
        f"train: {len(pairs)} pairs, {per_epoch} steps/epoch, steps {start} -> {total}, batch "
        f"{batching.batch_size} = {ctx.world_size} process(es) x {batching.accum} x {batching.micro}, "
        f"{trainer.amp.name} on {ctx.device}" + (f", resumed from {resume}" if resume else "")
    )
    held = held_out_pairs(prepare_dir, tc.log.sample_pairs, cfg.seed) if ctx.is_main and tc.log.sample_pairs else None
    schedule = NoiseSchedule(tc.diffusion)
    sampler = StepBatches(len(pairs), batching, cfg.seed, start, total, ctx.rank)
    loader = pair_loader(pairs, sampler, tc.data.num_workers, ctx.device.type == "cuda", cfg.seed)
    share = batching.process_slice(ctx.rank)
    last_checkpoint: Path | None = resume
    try:
        for step, (x0, x_id) in zip(range(start, total), loader):
            t, eps = step_noise(cfg.seed, step, batching.batch_size, schedule.num_timesteps)
            dev = ctx.device
            values = trainer.train_step(
                batching,
                x0.to(dev, non_blocking=True),
                x_id.to(dev, non_blocking=True),
                t[share].to(dev, non_blocking=True),
                eps[share].to(dev, non_blocking=True),
                dropout_seeds(cfg.seed, step, batching, ctx.rank),
                lr_at(step, tc),
                tc.optim.grad_clip,
            )
            values = _mean_over_ranks(ctx, values)
            if not math.isfinite(values["loss"]) and not trainer.amp.needs_scaler:
                raise TrainingDiverged(
                    f"train: the loss is {values['loss']} at step {step + 1}; the last checkpoint is kept. "
                    f"Lower train.optim.lr or raise train.optim.warmup_steps, then `{TRAIN.command} --force`"
                )
            trainer.window.add(values)
            done = trainer.step
            logger.step(done, values["loss"])
            if _due(done, tc.log.every, total):
                logger.row(
                    done, round(done / per_epoch, 4), trainer.window.means(), lr_at(step, tc), batching.batch_size
                )
                if done % tc.log.every == 0:  # a run's last, partial window stays open for its resumption
                    trainer.window.reset()
            if held is not None and _due(done, tc.log.sample_every, total):
                grid = sample_grid(
                    trainer.model, trainer.ema, schedule, tc.sampler, held, cfg.seed, trainer.amp.context()
                )
                write_png(out_dir / "samples" / f"step-{done:08d}.png", grid)
                logger.image(f"samples/{held.split}", grid, done)
            if _due(done, tc.checkpoint.every, total):
                last_checkpoint = save(trainer, cfg, out_dir, ctx, run) or last_checkpoint
    finally:
        logger.close()
    return {
        "steps": trainer.step,
        "start_step": start,
        "total_steps": total,
        "epochs": round(trainer.step / per_epoch, 4),
        "resumed_from": str(resume) if resume else None,
        "checkpoint": str(last_checkpoint) if last_checkpoint else None,
        "last_log": logger.last_row,
        "precision": trainer.amp.name,
        "world_size": ctx.world_size,
    }


def _mean_over_ranks(ctx: DistContext, values: dict[str, float]) -> dict[str, float]:
    if not ctx.distributed:
        return values
    keys = sorted(values)
    mean = mean_over_ranks(ctx, torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device))
    return dict(zip(keys, mean.tolist()))

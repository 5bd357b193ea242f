"""Several processes through torchrun: process group, devices, and the few collectives training needs.

    torchrun --standalone --nproc_per_node 4 -m fpsynth.cli train --config paper -w WORKSPACE

Each process trains a share of every global batch (``train.data.batch_size`` is the global batch,
split evenly over the processes) inside DistributedDataParallel; gradients are averaged across
processes in the backward pass. Rank 0 alone writes logs, sample grids, checkpoints and the stage
record; every rank reads the same checkpoint to resume. Without torchrun's environment (RANK,
WORLD_SIZE, LOCAL_RANK) this is a single process and nothing here talks to anyone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.distributed as dist

from fpsynth.device import Launch, resolve_device


@dataclasses.dataclass(frozen=True)
class DistContext(Launch):
    """This process's :class:`~fpsynth.device.Launch` (rank, world size, local rank) and its device."""

    device: torch.device = torch.device("cpu")


def setup(device_setting: str = "auto") -> DistContext:
    """Join torchrun's process group when launched by it (NCCL on GPUs, gloo on CPUs)."""
    launch = Launch.from_env()
    device = resolve_device(device_setting, launch.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if launch.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(launch.rank, launch.world_size, launch.local_rank, device)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a decision only rank 0 may take, such as what to resume)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of ``values`` over the ranks (every rank holds a tensor of the same shape)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= ctx.world_size
    return values


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()

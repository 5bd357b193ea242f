"""Batched CCFExp sampling on one device: (identity images, style images, seeds) -> images.

The report stage uses :class:`Synthesizer` as well (aFID transfers expressions there and back),
so the numerics of a generated dataset and of an evaluation are the same code.

Precision and layout. On CUDA the networks run under bf16 autocast with channels-last tensors;
the sampler's own arithmetic (x0 prediction, the DDIM update) stays fp32 because eps is cast back
to fp32 before it. On CPU everything is fp32 and contiguous.

Determinism. Every item's noise comes from its own generator seeded with the item's seed
(``fpsynth.diffusion.item_generators``). On CPU, fp32 results of an item do not depend on the
batch it is sampled in (checked by the tests: batch 1 and batch 5 give the same bytes). On CUDA
the noise is drawn by CUDA generators (a different stream from CPU ones), and cuDNN/cuBLAS choose
kernels by batch shape, so an item is bit-exact only for the same batch size, GPU model and
software versions; a different batch size gives a visually identical image that may differ in a
few pixel values.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch

from fpsynth.diffusion.config import SamplerConfig
from fpsynth.diffusion.samplers import item_generators, sample
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.generate.config import Precision, RuntimeConfig
from fpsynth.models.ccfexp import CCFExp

IMAGE_SHAPE = (3, 112, 112)
_PROBE_BATCHES = (4, 8)  # two probe sizes: their difference removes the fixed memory overhead
_MEMORY_SHARE = 0.7  # of the free GPU memory that "auto" may fill


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda:LOCAL_RANK (torchrun) when CUDA is there, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


class Synthesizer:
    """A CCFExp model, its noise schedule and a sampler, placed on one device."""

    def __init__(self, model: CCFExp, schedule: NoiseSchedule, sampler: SamplerConfig, device: torch.device,
                 runtime: RuntimeConfig = RuntimeConfig()) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.autocast = self.cuda and runtime.precision is Precision.BF16
        self.memory_format = torch.channels_last if self.cuda and runtime.channels_last else torch.contiguous_format
        self.model = model.to(device).eval().to(memory_format=self.memory_format)
        self.schedule = schedule
        self.sampler = sampler
        self.runtime = runtime

    @property
    def precision(self) -> str:
        return Precision.BF16.value if self.autocast else Precision.FP32.value

    def _amp(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()

    @torch.no_grad()
    def __call__(self, x_id: torch.Tensor, x_style: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """x_id, x_style (B, 3, 112, 112) RGB [-1, 1] on any device, seeds (B,) -> (B, 3, 112, 112) [-1, 1] fp32."""
        x_id = x_id.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        x_style = x_style.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with self._amp():
            cond = self.model.conditions(x_id, self.model.style_features(x_style))  # once per batch

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with self._amp():
                eps = self.model(x.contiguous(memory_format=self.memory_format), t, cond)
            return eps.float()

        generators = item_generators(seeds, self.device)
        return sample(eps_fn, self.schedule, self.sampler, generators, IMAGE_SHAPE, self.device)

    def batch_size(self) -> int:
        """The runtime's batch size; "auto": cpu_batch_size on CPU, a memory probe on CUDA."""
        rt = self.runtime
        if isinstance(rt.batch_size, int):
            return rt.batch_size
        if not self.cuda:
            return rt.cpu_batch_size
        peaks = [self._probe_peak(b) for b in _PROBE_BATCHES]
        per_item = max((peaks[1] - peaks[0]) / (_PROBE_BATCHES[1] - _PROBE_BATCHES[0]), 1.0)
        free, _ = torch.cuda.mem_get_info(self.device)
        fit = int(free * _MEMORY_SHARE / per_item)
        return max(1, min(rt.max_batch_size, fit // 8 * 8 or fit))

    def _probe_peak(self, batch: int) -> int:
        """Peak bytes above the resting allocation of the conditions and one U-Net call at ``batch``."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        x = torch.zeros(batch, *IMAGE_SHAPE, device=self.device).contiguous(memory_format=self.memory_format)
        t = torch.full((batch,), self.schedule.num_timesteps - 1, device=self.device, dtype=torch.long)
        with torch.no_grad(), self._amp():
            cond = self.model.conditions(x, self.model.style_features(x))
            self.model(x, t, cond)
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - base
        del x, t, cond
        torch.cuda.empty_cache()
        return peak

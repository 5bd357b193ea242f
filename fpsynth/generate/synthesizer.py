"""Batched CCFExp sampling on one device: (identity images, style images, seeds) -> images.

The report stage uses :class:`Synthesizer` as well (aFID transfers expressions there and back),
so the numerics of a generated dataset and of an evaluation are the same code.

Precision and layout. On CUDA the networks run under bf16 autocast with channels-last tensors;
the sampler's own arithmetic (x0 prediction, the DDIM update) stays fp32 because eps is cast back
to fp32 before it. On CPU everything is fp32 and contiguous.

Compilation. On CUDA the denoiser is ``torch.compile``d (``runtime.compile``): the eager paper
U-Net reached 990 forwards/s (77 TFLOP/s, batch 512) on one H200, the compiled one 3500 (271
TFLOP/s), for about 40 s of compiling once per process. A compiled graph is specialised to one
batch shape, so short batches (the end of a shard) are padded to the full batch with copies of
their last item, whose images are dropped: every item is computed in a batch of the same size.

Determinism. Every item's noise comes from its own generator seeded with the item's seed
(``fpsynth.diffusion.samplers.item_generators``). On CPU, fp32 results of an item do not depend on the
batch it is sampled in (checked by the tests: batch 1 and batch 5 give the same bytes). On CUDA
the noise is drawn by CUDA generators (a different stream from CPU ones), and cuDNN/cuBLAS may
choose kernels by batch shape: an item is guaranteed bit-exact only for the same batch size, GPU
model and software versions. (Observed on one H200, paper model, bf16, eager: batches of 8, 4 and 1
gave identical bytes, and so did the same batch twice; this is not guaranteed.)
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from fpsynth.device import Amp
from fpsynth.diffusion.config import SamplerConfig
from fpsynth.diffusion.samplers import IMAGE_SHAPE, item_generators, sample_conditioned
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.generate.config import Overlap, RuntimeConfig
from fpsynth.models.ccfexp import CCFExp

_PROBE_BATCHES = (4, 8)  # two probe sizes: their difference removes the fixed memory overhead
_MEMORY_SHARE = 0.7  # of the free GPU memory that "auto" may fill
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its compiled denoiser


def compiled(model: CCFExp) -> torch.nn.Module:
    """``torch.compile(model)``, made once per model and process (a second Synthesizer re-uses it)."""
    if model not in _COMPILED:
        _COMPILED[model] = torch.compile(model, dynamic=False)
    return _COMPILED[model]


def pad_batch(
    x_id: torch.Tensor, x_style: torch.Tensor, seeds: Sequence[int], size: int
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """A batch of B <= size items padded to ``size`` with copies of its last item."""
    extra = size - len(seeds)
    if extra <= 0:
        return x_id, x_style, list(seeds)

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x[-1:].expand(extra, *x.shape[1:])])

    return pad(x_id), pad(x_style), [*seeds, *[seeds[-1]] * extra]


class Synthesizer:
    """A CCFExp model, its noise schedule and a sampler, placed on one device."""

    def __init__(
        self,
        model: CCFExp,
        schedule: NoiseSchedule,
        sampler: SamplerConfig,
        device: torch.device,
        runtime: RuntimeConfig = RuntimeConfig(),
    ) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.amp = Amp.resolve(runtime.precision, device, on_cpu=False)  # a CPU samples in fp32
        self.memory_format = torch.channels_last if self.cuda and runtime.channels_last else torch.contiguous_format
        # nn.Module.to takes memory_format (4-D parameters and buffers); torch's stubs leave it out
        self.model = model.to(device).eval().to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.compiled = self.cuda and runtime.compile
        self.network = compiled(self.model) if self.compiled else self.model  # the denoiser the sampler calls
        self.schedule = schedule
        self.sampler = sampler
        self.runtime = runtime
        self._batch: int | None = None

    @property
    def background_io(self) -> bool:
        """Decode and write in threads beside the sampling (``runtime.overlap``; "auto": on CUDA only)."""
        overlap = Overlap(self.runtime.overlap)
        return self.cuda if overlap is Overlap.AUTO else overlap is Overlap.THREADS

    @property
    def autocast(self) -> bool:
        return self.amp.dtype is not None

    @property
    def precision(self) -> str:
        """ "bf16" or "fp32": what the metadata records for each image."""
        return self.amp.name

    @torch.no_grad()
    def __call__(self, x_id: torch.Tensor, x_style: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """x_id, x_style (B, 3, 112, 112) RGB [-1, 1] on any device, seeds (B,) -> (B, 3, 112, 112) [-1, 1] fp32."""
        n = len(seeds)
        if self.compiled:  # one batch shape for the compiled graph
            x_id, x_style, seeds = pad_batch(x_id, x_style, seeds, self.batch_size())
        return sample_conditioned(
            self.model,
            x_id,
            x_style,
            item_generators(seeds, self.device),
            self.schedule,
            self.sampler,
            device=self.device,
            network=self.network,
            amp=self.amp.context,
            memory_format=self.memory_format,
        )[:n]

    def batch_size(self, divides: int | None = None) -> int:
        """The runtime's batch size, fixed at the first call; "auto": cpu_batch_size on CPU, a memory probe on CUDA.

        With ``divides`` (the shard size), "auto" prefers the largest divisor of it down to half of
        what fits, so that shards split into full batches (no padding when compiled).
        """
        if self._batch is None:
            self._batch = self._choose_batch(divides)
        return self._batch

    def _choose_batch(self, divides: int | None) -> int:
        rt = self.runtime
        if isinstance(rt.batch_size, int):
            return rt.batch_size
        if not self.cuda:
            return rt.cpu_batch_size
        peaks = [self._probe_peak(b) for b in _PROBE_BATCHES]
        per_item = max((peaks[1] - peaks[0]) / (_PROBE_BATCHES[1] - _PROBE_BATCHES[0]), 1.0)
        free, _ = torch.cuda.mem_get_info(self.device)
        fit = max(1, min(rt.max_batch_size, int(free * _MEMORY_SHARE / per_item)))
        if divides:
            whole = [d for d in range(fit, (fit + 1) // 2 - 1, -1) if divides % d == 0]
            if whole:
                return whole[0]
        return fit // 8 * 8 or fit

    def _probe_peak(self, batch: int) -> int:
        """Peak bytes above the resting allocation of the conditions and one U-Net call at ``batch``."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        x = torch.zeros(batch, *IMAGE_SHAPE, device=self.device).contiguous(memory_format=self.memory_format)
        t = torch.full((batch,), self.schedule.num_timesteps - 1, device=self.device, dtype=torch.long)
        with torch.no_grad(), self.amp.context():
            cond = self.model.conditions(x, self.model.style_features(x))
            self.model(x, t, cond)
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - base
        del x, t, cond
        torch.cuda.empty_cache()
        return peak

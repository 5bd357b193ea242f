"""The reference fixtures' deterministic weights recipe (``shared/fixtures/reference/README.md``).

Every tensor is a function of its key (as written in the layout file, prefix included) and its
full shape:

1. int64 tensors (``num_batches_tracked``): 0.
2. seed = CRC-32 (zlib/IEEE) of the UTF-8 key; n = number of elements (1 for a 0-d tensor).
3. element i: splitmix64 of ``seed * 2**32 + i`` (uint64 arithmetic mod 2**64), then
   u = (z >> 11) * 2**-53 in float64 (exact, in [0, 1)).
4. leaf = text after the last '.'; in float64, then rounded to float32:
   ``running_var``: 1 + 3u; ``running_mean``: 0.2 (u - 0.5); other tensors of at most one
   dimension: 0.5 + u if the leaf is ``weight``, else 0.2 (u - 0.5); two or more dimensions:
   (2u - 1) * sqrt(3 / prod(shape[1:])).
5. row-major fill.

Vectorised with numpy uint64 in chunks (a full CCFExp layout, ~230M elements, takes seconds).
"""

from __future__ import annotations

import math
import numbers
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_CHUNK = 1 << 20  # elements per numpy pass (keeps the temporaries in cache)

_DTYPES: dict[str, torch.dtype] = {
    "F32": torch.float32,
    "float32": torch.float32,
    "torch.float32": torch.float32,
    "F64": torch.float64,
    "float64": torch.float64,
    "torch.float64": torch.float64,
    "F16": torch.float16,
    "float16": torch.float16,
    "torch.float16": torch.float16,
    "BF16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "torch.bfloat16": torch.bfloat16,
    "I64": torch.int64,
    "int64": torch.int64,
    "torch.int64": torch.int64,
    "I32": torch.int32,
    "int32": torch.int32,
    "torch.int32": torch.int32,
}


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (expected one of {sorted(_DTYPES)} or a torch.dtype)") from None


def seed_of(key: str) -> int:
    """CRC-32 (zlib/IEEE) of the UTF-8 key, unsigned."""
    return zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF


def uniforms(seed: int, start: int, stop: int) -> np.ndarray:
    """u_i in [0, 1) (float64) for element indices start..stop-1 of the tensor with this seed."""
    with np.errstate(over="ignore"):
        z = np.arange(start, stop, dtype=np.uint64)
        z += np.uint64(seed << 32)
        z += _GOLDEN
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
        z >>= np.uint64(11)
    u = z.astype(np.float64)
    u *= 2.0**-53
    return u


def _leaf_values(u: np.ndarray, leaf: str, shape: tuple[int, ...]) -> np.ndarray:
    """Step 4 of the recipe in float64 (in place on u), then float32."""
    if leaf == "running_var":
        u *= 3.0
        u += 1.0
    elif leaf == "running_mean" or (len(shape) <= 1 and leaf != "weight"):
        u -= 0.5
        u *= 0.2
    elif len(shape) <= 1:  # a 0-d or 1-d 'weight'
        u += 0.5
    else:
        u *= 2.0
        u -= 1.0
        u *= math.sqrt(3.0 / math.prod(shape[1:]))
    return u.astype(np.float32)


def recipe_tensor(key: str, shape: tuple[int, ...] | list[int], dtype: str | torch.dtype = "F32") -> torch.Tensor:
    """The recipe's tensor for ``key`` with ``shape``; floating dtypes are made in float32 and cast."""
    if not all(isinstance(s, numbers.Integral) for s in shape):
        raise ValueError(f"{key}: shape {list(shape)} is not all integers (an undetermined dimension in the layout?)")
    shape = tuple(int(s) for s in shape)
    tdtype = _torch_dtype(dtype)
    if not tdtype.is_floating_point:
        return torch.zeros(shape, dtype=tdtype)
    n = math.prod(shape)
    leaf = key.rsplit(".", 1)[-1]
    seed = seed_of(key)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        out[start:stop] = _leaf_values(uniforms(seed, start, stop), leaf, shape)
    t = torch.from_numpy(out).reshape(shape)
    return t if tdtype == torch.float32 else t.to(tdtype)


def recipe_state_dict(
    layout: Mapping[str, Mapping[str, Any]],
    keys: Iterable[str] | None = None,
    scale: Mapping[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """The recipe for every key of ``layout`` (key -> {"shape", "dtype"}), or only for ``keys``.

    ``scale`` multiplies named tensors after the float32 rounding (the reduced CCFExp weights store
    ``ema_model.averaged_model.out.2.*`` as recipe x 0.1). Keys keep their layout names (prefixes
    included); strip prefixes afterwards to load into fpsynth modules.
    """
    wanted = list(layout) if keys is None else list(keys)
    missing = [k for k in wanted if k not in layout]
    if missing:
        raise KeyError(f"keys not in the layout: {missing[:5]}{'...' if len(missing) > 5 else ''}")
    scale = dict(scale or {})
    unknown = [k for k in scale if k not in wanted]
    if unknown:
        raise KeyError(f"scale names keys that are not made: {unknown[:5]}")
    out: dict[str, torch.Tensor] = {}
    for k in wanted:
        t = recipe_tensor(k, tuple(layout[k]["shape"]), layout[k].get("dtype", "F32"))
        if k in scale:
            t = t * scale[k]
        out[k] = t
    return out

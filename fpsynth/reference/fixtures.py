"""Where the reference fixtures are and how to read them.

``REFERENCE_DIR`` is ``<repo root>/../shared/fixtures/reference`` unless the environment variable
``FPSYNTH_REFERENCE_DIR`` names another folder (read at import). The folder holds, per published
checkpoint, ``<name>.layout.json`` (key -> {"shape", "dtype"} under "state_dict") and, per parity
set, ``<name>.parity.json``, ``<name>.parity.io.safetensors`` (``in.*`` / ``out.*`` tensors) and
sometimes ``<name>.parity.safetensors`` (weights under the authors' key names).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = Path(os.environ.get("FPSYNTH_REFERENCE_DIR") or REPO_ROOT.parent / "shared" / "fixtures" / "reference")


def reference_path(filename: str) -> Path:
    """``REFERENCE_DIR / filename``; FileNotFoundError naming the full path when absent."""
    p = REFERENCE_DIR / filename
    if not p.is_file():
        raise FileNotFoundError(f"reference fixture not found: {p} (set FPSYNTH_REFERENCE_DIR to the folder)")
    return p


def _stem(name: str, suffix: str) -> str:
    return name if name.endswith(suffix) else name + suffix


def read_layout(name: str) -> dict[str, dict[str, Any]]:
    """The "state_dict" of ``<name>.layout.json``: key -> {"shape": [...], "dtype": "float32"|"int64"}."""
    with reference_path(_stem(name, ".layout.json")).open() as f:
        return json.load(f)["state_dict"]


def read_json(name: str) -> dict[str, Any]:
    """``<name>.parity.json`` (configuration, io description, tolerances)."""
    with reference_path(_stem(name, ".parity.json")).open() as f:
        return json.load(f)


def read_io(name: str) -> dict[str, torch.Tensor]:
    """The tensors of ``<name>.parity.io.safetensors`` (``name`` may also be a file name)."""
    from safetensors.torch import load_file

    fname = name if name.endswith(".safetensors") else _stem(name, ".parity.io") + ".safetensors"
    return load_file(str(reference_path(fname)))


def read_weights(name: str) -> dict[str, torch.Tensor]:
    """The tensors of ``<name>.parity.safetensors`` (stored reduced weights, the authors' key names)."""
    from safetensors.torch import load_file

    fname = name if name.endswith(".safetensors") else _stem(name, ".parity") + ".safetensors"
    return load_file(str(reference_path(fname)))


def max_rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max|out - ref| / max|ref| (computed in float64)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    scale = ref.abs().max().item()
    return (out - ref).abs().max().item() / scale if scale else (out - ref).abs().max().item()


def assert_close_rel(out: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4, name: str = "") -> float:
    """Assert max|out - ref| <= rel * max|ref| (shapes equal); returns max|out - ref| / max|ref|."""
    label = f"{name}: " if name else ""
    if tuple(out.shape) != tuple(ref.shape):
        raise AssertionError(f"{label}shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    o, r = out.detach().double().cpu(), ref.detach().double().cpu()
    err = (o - r).abs().max().item() if o.numel() else 0.0
    scale = r.abs().max().item() if r.numel() else 0.0
    if not err <= rel * scale:  # also fails on NaN
        raise AssertionError(
            f"{label}max|out - ref| = {err:.6g} > {rel:g} * max|ref| = {rel * scale:.6g} "
            f"(max|ref| = {scale:.6g}, relative {err / scale if scale else float('inf'):.3g})"
        )
    return err / scale if scale else 0.0

"""Pretrained weights: a spec per network and one safe way to read them.

Every pretrained network fpsynth uses has a :class:`WeightSpec` (name, the config key that sets
its path, the file names it accepts, the key prefixes of the formats it accepts, a few keys that
must be present, where a user gets it, a checksum where known). Specs are declared next to their
networks in :mod:`fpsynth.nets`, which lists them all (:mod:`fpsynth.nets.specs`) for ``fpsynth weights``.

Reading never unpickles arbitrary objects (see :mod:`fpsynth.safeload`): ``.safetensors`` through
safetensors, torch files through ``torch.load(weights_only=True)``, and Lightning checkpoints that
also pickle non-tensor objects (OmegaConf hyper-parameters, ``functools.partial``) through our own
zip reader, which rebuilds only tensors and turns every other global into an inert placeholder.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a file is read: the CLI starts (and checks its config) without it
    import torch

from fpsynth.errors import WeightsError
from fpsynth.outputs import sha256_file


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    name: str  # registry name, e.g. "ir50-adaface"
    config_key: str  # e.g. "weights.ir50_id": where a user sets the path
    files: tuple[str, ...]  # file names it is published under
    expected_keys: tuple[str, ...]  # keys (after prefix stripping) that must be present
    source: str  # where a user gets it
    prefixes: tuple[str, ...] = ("module.", "model.", "backbone.", "net.")  # stripped if present
    sha256: str | None = None  # checked when known


@dataclasses.dataclass(frozen=True)
class WeightsConfig:
    """``[weights]``: paths of user-supplied pretrained files (see README, 'Weights')."""

    ir50_id: Path | None = None  # IR-50 face recognition (AdaFace/InsightFace layout): E_ID, F_ID, ID loss
    ir50_expression: Path | None = None  # IR-50 trained for expression (F_Face of E_Exp)
    mobilefacenet: Path | None = None  # 68-point MobileFaceNet (E_LM and D_LM)
    inception: Path | None = None  # Inception-v3 2015-12-05 for FID (.pth state dict or TorchScript)
    vgg16: Path | None = None  # VGG16 ImageNet features for LPIPS and perceptual loss
    lpips: Path | None = None  # LPIPS v0.1 linear layers (vgg.pth)
    dlib_models: Path | None = None  # folder with dlib .dat models (default: face_recognition_models)
    # Networks allowed to start from random weights when their file is unset (tiny/demo configs).
    # Anything not listed here fails loudly instead; every run records what it used.
    random_init: tuple[str, ...] = ()


# --------------------------------------------------------------------------- reading


def read_state_dict(path: Path, *, quiet: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: safetensors, a plain state dict, or a Lightning checkpoint
    (``state_dict`` unwrapped), on CPU. Read by :func:`fpsynth.safeload.load_checkpoint_object`,
    which never runs what a file names: globals it refuses (Lightning hyper-parameters, say) are
    named in a warning, unless ``quiet``, so a user sees what the file asked for."""
    import torch

    from fpsynth.safeload import Inert, load_checkpoint_object

    path = Path(path)
    loaded = load_checkpoint_object(path)
    refused = f" (refused to resolve: {', '.join(loaded.refused)})" if loaded.refused else ""
    obj = loaded.obj
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        found = obj.describe() if isinstance(obj, Inert) else type(obj).__name__
        raise WeightsError(f"{path}: expected a state dict, found {found}{refused}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path}: holds no tensors{refused}")
    if loaded.refused and not quiet:
        warnings.warn(
            f"{path}: read {len(tensors)} tensors; objects beside them were kept as inert placeholders, "
            f"nothing imported or run{refused}",
            stacklevel=2,
        )
    return tensors


def strip_prefixes(
    state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...], expected: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Remove the first prefix (possibly repeated, 'module.model.') that makes ``expected`` keys appear."""
    state = dict(state)
    for _ in range(3):
        if not expected or all(k in state for k in expected):
            return state
        for p in prefixes:
            if any(k.startswith(p) for k in state):
                state = {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}
                break
        else:
            break
    return state


# --------------------------------------------------------------------------- loading into a module


@dataclasses.dataclass(frozen=True)
class LoadRecord:
    """What a run used for one network (written into checkpoints and reports)."""

    name: str
    path: str | None  # None: random initialisation, explicitly allowed
    sha256: str | None
    random_init: bool


def resolve_path(spec: WeightSpec, path: Path | None, random_init: tuple[str, ...]) -> Path | None:
    """The file to load for ``spec``; None when random init is explicitly allowed; else an error."""
    if path is None:
        if spec.name in random_init:
            return None
        raise WeightsError(
            f"no weights file for {spec.name}: set `{spec.config_key}` in your pipeline TOML or pass "
            f"--set {spec.config_key}=/path/to/{spec.files[0]} (get it from {spec.source}); "
            f"for a test run only, random initialisation needs `weights.random_init` to list '{spec.name}'"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file for {spec.name} not found: {path} (set by `{spec.config_key}`; "
            f"expected one of {', '.join(spec.files)} from {spec.source})"
        )
    return path


def check_sha256(path: Path, spec: WeightSpec) -> str:
    """The file's sha256; raises unless it starts with the spec's published checksum (full or a
    torch-hub style prefix such as ``6726825d``)."""
    digest = sha256_file(path)
    if spec.sha256 and not digest.startswith(spec.sha256):
        raise WeightsError(
            f"{path}: sha256 {digest} does not match the published {spec.sha256} of {spec.name} "
            f"({spec.files[0]} from {spec.source}); a re-saved or converted copy can be loaded with "
            f"checksum verification off"
        )
    return digest


def load_into(
    module: torch.nn.Module,
    spec: WeightSpec,
    path: Path | None,
    random_init: tuple[str, ...] = (),
    *,
    drop: Callable[[str], bool] | None = None,
    verify_checksum: bool = True,
) -> LoadRecord:
    """Load ``spec``'s file into ``module`` strictly (every key and shape must match).

    Keys for which ``drop(key)`` is true are discarded from the file first (heads a metric does
    not use, say). With no file and ``spec.name`` in ``random_init`` nothing is loaded and the
    record says so; the caller keeps its own initialisation.
    """
    resolved = resolve_path(spec, path, random_init)
    if resolved is None:
        return LoadRecord(spec.name, None, None, True)
    digest = check_sha256(resolved, spec) if verify_checksum else sha256_file(resolved)
    state = strip_prefixes(read_state_dict(resolved), spec.prefixes, spec.expected_keys)
    if drop is not None:
        state = {k: v for k, v in state.items() if not drop(k)}
    missing_expected = [k for k in spec.expected_keys if k not in state]
    if missing_expected:
        sample = ", ".join(sorted(state)[:5])
        raise WeightsError(
            f"{resolved}: not a {spec.name} checkpoint: keys {missing_expected} absent (found e.g. {sample})"
        )
    own = module.state_dict()
    # BatchNorm's num_batches_tracked postdates checkpoints saved before PyTorch 0.4.1 (and is
    # unused in eval); load_state_dict fills it in when absent, so it is not reported as missing.
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{resolved}: layout does not match {spec.name}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"wrong shape {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wrong[:3]]}"
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return LoadRecord(spec.name, str(resolved), digest, False)

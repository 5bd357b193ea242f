"""Reading published PyTorch / Lightning checkpoints without unpickling arbitrary objects.

A ``.ckpt`` is a pickle, and a pickle calls whatever the file names. ``torch.load(weights_only=True)``
is safe but refuses the Lightning checkpoints we must read (their hyper-parameters pickle OmegaConf
and ``functools.partial`` objects). So torch zip files it refuses are read here: the ``data.pkl``
record is unpickled with an allow-list that only rebuilds tensors (by our own functions, on CPU,
whatever device the storages were saved from); every other global becomes an :class:`Inert`
placeholder that records its name and arguments and never imports or calls anything.
"""

from __future__ import annotations

import _compat_pickle
import dataclasses
import io
import pickle
import re
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from fpsynth.errors import WeightsError


@dataclasses.dataclass
class SafeLoad:
    """A loaded file: the top-level object, the globals replaced by placeholders, the format."""

    obj: Any
    refused: list[str]  # sorted unique "module.name"
    container: str  # "torch-zip", "torch-legacy" or "safetensors"


class Inert:
    """Stands in for a global the file names and we refuse to resolve.

    Each refused name gets its own subclass (``global_name``), so pickle can use it as a class for
    REDUCE, NEWOBJ and INST; whatever pickle then feeds it (arguments, BUILD state, dict items,
    list appends) is only recorded, for :func:`to_plain`.
    """

    global_name: ClassVar[str] = "?"
    # what pickle fed the placeholder, set in __new__ (declared here: __new__'s ``self`` is a local)
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    setitems: list[tuple[Any, Any]]
    appended: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        self = object.__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        self.setitems = []
        self.appended = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: ``__new__`` recorded the arguments (NEWOBJ calls only ``__new__``)."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.setitems.append((key, value))

    def append(self, value: Any) -> None:
        self.appended.append(value)

    def extend(self, values: Any) -> None:
        self.appended.extend(values)

    def describe(self) -> str:
        return self.global_name

    def __repr__(self) -> str:
        return f"<refused {self.global_name}>"


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: only their dtype is used, nothing is called."""

    name: str
    dtype: torch.dtype


@dataclasses.dataclass(frozen=True, eq=False)
class _Storage:
    """A storage read from this file (a 1-D CPU tensor), so rebuilds accept nothing else."""

    data: torch.Tensor


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}  # fmt: skip
_DTYPES = {name: getattr(torch, name) for name in (
    "float32", "float", "float16", "half", "bfloat16", "float64", "double", "int64", "long", "int32",
    "int", "int16", "short", "int8", "uint8", "bool", "complex64", "complex128",
)}  # fmt: skip


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value):
        raise pickle.UnpicklingError(f"tensor {what} {value!r:.80} is not a tuple of non-negative ints")
    return value


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       hooks: Any = None, metadata: Any = None) -> torch.Tensor:  # fmt: skip
    """``torch._utils._rebuild_tensor_v2`` for data only: a view of the file's storage, sharing it
    as torch.load does; grad flags and hooks are dropped (state dicts are data)."""
    if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
        raise pickle.UnpicklingError("tensor rebuilt from something other than a storage of this file")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"tensor size {size} and stride {stride} differ in length")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.data.numel():
        raise pickle.UnpicklingError(f"tensor {size} at offset {offset} lies outside its storage")
    tensor = torch.empty(0, dtype=storage.data.dtype).set_(storage.data.untyped_storage(), offset, size, stride)
    metadata = dict(metadata or {})
    if not set(metadata) <= {"conj", "neg"} or not all(type(v) is bool for v in metadata.values()):
        raise pickle.UnpicklingError(f"tensor metadata {metadata!r:.80} not supported")
    if metadata.get("conj"):
        tensor = tensor.conj()
    if metadata.get("neg"):
        tensor = tensor._neg_view()
    return tensor


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any, state: Any = None) -> torch.Tensor:
    """``_rebuild_parameter[_with_state]``: the plain tensor (a Parameter's Python state is not data)."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter rebuilt from {type(data).__name__}, not a tensor")
    return data


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode``, as protocol-2 pickles spell ``bytes``: only that use (latin-1) is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r:.20}) not supported")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _latin1_bytes,
}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii")
    if not isinstance(value, str):
        raise pickle.UnpicklingError(f"expected a string in a storage id, found {type(value).__name__}")
    return value


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol-2 pickles (torch.save's default) spell builtins the Python 2 way (``__builtin__``):
    map them back as pickle's own find_class does, so the allow-list and refused names read alike."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[module, name]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles one ``data.pkl``: allow-listed globals are our own safe objects, the rest inert."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(archive.read(f"{prefix}/data.pkl")))
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, _Storage] = {}
        self._inert: dict[str, type[Inert]] = {}
        self.refused: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        full = f"{module}.{name}"
        self.refused.add(full)
        if full not in self._inert:
            self._inert[full] = type("Inert", (Inert,), {"global_name": full})
        return self._inert[full]

    def persistent_load(self, pid: Any) -> _Storage:
        """``('storage', storage_type, key, location, numel)``: the bytes of ``data/<key>`` as a
        CPU tensor; the location (``cuda:0`` for GPU-trained files) is ignored."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and _text(pid[0]) == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid
        key = _text(key)
        if not isinstance(kind, _StorageType) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError(f"storage {key!r} has type {kind!r:.60} and size {numel!r:.20}")
        if key not in self._storages:
            self._storages[key] = _Storage(self._read_storage(key, kind.dtype, numel))
        storage = self._storages[key]
        if storage.data.dtype != kind.dtype or storage.data.numel() != numel:
            raise pickle.UnpicklingError(f"storage {key!r} is referenced with two different types or sizes")
        return storage

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        name = f"{self._prefix}/data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"record {name} is missing") from None
        if info.file_size != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"record {name} holds {info.file_size} bytes, expected {numel} x {dtype}")
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(bytearray(self._archive.read(name)), dtype=dtype)


def _zip_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    """The record folder (``archive`` for Lightning, the file stem for torch.save) of a checkpoint."""
    names = archive.namelist()
    pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise WeightsError(f"{path}: a zip file but not a torch checkpoint (data.pkl records: {pickles[:3]})")
    prefix = pickles[0].split("/")[0]
    if f"{prefix}/constants.pkl" in names or any(n.startswith(f"{prefix}/code/") for n in names):
        raise WeightsError(f"{path}: a TorchScript archive, not a checkpoint (load it with torch.jit.load)")
    order = archive.read(f"{prefix}/byteorder") if f"{prefix}/byteorder" in names else b"little"
    if order != b"little" or sys.byteorder != "little":
        raise WeightsError(f"{path}: saved {order.decode(errors='replace')}-endian; only little-endian is read")
    return prefix


def read_zip_checkpoint(path: Path) -> SafeLoad:
    """A torch zip checkpoint read by the restricted unpickler (any device tag -> CPU)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            unpickler = _RestrictedUnpickler(archive, _zip_prefix(archive, path))
            obj = unpickler.load()
    except WeightsError:
        raise
    except Exception as exc:  # corrupt zip, malformed pickle, a rebuild refusing its arguments
        raise WeightsError(f"{path}: not a checkpoint that can be read safely ({type(exc).__name__}: {exc})") from exc
    return SafeLoad(obj, sorted(unpickler.refused), "torch-zip")


def _torch_reason(exc: Exception) -> str:
    """The informative line of torch's long weights_only message."""
    text = str(exc).strip()
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if found:
        return found.group(1)
    return text.splitlines()[0] if text else type(exc).__name__


def _read_legacy(path: Path) -> SafeLoad:
    """Non-zip files: only torch's own weights_only reader, which the legacy format needs."""
    try:
        return SafeLoad(torch.load(path, map_location="cpu", weights_only=True), [], "torch-legacy")
    except pickle.UnpicklingError as exc:
        needed = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if needed:
            raise WeightsError(
                f"{path}: a legacy (non-zip) pickle that cannot be read safely: it needs {needed.group(1)}, "
                f"which is refused; re-save its state dict with torch.save or as .safetensors"
            ) from None
        raise WeightsError(
            f"{path}: not a torch file, or a legacy pickle that cannot be read safely ({_torch_reason(exc)})"
        ) from None
    except Exception as exc:  # empty or truncated file, bad magic number
        raise WeightsError(f"{path}: not a readable weights file ({_torch_reason(exc)})") from exc


def load_checkpoint_object(path: Path | str) -> SafeLoad:
    """Everything a weights file holds, tensors on CPU, without running anything it names.

    safetensors through safetensors; torch zip files through :func:`read_zip_checkpoint`; other
    (legacy) files through ``torch.load(weights_only=True)`` only. Errors are :class:`WeightsError` naming
    the path.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return SafeLoad(load_file(str(path), device="cpu"), [], "safetensors")
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise WeightsError(f"{path}: cannot be read ({exc})") from exc
    if not is_zip:
        return _read_legacy(path)
    try:
        with zipfile.ZipFile(path) as archive:
            _zip_prefix(archive, path)  # TorchScript, big-endian and non-checkpoint zips end here
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise WeightsError(f"{path}: a truncated or corrupt zip file ({exc})") from exc
    # Our own reader only: torch.load(weights_only=True) would rebuild every tensor of a Lightning
    # file before refusing its hyper-parameters, doubling the time and memory of a 1 GB import.
    return read_zip_checkpoint(path)


def to_plain(obj: Any, _seen: frozenset[int] = frozenset()) -> Any:
    """JSON-able plain data for a loaded structure (to record hyper-parameters with a run):
    placeholders become ``{"__refused__": name, "args": ..., "state": ...}``, tensors a short text."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, torch.Tensor):
        return f"tensor({tuple(obj.shape)}, {str(obj.dtype).removeprefix('torch.')})"
    if isinstance(obj, type) and issubclass(obj, Inert):
        return {"__refused__": obj.global_name}
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    if id(obj) in _seen:
        return "<cycle>"
    seen = _seen | {id(obj)}
    if isinstance(obj, Inert):
        out = {"__refused__": obj.global_name, "args": to_plain(obj.args, seen), "state": to_plain(obj.state, seen)}
        extras = {"kwargs": obj.kwargs, "items": obj.setitems, "appended": obj.appended}
        out.update({k: to_plain(v, seen) for k, v in extras.items() if v})
        return out
    if isinstance(obj, Mapping):
        return {k if isinstance(k, str) else str(to_plain(k, seen)): to_plain(v, seen) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v, seen) for v in obj]
    return repr(obj)  # dtype, complex, slice

"""Safe reading of checkpoints (fpsynth.safeload, fpsynth.weights.read_state_dict / load_into).

Lightning-like checkpoints read on CPU with their objects kept inert; GPU-tagged storages; hostile
files whose payload must never run (a marker file must never appear); corrupt files.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import pickle
import subprocess
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from fpsynth.safeload import Inert, load_checkpoint_object, read_zip_checkpoint, to_plain
from fpsynth.weights import WeightsError, WeightSpec, load_into, read_state_dict

REPO = Path(__file__).resolve().parent.parent


class HyperParams:
    """A user class pickled by value in hyper-parameters (NEWOBJ + BUILD)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr


class ConfigDict(dict):
    """Like Lightning's AttributeDict: a dict subclass (items arrive by SETITEMS)."""


class ConfigList(list):
    """A list subclass (items arrive by APPENDS)."""


class Payload:
    """Pickles as ``func(*args)``: what a hostile file asks the loader to call."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _state() -> OrderedDict:
    base = torch.arange(12, dtype=torch.float32)
    return OrderedDict(
        [
            ("layer.weight", base.view(3, 4)),
            ("layer.view", base[1:9:2]),  # shares layer.weight's storage
            ("half", torch.linspace(-1, 1, 5).half()),
            ("steps", torch.tensor(7, dtype=torch.int64)),
            ("mask", torch.tensor([True, False])),
        ]
    )


def _assert_same(loaded, expected) -> None:
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert loaded[key].dtype == value.dtype and loaded[key].device.type == "cpu", key
        assert torch.equal(loaded[key], value), key


def _payloads(marker: Path) -> dict[str, Payload]:
    return {
        "posix.system": Payload(os.system, f"touch {marker}"),
        "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", str(marker)]),
    }


def _rezip(src: Path, dst: Path, prefix: str, rewrite=lambda data: data) -> None:
    """Copy a torch.save file record by record under another prefix, rewriting data.pkl."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            rest = name.split("/", 1)[1]
            zout.writestr(f"{prefix}/{rest}", rewrite(data) if rest == "data.pkl" else data)


# --------------------------------------------------------------------------- valid files


def test_lightning_like_checkpoint(tmp_path):
    path = tmp_path / "model.ckpt"
    ckpt = {
        "state_dict": _state(),
        "hyper_parameters": {"cfg": functools.partial(print, 1), "x": HyperParams(0.1)},
        "epoch": 3,
    }
    torch.save(ckpt, path)
    loaded = load_checkpoint_object(path)
    assert loaded.container == "torch-zip"
    # print is part of the pickled partial; nothing else than the partial and the class is refused
    assert loaded.refused == sorted(["functools.partial", "builtins.print", _name(HyperParams)])
    _assert_same(loaded.obj["state_dict"], _state())
    assert loaded.obj["epoch"] == 3
    w, v = loaded.obj["state_dict"]["layer.weight"], loaded.obj["state_dict"]["layer.view"]
    assert w.untyped_storage().data_ptr() == v.untyped_storage().data_ptr() and v.stride() == (2,)
    hp = loaded.obj["hyper_parameters"]
    assert isinstance(hp["x"], Inert) and hp["x"].describe() == _name(HyperParams) and hp["x"].state == {"lr": 0.1}
    assert "functools.partial" in repr(hp["cfg"])
    plain = json.loads(json.dumps(to_plain(loaded.obj)))
    assert plain["hyper_parameters"]["x"] == {"__refused__": _name(HyperParams), "args": [], "state": {"lr": 0.1}}
    assert plain["hyper_parameters"]["cfg"]["__refused__"] == "functools.partial"
    assert plain["state_dict"]["half"] == "tensor((5,), float16)"
    with pytest.warns(UserWarning, match="functools.partial"):
        _assert_same(read_state_dict(path), _state())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_state_dict(path, quiet=True)


def test_own_reader_equals_torch_load(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(_state(), path)
    fast, own = load_checkpoint_object(path), read_zip_checkpoint(path)
    assert fast.refused == own.refused == []
    _assert_same(own.obj, fast.obj)
    assert [t.stride() for t in own.obj.values()] == [t.stride() for t in fast.obj.values()]


def test_subclassed_containers_are_recorded(tmp_path):
    path = tmp_path / "hp.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hp": ConfigDict(a=1), "ls": ConfigList([1, 2])}, path)
    loaded = load_checkpoint_object(path)
    assert loaded.refused == sorted([_name(ConfigDict), _name(ConfigList)])
    plain = to_plain(loaded.obj)
    assert plain["hp"]["items"] == [["a", 1]] and plain["ls"]["appended"] == [1, 2]


def test_cuda_tagged_storages_load_on_cpu(tmp_path):
    src, path = tmp_path / "src.ckpt", tmp_path / "gpu.ckpt"
    torch.save({"state_dict": _state(), "hyper_parameters": {"cfg": functools.partial(print, 1)}}, src)
    cpu_tag = b"X\x03\x00\x00\x00cpu"  # BINUNICODE 'cpu': written once, memoised for the other storages
    to_cuda = lambda data: data.replace(cpu_tag, b"X\x06\x00\x00\x00cuda:0")  # noqa: E731
    with zipfile.ZipFile(src) as z:
        assert z.read(f"{src.stem}/data.pkl").count(cpu_tag) == 1
    _rezip(src, path, "archive", to_cuda)
    with zipfile.ZipFile(path) as z:
        assert b"cuda:0" in z.read("archive/data.pkl") and cpu_tag not in z.read("archive/data.pkl")
    loaded = load_checkpoint_object(path)
    assert loaded.container == "torch-zip" and "functools.partial" in loaded.refused
    _assert_same(loaded.obj["state_dict"], _state())
    # the fast path (torch.load weights_only=True, map_location="cpu") on GPU tags as well
    plain = tmp_path / "gpu_plain.pth"
    torch.save(_state(), src)
    _rezip(src, plain, "archive", to_cuda)
    _assert_same(torch.load(plain, map_location="cpu", weights_only=True), _state())
    assert load_checkpoint_object(plain).refused == []
    _assert_same(load_checkpoint_object(plain).obj, _state())


def test_legacy_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    legacy = tmp_path / "old.pth.tar"
    torch.save(_state(), legacy, _use_new_zipfile_serialization=False)
    loaded = load_checkpoint_object(legacy)
    assert loaded.container == "torch-legacy"
    _assert_same(loaded.obj, _state())
    st = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(2, 3)}, str(st))
    assert load_checkpoint_object(st).container == "safetensors"
    assert torch.equal(read_state_dict(st)["a"], torch.ones(2, 3))


# --------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize("name", ["posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_hostile_plain_pickle(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_payloads(marker)[name], protocol=2))
    with pytest.raises(WeightsError, match=f"legacy .*{name.split('.')[1]}") as err:
        load_checkpoint_object(path)
    assert str(path) in str(err.value)
    with pytest.raises(WeightsError, match=name.split(".")[1]):
        read_state_dict(path)
    assert not marker.exists()


def test_payloads_are_live(tmp_path, monkeypatch):
    """Control: an ordinary unpickler does run them, so the tests below test something."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(_payloads(marker)["posix.system"], protocol=2))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("name", ["posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_hostile_torch_zip(tmp_path, monkeypatch, name, protocol):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.ckpt"
    torch.save(_payloads(marker)[name], path, pickle_protocol=protocol)
    loaded = load_checkpoint_object(path)
    assert loaded.refused == [name] and loaded.obj.describe() == name
    with pytest.raises(WeightsError, match=f"found {name}"):
        read_state_dict(path)
    assert not marker.exists()


def test_hostile_posix_system_via_raw_zip(tmp_path, monkeypatch):
    """The os.system payload written straight into a Lightning-style archive/data.pkl."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Payload(os.system, "touch PWNED"), protocol=2))
        z.writestr("archive/version", "3\n")
    with pytest.raises(WeightsError, match="posix.system"):
        read_state_dict(path)
    assert not (tmp_path / "PWNED").exists()


def test_payload_in_hyper_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.ckpt"
    state = OrderedDict([("model.weight", torch.randn(2, 3)), ("model.bias", torch.randn(2))])
    torch.save({"state_dict": state, "hyper_parameters": _payloads(marker), "epoch": 1}, path)
    with pytest.warns(UserWarning) as caught:
        _assert_same(read_state_dict(path), state)
    message = str(caught[0].message)
    assert all(name in message for name in _payloads(marker))
    spec = WeightSpec("tiny", "weights.tiny", ("model.ckpt",), ("weight", "bias"), "a test")
    net = torch.nn.Linear(3, 2)
    with pytest.warns(UserWarning, match="posix.system"):
        record = load_into(net, spec, path)
    assert record.path == str(path) and torch.equal(net.weight.detach(), state["model.weight"])
    assert not marker.exists()


def test_no_unsafe_torch_load_in_sources():
    for module in ("fpsynth/safeload.py", "fpsynth/weights.py"):
        source = (REPO / module).read_text()
        assert "weights_only=False" not in source and "pickle.load(" not in source, module


# --------------------------------------------------------------------------- corrupt files


def test_truncated_zip(tmp_path):
    src, path = tmp_path / "full.pth", tmp_path / "cut.pth"
    torch.save(_state(), src)
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt") as err:
        load_checkpoint_object(path)
    assert str(path) in str(err.value)
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    assert str(path) in str(err.value)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes()
    )
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="absent.pth"):
        read_state_dict(tmp_path / "absent.pth")


def test_storage_size_mismatch_is_refused(tmp_path):
    src, path = tmp_path / "src.pth", tmp_path / "bad.pth"
    torch.save({"w": torch.ones(4)}, src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name)[:8] if name.endswith("/data/0") else zin.read(name))
    with pytest.raises(WeightsError, match="holds 8 bytes") as err:
        read_zip_checkpoint(path)
    assert str(path) in str(err.value)

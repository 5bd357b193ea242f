"""No weights path runs code from a file (issue 14 item 1): every registered network's loader,
train.init_from, the published import and fpsynth.load_model, each given a plain pickle, a torch
zip and a legacy torch file whose payload would create a marker file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import fpsynth
from fpsynth.errors import FpsynthError
from fpsynth.nets.specs import all_weight_specs
from fpsynth.weights import load_into


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    state = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": Payload(marker)}
    plain, zipped, legacy = tmp_path / "plain.pth", tmp_path / "zipped.pth", tmp_path / "legacy.pth"
    plain.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    torch.save(state, zipped)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    return {"plain": plain, "zip": zipped, "legacy": legacy}


@pytest.mark.parametrize("kind", ["plain", "zip", "legacy"])
def test_no_weights_path_executes_a_payload(tmp_path, kind):
    marker = tmp_path / "PWNED"
    path = _files(tmp_path, marker)[kind]
    for spec in all_weight_specs():
        with pytest.raises(FpsynthError):  # never loads: at best the tensors are read, the layout refused
            load_into(torch.nn.Linear(2, 2), spec, path, verify_checksum=False)
        assert not marker.exists(), spec.name
    from fpsynth.nets.inception import load_inception

    # any refusal will do (the file is not a state dict); what matters is the marker below
    with pytest.raises(Exception):  # noqa: B017
        load_inception(path, verify_checksum=False)
    from fpsynth.train.init import init_model_from

    with pytest.raises(FpsynthError):
        init_model_from(torch.nn.Linear(2, 2), path)
    from fpsynth.published.importer import convert

    with pytest.raises(FpsynthError):
        convert(path)
    with pytest.raises(FpsynthError):
        fpsynth.load_model(path)
    assert not marker.exists()

"""Whether an input folder is the built-in synthetic demo data, read where the data enters.

The demo renderer (:mod:`fpsynth.demo.dataset`) leaves a manifest, :data:`DEMO_MANIFEST`, at the
root of what it writes. The stages that read input folders (``prepare``: its sources; ``generate``:
its ``--ids`` photos) look for it here and record the answer in their own stage record, so later
stages (the report) learn where their data came from from stage outputs only, never by going back
to the input folders, and nothing below the demo imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEMO_MANIFEST = "demo.json"
DEMO_GENERATOR = "fpsynth.demo"  # the manifest's "generator": what marks a folder as demo data


def read_demo_manifest(folder: Path) -> dict[str, Any] | None:
    """``demo.json`` of the demo dataset holding ``folder`` (its root, ``aflfp/`` or ``ids/``), or None.

    Lets a reader of any input folder find out that it is synthetic (``manifest["synthetic"]``).
    """
    folder = Path(folder)
    for candidate in (folder / DEMO_MANIFEST, folder.parent / DEMO_MANIFEST):
        if candidate.is_file():
            manifest = json.loads(candidate.read_text())
            if manifest.get("generator") == DEMO_GENERATOR:
                return manifest
    return None


def source_provenance(kind: str, given: Path, folder: Path) -> dict[str, Any]:
    """One input source of a stage: ``kind`` (meei, aflfp, images), the path as the config gives
    it, whether ``folder`` (where it resolved) exists, and whether it is the synthetic demo data."""
    found = Path(folder).exists()
    demo = read_demo_manifest(Path(folder)) if found else None
    return {
        "kind": kind,
        "path": str(given),
        "found": found,
        "synthetic": bool(demo and demo.get("synthetic")),
        "generator": demo.get("generator") if demo else None,
    }


def is_synthetic(folder: Path) -> bool:
    """Whether ``folder`` is (inside) the synthetic demo data."""
    demo = read_demo_manifest(Path(folder)) if Path(folder).exists() else None
    return bool(demo and demo.get("synthetic"))

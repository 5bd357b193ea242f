"""The input sources of ``fpsynth prepare``: one registry entry per kind of input folder.

An :class:`InputSource` is what prepare, its command and its messages need to know of a kind of
input: its name (the ``--<name> DIR`` flag of ``fpsynth prepare``, the ``prepare.<name>`` config
key that flag sets, the ``dataset`` of its rows), the flag's help, the layout a folder must have
(said when a folder holds nothing usable) and the function that finds its inputs. The prepare
command's flags, the stage's roots, discovery and provenance loop over :data:`INPUT_SOURCES`, in
its order (which is also the order :func:`fpsynth.data.sources.take_once` keeps a file given twice).

``PrepareConfig`` declares one ``Path | None`` field per entry (a typed config needs its fields
declared; ``tests/test_data_sources.py`` checks that the two agree). The README's "Input layouts"
describes each layout at length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from fpsynth.data.config import PrepareConfig
from fpsynth.data.meei import discover_meei
from fpsynth.data.sources import Found, discover_aflfp, discover_images


@dataclasses.dataclass(frozen=True)
class InputSource:
    name: str  # the --flag, the PrepareConfig field (config key prepare.<name>), Found.dataset
    flag_help: str  # help of ``fpsynth prepare --<name> DIR``
    layout: str  # what the folder must hold, in one line
    discover: Callable[[Path, PrepareConfig], list[Found]]  # (root, [prepare]) -> found inputs and reason rows

    @property
    def config_key(self) -> str:
        return f"prepare.{self.name}"


INPUT_SOURCES: tuple[InputSource, ...] = (
    InputSource(
        "meei",
        "MEEI-style tree: per-subject folders of videos and photos, or the MEEI standard set as published.",
        "<subject>/<expression>[_<side>].mp4|avi|mov|jpg|png, or the MEEI standard set (<key>.mp4, photos, XLSX)",
        lambda root, pc: discover_meei(root, pc.sources, pc.movements),
    ),
    InputSource(
        "aflfp",
        "AFLFP-style images with 68-point .pts files.",
        "<subject>/<expression>/<NNN>[_<phase>].png|jpg with a .pts beside each",
        lambda root, pc: discover_aflfp(root, pc.sources),
    ),
    InputSource(
        "images",
        "Plain folder of face photos.",
        "image files (jpg, png, ...), in sub-folders or not",
        lambda root, pc: discover_images(root, pc.sources),
    ),
)
BY_NAME: dict[str, InputSource] = {source.name: source for source in INPUT_SOURCES}


def given_roots(pc: PrepareConfig) -> dict[str, Path]:
    """``{source name: folder}`` of the sources ``pc`` sets, in registry order."""
    return {s.name: root for s in INPUT_SOURCES if (root := getattr(pc, s.name)) is not None}


def flags_text() -> str:
    """'--meei DIR, --aflfp DIR and/or --images DIR': the flags, for messages."""
    flags = [f"--{s.name} DIR" for s in INPUT_SOURCES]
    return flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and/or {flags[-1]}"

"""Every random number in fpsynth comes from a NAMED stream of the run seed.

    rng(seed, "prepare-split")                      # numpy Generator
    rng(seed, "demo-frame", k, mi, f)               # keys: one stream, many independent draws
    derive(seed, "train-dropout", step, micro)      # a 63-bit integer seed (stored, or handed on)
    torch_generator(seed, "train-noise", step)      # torch.Generator
    with global_torch_rng(seed, "train-init"): ...  # torch's global RNG, seeded and restored after

:data:`STREAMS` lists every stream: its name, what it drives, and how it turns (seed, keys) into
numbers. A name that is not there raises, so a new random draw means one new entry here.

How a stream derives its numbers (:class:`Recipe`):

- ``SEQUENCE``, the default: numpy ``SeedSequence([seed, tag, *keys])``, where ``tag`` is the
  stream's integer; a stream added today leaves ``tag`` out and gets :func:`text_int` of its
  name (as the report's streams always did). Text keys are turned into integers by
  :func:`text_int`. The integer seed (``derive``) is the sequence's first 64-bit word shifted
  right by one (63 bits, a valid torch seed).
- ``GIVEN``: the seed handed in is already this purpose's own (drawn from another stream, or a
  network recipe's seed): numpy ``SeedSequence([seed, *keys])``, torch seeded with the seed itself.

The other recipes, and the integer tags of the older streams, are kept so that outputs of earlier
versions reproduce: the streams were written in four styles before they had one home, and a
stream that changed its formula would change the demo, the plans and the report. They are:

- ``REPORT_TEXT``: numpy ``SeedSequence([seed, text_int(text, *keys)])``; the integer seed is
  ``text_int(seed, text, *keys)`` (the report's own hashing of its stream names).
- ``UTILITY_TEXT``: integer = the first 8 bytes (little-endian) of sha256 of
  ``"seed:text:keys..."`` shifted right by one; numpy ``default_rng`` of that integer.
- ``GENERATE_TEXT``: integer = the first 8 bytes (big-endian) of sha256 of ``"text:seed:keys..."``,
  low 63 bits; numpy ``default_rng`` of that integer.

Distinct streams give distinct numbers (tags and texts are unique, checked at import), except
``GIVEN`` streams, which by definition take a seed that is already distinct. A SeedSequence pads a
short entropy with zeros, so ``(seed, stream)`` and ``(seed, stream, 0)`` draw the same numbers:
call a stream with the same number of keys everywhere (every stream here does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import operator
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_MASK63 = 2**63 - 1


def text_int(*parts: object) -> int:
    """A 63-bit integer from the text of ``parts`` (never from hash(), which changes per process)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & _MASK63


class Recipe(enum.Enum):
    """How a stream turns (seed, keys) into numbers (module docstring)."""

    SEQUENCE = "sequence"
    GIVEN = "given"
    REPORT_TEXT = "report-text"
    UTILITY_TEXT = "utility-text"
    GENERATE_TEXT = "generate-text"


@dataclasses.dataclass(frozen=True)
class Stream:
    """One named stream: what it drives and how its numbers are derived."""

    name: str
    drives: str  # where its numbers go (the module and the draw)
    recipe: Recipe = Recipe.SEQUENCE
    tag: int | None = None  # SEQUENCE: the integer after the seed; None = text_int(name). The older
    # streams' integers are kept so that outputs of earlier versions reproduce.
    text: str | None = None  # the *_TEXT recipes: the text hashed with the seed; None = the name

    @property
    def sequence_tag(self) -> int:
        return text_int(self.name) if self.tag is None else self.tag

    @property
    def label(self) -> str:
        return self.name if self.text is None else self.text


_S, _G = Recipe.SEQUENCE, Recipe.GIVEN
STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        # prepare
        Stream("prepare-split", "data/manifests.py: the subject order that assigns train/test", _S, 0x5B117),
        Stream("prepare-pairs", "data/manifests.py: the identity image drawn for each style frame", _S, 0x9A125),
        Stream("prepare-pseudonyms", "data/pseudonyms.py: the subject shuffle behind the pseudonyms", _S, 0x5B1EC7),
        # train
        Stream(
            "train-init",
            "train/loop.py: the seeded initialisation of the model's random parts (global RNG)",
            _S,
            0x1217,
        ),
        Stream("train-order", "train/data.py: the pair permutation of each epoch (keys: epoch)", _S, 0x0D47A),
        Stream("train-noise", "train/data.py: each step's timesteps and noise (keys: step)", _S, 0x40153),
        Stream("train-dropout", "train/data.py: one seed per global micro-batch (keys: step, micro-batch)", _S, 0xD809),
        Stream(
            "train-dropout-mask",
            "train/loop.py: the global RNG of a micro-batch's dropout, from its train-dropout seed",
            _G,
        ),
        Stream(
            "train-loader", "train/data.py: the DataLoader's generator (its workers' base seed), from the run seed", _G
        ),
        Stream("train-grid-pick", "train/grids.py: the held-out pairs of the sample grids", _S, 0x6121D),
        Stream("train-grid-noise", "train/grids.py: the sampling seed of each grid row (keys: row)", _S, 0x6121E),
        # sampling (train grids, generate, report aFID)
        Stream(
            "item-noise",
            "diffusion/samplers.py: an item's initial and sampler noise, from the item's own seed "
            "(train-grid-noise, generate-item, report-afid)",
            _G,
        ),
        # generate
        Stream(
            "generate-item",
            "generate/plan.py: an item's seed (keys: item id)",
            Recipe.GENERATE_TEXT,
            text="fpsynth-generate",
        ),
        Stream("generate-identities", "generate/plan.py: the identity order of a stratum (keys: stratum)", _S, 0x1D5),
        Stream("generate-frames", "generate/plan.py: the style-frame order of a stratum (keys: stratum)", _S, 0xF7A3E),
        # report
        Stream("report-dataset", "report/dataset.py: the generated images evaluated (a seeded subset)"),
        Stream("report-reference", "report/run.py: the real reference images (a seeded subset)"),
        Stream("report-privacy", "report/privacy.py: the training frames kept per subject"),
        Stream("report-afid-patients", "report/afid.py: the patients evaluated when capped"),
        Stream(
            "report-afid",
            "report/afid.py: a patient's frames and pairs (keys: patient); the sampling seeds of "
            "its pairs (keys: patient, k, pass)",
            Recipe.REPORT_TEXT,
        ),
        # utility
        Stream("utility-rows", "utility/run.py: the generated rows used (a seeded subset)", _S, 0x0717),
        Stream(
            "utility-draw",
            "utility/benchmark.py: the synthetic draw of a repeat (keys: task, regime, repeat)",
            Recipe.UTILITY_TEXT,
            text="draw",
        ),
        Stream(
            "utility-bootstrap",
            "utility/benchmark.py: the subject bootstrap (keys: task, grader); one for every regime (paired)",
            Recipe.UTILITY_TEXT,
            text="bootstrap",
        ),
        Stream(
            "utility-model",
            "utility/benchmark.py: a grader's seed (keys: task, grader, repeat)",
            Recipe.UTILITY_TEXT,
            text="model",
        ),
        Stream(
            "utility-grader",
            "utility/graders.py: the CNN's initialisation (global RNG) and batch order, from its utility-model seed",
            _G,
        ),
        # networks with seeded random weights
        Stream(
            "weights-init", "nets/loading.py: seeded random weights of a pretrained network (tests, tiny configs)", _G
        ),
        # demo
        Stream("demo-identity", "demo/dataset.py: a synthetic subject's face (keys: subject)", _S, 1),
        Stream(
            "demo-frame", "demo/dataset.py: a frame's pose and render noise (keys: subject, movement, frame)", _S, 2
        ),
        Stream("demo-extra-identity", "demo/dataset.py: an extra identity's face (keys: identity)", _S, 3),
        Stream("demo-rendered", "demo/rendered.py: one rendered-dataset image (keys: image)", _G),
    )
}
del _S, _G


def _check_unique(streams: dict[str, Stream]) -> None:
    """Two streams with one tag (or one text) would draw the same numbers: refuse at import."""
    seen: dict[object, str] = {}
    for s in streams.values():
        key: object = None
        if s.recipe is Recipe.SEQUENCE:
            key = (Recipe.SEQUENCE, s.sequence_tag)
        elif s.recipe is not Recipe.GIVEN:
            key = (s.recipe, s.label)
        if key is not None:
            if key in seen:
                raise ValueError(f"seed streams {seen[key]!r} and {s.name!r} share {key}")
            seen[key] = s.name


_check_unique(STREAMS)


def stream(name: str) -> Stream:
    """The registry entry of ``name``; an unregistered name raises."""
    try:
        return STREAMS[name]
    except KeyError:
        raise KeyError(f"unknown seed stream {name!r}: add it to fpsynth.seeds.STREAMS") from None


def _int_keys(keys: Sequence[object]) -> list[int]:
    """Integer keys as they are (numpy integers too); text keys through :func:`text_int`."""
    return [text_int(k) if isinstance(k, str) else operator.index(k) for k in keys]  # type: ignore[arg-type]


def _entropy(seed: int, s: Stream, keys: Sequence[object]) -> list[int]:
    """The SeedSequence entropy of the SEQUENCE, GIVEN and REPORT_TEXT recipes."""
    if s.recipe is Recipe.SEQUENCE:
        return [operator.index(seed), s.sequence_tag, *_int_keys(keys)]
    if s.recipe is Recipe.GIVEN:
        return [operator.index(seed), *_int_keys(keys)]
    if s.recipe is Recipe.REPORT_TEXT:
        return [operator.index(seed), text_int(s.label, *keys)]
    raise ValueError(f"seed stream {s.name!r} ({s.recipe.value}) has no SeedSequence entropy")


def derive(seed: int, name: str, *keys: object) -> int:
    """The 63-bit integer seed of (seed, stream ``name``, keys): stored in plans, handed to torch."""
    s = stream(name)
    if s.recipe is Recipe.GIVEN:
        if keys:
            raise ValueError(f"seed stream {name!r} takes the seed as given: no keys")
        return int(seed)
    if s.recipe is Recipe.SEQUENCE:
        return int(np.random.SeedSequence(_entropy(seed, s, keys)).generate_state(1, np.uint64)[0] >> 1)
    if s.recipe is Recipe.REPORT_TEXT:
        return text_int(seed, s.label, *keys)
    if s.recipe is Recipe.UTILITY_TEXT:
        digest = hashlib.sha256(":".join(map(str, (seed, s.label, *keys))).encode()).digest()
        return int.from_bytes(digest[:8], "little") >> 1
    digest = hashlib.sha256(":".join(map(str, (s.label, seed, *keys))).encode()).digest()  # GENERATE_TEXT
    return int.from_bytes(digest[:8], "big") & _MASK63


def rng(seed: int, name: str, *keys: object) -> np.random.Generator:
    """The numpy Generator of (seed, stream ``name``, keys)."""
    s = stream(name)
    if s.recipe in (Recipe.UTILITY_TEXT, Recipe.GENERATE_TEXT):
        return np.random.default_rng(derive(seed, name, *keys))
    return np.random.default_rng(_entropy(seed, s, keys))


def torch_generator(seed: int, name: str, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with :func:`derive` of (seed, stream ``name``, keys)."""
    import torch  # here, so that numpy-only callers (prepare, demo) do not load torch through this module

    return torch.Generator(device).manual_seed(derive(seed, name, *keys))


@contextlib.contextmanager
def global_torch_rng(seed: int, name: str, *keys: object, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """Inside the block torch's global RNG is seeded with :func:`derive` of (seed, stream, keys); after it,
    the state it had before is back (``fork_rng`` over the CPU and ``devices``). For draws that cannot be
    routed through a generator: a module's initialisation, dropout."""
    import torch

    with torch.random.fork_rng(devices=list(devices)):
        torch.manual_seed(derive(seed, name, *keys))
        yield

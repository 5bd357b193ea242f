"""fpsynth.seeds: named streams, one home for every random generator of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from fpsynth import seeds
from fpsynth.seeds import STREAMS, Recipe, Stream, derive, global_torch_rng, rng, torch_generator

PACKAGE = Path(seeds.__file__).resolve().parent
DERIVED = [name for name, s in STREAMS.items() if s.recipe is not Recipe.GIVEN]
GIVEN = [name for name, s in STREAMS.items() if s.recipe is Recipe.GIVEN]
# calls that make a generator or seed one; only fpsynth/seeds.py may make them
_MAKERS = {"default_rng", "SeedSequence", "RandomState", "manual_seed", "Generator", "fork_rng", "seed"}
_SEED_FUNCS = {"rng", "derive", "torch_generator", "global_torch_rng"}


def _trees() -> list[tuple[Path, ast.AST]]:
    return [
        (p, ast.parse(p.read_text(), str(p)))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "seeds.py" or p.parent != PACKAGE
    ]


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def test_same_seed_stream_and_keys_give_the_same_numbers() -> None:
    for name in STREAMS:
        assert np.array_equal(rng(7, name, 3, "a").integers(0, 2**62, 8), rng(7, name, 3, "a").integers(0, 2**62, 8))
        keys = () if name in GIVEN else (3, "a")  # a GIVEN stream's integer seed is the seed itself: no keys
        assert derive(7, name, *keys) == derive(7, name, *keys)
        a, b = torch_generator(7, name, *keys), torch_generator(7, name, *keys)
        assert torch.equal(torch.randn(8, generator=a), torch.randn(8, generator=b))


def test_distinct_streams_seeds_and_keys_give_distinct_numbers() -> None:
    firsts = {name: tuple(rng(7, name).integers(0, 2**62, 4)) for name in DERIVED}
    assert len(set(firsts.values())) == len(DERIVED)
    assert len({derive(7, name) for name in DERIVED}) == len(DERIVED)
    for name in DERIVED:
        draws = {
            tuple(rng(seed, name, *keys).integers(0, 2**62, 4))
            for seed, keys in [(7, ()), (8, ()), (7, (1,)), (7, (2,)), (7, (1, 2)), (7, ("a",))]
        }
        assert len(draws) == 6, name


def test_given_streams_take_the_seed_as_it_is() -> None:
    for name in GIVEN:
        assert derive(12345, name) == 12345
        assert torch.equal(
            torch.randn(5, generator=torch_generator(12345, name)),
            torch.randn(5, generator=torch.Generator().manual_seed(12345)),
        )
        with pytest.raises(ValueError, match="no keys"):
            derive(12345, name, 1)


def test_unknown_stream_and_shared_tags_are_refused() -> None:
    with pytest.raises(KeyError, match="add it to fpsynth.seeds.STREAMS"):
        rng(0, "no-such-stream")
    with pytest.raises(ValueError, match="share"):
        seeds._check_unique({"a": Stream("a", "x", tag=5), "b": Stream("b", "y", tag=5)})
    with pytest.raises(ValueError, match="share"):
        seeds._check_unique(
            {"a": Stream("a", "x", Recipe.UTILITY_TEXT, text="t"), "b": Stream("b", "y", Recipe.UTILITY_TEXT, text="t")}
        )


def test_global_torch_rng_seeds_inside_and_restores_after() -> None:
    torch.manual_seed(99)
    expected_after = torch.randn(3)
    torch.manual_seed(99)
    with global_torch_rng(5, "train-init"):
        inside = torch.randn(3)
    assert torch.equal(torch.randn(3), expected_after)
    with global_torch_rng(5, "train-init"):
        assert torch.equal(torch.randn(3), inside)
    assert torch.equal(inside, torch.randn(3, generator=torch_generator(5, "train-init")))


def test_pinned_first_numbers() -> None:
    """The first numbers of a few streams, as the versions before fpsynth.seeds drew them: a change to a
    recipe, a tag or a text changes these (and the demo, the plans, the report)."""
    assert rng(0, "prepare-split").integers(0, 1000, 5).tolist() == [245, 168, 57, 380, 653]
    assert rng(123, "demo-frame", 1, 2, 3).integers(0, 1000, 5).tolist() == [809, 740, 885, 263, 221]
    assert derive(123, "train-dropout", 7, 1) == 8292308922088227503
    assert derive(9, "generate-item", "00000003") == 8627227279656623255
    assert derive(42, "report-afid", "P001", 0, 1) == 3597685078206078681
    assert derive(42, "utility-model", "smile", "geometry", 0) == 9093946398742430301
    noise = torch.randn(3, generator=torch_generator(123, "train-noise", 5))
    assert torch.allclose(noise, torch.tensor([-0.6716456413269043, 0.4781923294067383, -1.4000096321105957]))


def test_no_generator_is_made_outside_the_seeds_module() -> None:
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in _MAKERS:
                # Generator: torch.Generator(...) or np.random.Generator(...); seed: np.random.seed / torch.seed
                owner = node.func.value if isinstance(node.func, ast.Attribute) else None
                if _name(node.func) in ("Generator", "seed") and _name(owner) not in ("torch", "random", "cuda"):
                    continue
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {ast.unparse(node.func)}(")
    assert not found, "generators made outside fpsynth/seeds.py:\n" + "\n".join(found)


def test_every_stream_used_is_registered_and_every_registered_stream_is_used() -> None:
    used, literals = set(), set()
    for _, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            if not isinstance(node, ast.Call):
                continue
            names = [_name(node.func), *(_name(a) for a in node.args)]  # functools.partial(rng, seed, "x", ...)
            if _SEED_FUNCS & set(filter(None, names)):  # the stream: the first text argument (keys come after)
                texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                used.update(texts[:1])
    assert used, "no seeds call found: the walk is broken"
    assert not (used - set(STREAMS)), f"streams used but not registered: {sorted(used - set(STREAMS))}"
    assert not (set(STREAMS) - literals), f"streams registered but never used: {sorted(set(STREAMS) - literals)}"

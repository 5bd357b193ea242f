"""The reference fixtures' weights recipe (shared/fixtures/reference/README.md, "The weights recipe")."""

from __future__ import annotations

import pytest
import torch

from fpsynth.reference import fixtures
from fpsynth.reference.recipe import recipe_state_dict, recipe_tensor, seed_of


def need(filename: str):
    path = fixtures.REFERENCE_DIR / filename
    if not path.is_file():
        pytest.skip(f"reference fixture not found: {path}")
    return path


# The README's self-test: float32 values printed as doubles.
SELF_TEST = {
    ("model.input_layer.0.weight", (64, 3, 3, 3)): [0.22049014270305634, -0.20826540887355804, 0.013869471848011017],
    ("model.input_layer.1.running_var", (64,)): [2.1791107654571533, 2.3811440467834473, 2.0732760429382324],
    ("emotion_adapter.bias", (49,)): [0.09491793811321259, 0.06369221955537796, 0.05934375524520874],
}


@pytest.mark.parametrize("key,shape", list(SELF_TEST))
def test_readme_self_test_values_exact(key, shape):
    t = recipe_tensor(key, shape)
    assert t.dtype == torch.float32 and tuple(t.shape) == shape
    assert t.flatten()[:3].tolist() == SELF_TEST[(key, shape)]


def test_leaf_rules_and_dtypes():
    assert seed_of("") == 0
    nbt = recipe_tensor("x.norm.num_batches_tracked", (), "int64")
    assert nbt.dtype == torch.int64 and nbt.shape == () and nbt.item() == 0
    assert recipe_tensor("a.b", (3,), torch.int64).tolist() == [0, 0, 0]
    w = recipe_tensor("a.weight", (1000,), "F32")
    assert 0.5 <= w.min() and w.max() < 1.5
    b = recipe_tensor("a.bias", (1000,))
    assert -0.1 <= b.min() and b.max() < 0.1
    rv = recipe_tensor("a.running_var", (1000,))
    assert 1 <= rv.min() and rv.max() < 4
    scalar = recipe_tensor("label_mapping.scaler.0", ())
    assert scalar.shape == () and -0.1 <= scalar.item() < 0.1
    conv = recipe_tensor("a.weight", (8, 4, 3, 3))
    bound = (3 / 36) ** 0.5
    assert conv.abs().max() <= bound and conv.abs().max() > 0.9 * bound
    # deterministic, and a function of the key: another key gives other values
    assert torch.equal(conv, recipe_tensor("a.weight", (8, 4, 3, 3)))
    assert not torch.equal(conv, recipe_tensor("b.weight", (8, 4, 3, 3)))
    # chunked generation equals one pass: element i does not depend on the tensor's size
    assert torch.equal(recipe_tensor("v.bias", (5,)), recipe_tensor("v.bias", (3 << 20,))[:5])
    assert recipe_tensor("v.bias", (4,), "F64").dtype == torch.float64
    with pytest.raises(ValueError, match="not all integers"):
        recipe_tensor("head.weight", ("C", 512))


def test_recipe_state_dict_keys_and_scale():
    layout = {
        "a.weight": {"shape": [2, 3], "dtype": "float32"},
        "a.bias": {"shape": [2], "dtype": "float32"},
        "n.num_batches_tracked": {"shape": [], "dtype": "int64"},
    }
    sd = recipe_state_dict(layout)
    assert list(sd) == list(layout)
    assert sd["n.num_batches_tracked"].dtype == torch.int64
    only = recipe_state_dict(layout, keys=["a.bias"], scale={"a.bias": 0.1})
    assert list(only) == ["a.bias"]
    assert torch.equal(only["a.bias"], sd["a.bias"] * 0.1)
    with pytest.raises(KeyError):
        recipe_state_dict(layout, keys=["missing"])


SCALED = ("ema_model.averaged_model.out.2.weight", "ema_model.averaged_model.out.2.bias")


@pytest.mark.parametrize(
    "name,scaled",
    [("CCFExp_reduced", SCALED), ("dcface_3x3_reduced", ()), ("dcface_5x5_reduced", ())],
)
def test_stored_reduced_weights_are_the_recipe(name, scaled):
    need(f"{name}.parity.safetensors")
    stored = fixtures.read_weights(name)
    layout = {k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in stored.items()}
    assert all(k in stored for k in scaled)
    made = recipe_state_dict(layout, scale={k: 0.1 for k in scaled})
    bad = [k for k in stored if not (made[k].dtype == stored[k].dtype and torch.equal(made[k], stored[k]))]
    assert not bad, f"{len(bad)} stored tensors differ from the recipe, e.g. {bad[:5]}"
    if scaled:  # and the plain recipe is not what is stored for those two
        plain = recipe_state_dict(layout, keys=scaled)
        assert all(not torch.equal(plain[k], stored[k]) for k in scaled)


def test_layout_reader_and_recipe_shapes():
    need("adaface_ir50.layout.json")
    layout = fixtures.read_layout("adaface_ir50")
    assert len(layout) == 471 and layout["model.input_layer.0.weight"] == {"shape": [64, 3, 3, 3], "dtype": "float32"}
    keys = [k for k in layout if k.startswith("model.body.0.")]
    sd = recipe_state_dict(layout, keys)
    assert all(list(sd[k].shape) == layout[k]["shape"] for k in keys)


def test_assert_close_rel_message():
    ref = torch.tensor([1.0, -2.0])
    assert fixtures.assert_close_rel(ref + 1e-5, ref) == pytest.approx(5e-6, rel=1e-2)
    with pytest.raises(AssertionError, match=r"x: max\|out - ref\| = 0\.0078125 > 0\.0001 \* max\|ref\| = 0\.0002"):
        fixtures.assert_close_rel(ref + 0.0078125, ref, name="x")
    with pytest.raises(AssertionError, match="shape"):
        fixtures.assert_close_rel(ref[:1], ref)
    with pytest.raises(AssertionError):
        fixtures.assert_close_rel(torch.tensor([float("nan"), 0.0]), ref)

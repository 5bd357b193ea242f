"""The sampling plan: exact stratified quotas, independence of shards, seeds, plan file, scale-out split."""

from __future__ import annotations

import collections

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fpsynth.config import ConfigError, from_dict
from fpsynth.data.dataset import EmptySelectionError
from fpsynth.generate.config import GenerateConfig, PlanConfig, ShardSpec, StyleSplit
from fpsynth.generate.plan import PLAN_FILE, Dealer, Plan, StylePool, allocate, item_seed, plan_table, write_plan
from fpsynth.generate.workers import Worker
from helpers.generate import EXPRESSIONS, SEVERITIES, make_identities, make_prepare


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> StylePool:
    return StylePool.from_manifest(make_prepare(tmp_path_factory.mktemp("prep")), PlanConfig())


def all_rows(plan: Plan) -> pd.DataFrame:
    return pd.concat([plan.shard_rows(s) for s in range(plan.n_shards)], ignore_index=True)


def test_allocate_is_exact_and_proportional():
    assert allocate([1, 1, 1], 10) == [4, 3, 3]  # ties go to the earlier stratum
    assert allocate([2, 1, 0], 7) == [5, 2, 0]
    for count in (1, 7, 100, 12345):
        q = allocate([0.5, 1.5, 3.0, 1.0], count)
        assert sum(q) == count
        assert all(abs(qi - count * w / 6.0) < 1 for qi, w in zip(q, [0.5, 1.5, 3.0, 1.0]))


@pytest.mark.parametrize("quotas", [[5, 3, 2], [1, 0, 1], [83] * 8 + [84] * 4, [400, 1, 99, 500]])
def test_dealer_meets_quotas_exactly_and_every_prefix_is_proportional(quotas):
    dealer, total = Dealer(quotas), sum(quotas)
    ranks = collections.defaultdict(list)
    for k in range(1, total + 1):
        s, r = dealer.deal()
        ranks[s].append(r)
        assert all(abs(t - k * q / total) < 1.5 for t, q in zip(dealer.taken, quotas))
    assert dealer.taken == quotas
    assert all(r == list(range(len(r))) for r in ranks.values())  # ranks count up inside each stratum


def test_style_pool_uses_the_test_split_by_default(pool):
    assert set(pool.frames["split"]) == {"test"}
    assert len(pool.frames) == len(SEVERITIES) * len(EXPRESSIONS) * 2


def test_plan_meets_quotas_exactly_and_spreads_over_shards(pool):
    plan = Plan(1000, PlanConfig(shard_size=100), 123, make_identities(3), pool)
    rows = all_rows(plan)
    assert rows["item_index"].tolist() == list(range(1000))
    assert rows["item_id"].is_unique and rows["file_name"].is_unique
    strata = collections.Counter(zip(rows["severity"], rows["expression"]))
    assert len(strata) == 12 and sorted(strata.values()) == [83] * 8 + [84] * 4  # 1000 / 12 by largest remainders
    for s in range(plan.n_shards):  # each shard is itself stratified (100 / 12 = 8.3 per stratum)
        per = collections.Counter(zip(*[plan.shard_rows(s)[c] for c in ("severity", "expression")]))
        assert len(per) == 12 and max(per.values()) - min(per.values()) <= 2
    # inside every stratum: frames and identities used evenly, and all 2 x 3 (frame, identity) pairs alike
    for _, group in rows.groupby(["severity", "expression"]):
        for column in ("style_frame", "identity_id"):
            counts = group[column].value_counts()
            assert counts.max() - counts.min() <= 1
        pairs = group.groupby(["style_frame", "identity_id"]).size()
        assert len(pairs) == 6 and pairs.max() - pairs.min() <= 1
    ids = rows["identity_id"].value_counts()
    assert len(ids) == 3 and ids.max() - ids.min() <= 12
    assert set(rows["style_frame"]) <= set(pool.frames["frame_id"])


def test_weights_change_the_allocation_and_zero_leaves_out(pool):
    cfg = PlanConfig(severity_weights={"complete": 3.0, "normal": 0.0}, expression_weights={"smile": 2.0})
    rows = all_rows(Plan(800, cfg, 1, make_identities(2), pool))
    sev = rows["severity"].value_counts()
    assert "normal" not in sev
    assert sev["complete"] == pytest.approx(3 * sev["mild"], rel=0.02)
    expr = rows["expression"].value_counts()
    assert expr["smile"] == pytest.approx(2 * expr["eye_close"], rel=0.02)
    assert len(rows) == 800


def test_shards_and_seeds_do_not_depend_on_each_other(pool):
    ids = make_identities(3)
    plan = Plan(50, PlanConfig(shard_size=7), 9, ids, pool)
    again = Plan(50, PlanConfig(shard_size=7), 9, ids, pool)
    assert plan.key() == again.key()
    pd.testing.assert_frame_equal(plan.shard_rows(5), again.shard_rows(5))  # computed alone, same rows
    assert plan.shard_rows(7)["item_index"].tolist() == [49]  # the last shard holds the remainder
    assert plan.shard_rows(2).equals(again.shard_rows(2))  # asked for out of order: the same rows
    rows = all_rows(plan)
    assert rows["seed"].tolist() == [item_seed(9, i) for i in rows["item_id"]]
    assert item_seed(9, "00000003") != item_seed(10, "00000003")
    assert rows["seed"].is_unique and (rows["seed"] >= 0).all()
    other = Plan(60, PlanConfig(shard_size=7), 9, ids, pool)  # a different plan, the same item seeds
    assert other.shard_rows(0)["seed"].tolist() == plan.shard_rows(0)["seed"].tolist()
    assert other.key() != plan.key()


def test_plan_file_has_one_row_group_per_shard(tmp_path, pool):
    plan = Plan(23, PlanConfig(shard_size=5), 3, make_identities(2), pool)
    path = write_plan(tmp_path, plan)
    assert path == tmp_path / PLAN_FILE
    f = pq.ParquetFile(path)
    assert f.num_row_groups == 5
    pd.testing.assert_frame_equal(f.read_row_group(4).to_pandas(), plan_table(plan.shard_rows(4)).to_pandas())
    mtime = path.stat().st_mtime_ns
    write_plan(tmp_path, plan)  # the same plan is not rewritten
    assert path.stat().st_mtime_ns == mtime


def test_bad_plan_settings_are_user_errors(tmp_path, pool):
    with pytest.raises(ConfigError, match="valid: normal"):
        from_dict(PlanConfig, {"severity_weights": {"terrible": 1.0}})
    with pytest.raises(ConfigError, match=">= 0"):
        PlanConfig(expression_weights={"smile": -1.0})
    with pytest.raises(EmptySelectionError, match="expressions: brow_raise, eye_close, smile"):
        Plan(10, PlanConfig(expression_weights={"smiel": 2.0}), 0, make_identities(1), pool)
    with pytest.raises(EmptySelectionError, match="weight 0"):
        Plan(10, PlanConfig(severity_weights={s: 0.0 for s in SEVERITIES}), 0, make_identities(1), pool)
    prep = make_prepare(tmp_path / "prep", frames_per_stratum=1)
    with pytest.raises(EmptySelectionError, match="phases"):
        StylePool.from_manifest(prep, PlanConfig(phases=("dissipation",)))
    assert len(StylePool.from_manifest(prep, PlanConfig(split=StyleSplit.ALL)).frames) == 24
    with pytest.raises(ConfigError):
        from_dict(GenerateConfig, {"count": 0})


@pytest.mark.parametrize("text", ["2/2", "a/b", "1", "-1/3", "0/0"])
def test_bad_shard_specs_are_refused(text):
    with pytest.raises(ConfigError, match="i/n"):
        GenerateConfig(shard=text)


def test_machines_and_ranks_split_the_shards_without_overlap():
    assert ShardSpec.parse("1/3") == ShardSpec(1, 3)
    taken = []
    for i in range(3):
        for rank in range(2):
            taken += Worker(ShardSpec(i, 3), rank, 2).shards(20)
    assert sorted(taken) == list(range(20))
    assert Worker(ShardSpec(1, 3), 1, 2).shards(20) == [4, 10, 16]
    assert Worker().shards(4) == [0, 1, 2, 3]

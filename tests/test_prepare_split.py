"""Preparation (threshold, dedupe, k-core, remap), splits and their invariants, the split cache."""

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest

from recsys.data import Pairs, PrepConfig, build_split, load_split
from recsys.data.cache import ENTITIES_FILE, fingerprint
from recsys.data.interactions import Interactions, entity_frame, make_frame
from recsys.data.prepare import k_core, prepare
from recsys.data.split import split
from recsys.errors import RecsysError


def _raw(n_users=40, n_items=30, per_user=12, seed=0, name="toy"):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratings = rng.integers(1, 6, users.shape[0])
    ts = rng.permutation(users.shape[0]).astype(float)
    frame = make_frame([f"u{u}" for u in users], [f"i{i}" for i in items], ratings, ts)
    return Interactions(name, frame, {f"i{i}": f"text {i}" for i in range(n_items)})


def test_threshold_dedupe_and_remap():
    frame = make_frame(
        ["b", "b", "a", "a", "a", "c"],
        [10, 10, 30, 10, 20, 20],
        [5, 4, 4, 3, 5, None],
        [2, 1, 3, 4, 5, 6],
    )
    p = prepare(Interactions("t", frame, {10: "ten", 20: "twenty"}), threshold=4)
    # (a,10) is rated 3: gone. (b,10) twice: once. (c,20) has no rating: an implicit positive.
    assert p.user_ids.tolist() == ["a", "b", "c"]
    assert p.item_ids.tolist() == [10, 20, 30]
    pairs = sorted(zip(p.users.tolist(), p.items.tolist(), strict=True))
    assert pairs == [(0, 1), (0, 2), (1, 0), (2, 1)]
    # The earliest of the duplicates is kept.
    assert p.timestamps[(p.users == 1)].tolist() == [1.0]
    assert p.item_text == ["ten", "twenty", ""]


def test_k_core_is_iterative_and_idempotent():
    # Item 2 has one user; removing it leaves user 2 with one item, which then goes too.
    users = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    items = np.array([0, 1, 0, 1, 1, 2, 3, 3])
    keep = k_core(users, items, min_user=2, min_item=2)
    assert keep.tolist() == [True, True, True, True, False, False, True, True]
    again = k_core(users[keep], items[keep], 2, 2)
    assert again.all()


def test_everything_filtered_is_a_clear_error():
    with pytest.raises(RecsysError, match="threshold"):
        prepare(_raw(), threshold=6)
    with pytest.raises(RecsysError, match="k-core"):
        prepare(_raw(), min_user_interactions=1000)


@pytest.mark.parametrize(
    "strategy,kwargs",
    [("ratio", {}), ("loo", {}), ("loo", {"by_time": True}), ("temporal", {})],
)
def test_split_invariants(strategy, kwargs):
    p = prepare(_raw(), threshold=None)
    s = split(p, strategy, seed=3, **kwargs)
    keys = [set(part.keys(1000).tolist()) for part in (s.train, s.val, s.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert len(s.train) + len(s.val) + len(s.test) + s.counts.get(
        "heldout_dropped_no_train", 0
    ) == len(p.users)
    train_users = set(s.train.users.tolist())
    assert set(s.val.users.tolist()) <= train_users
    assert set(s.test.users.tolist()) <= train_users


def test_ratio_split_sizes_and_seed():
    p = prepare(_raw(per_user=10), threshold=None)
    s = split(p, "ratio", (0.8, 0.1, 0.1), seed=1)
    # 10 items per user: 8 / 1 / 1 for each of the 40 users.
    assert np.bincount(s.val.users).tolist() == [1] * 40
    assert np.bincount(s.test.users).tolist() == [1] * 40
    same = split(p, "ratio", (0.8, 0.1, 0.1), seed=1)
    other = split(p, "ratio", (0.8, 0.1, 0.1), seed=2)
    assert np.array_equal(s.test.items, same.test.items)
    assert not np.array_equal(s.test.items, other.test.items)


def test_loo_by_time_holds_out_the_latest():
    frame = make_frame(["u"] * 4 + ["v"] * 2, [1, 2, 3, 4, 1, 2], None, [10, 40, 20, 30, 1, 2])
    p = prepare(Interactions("t", frame), threshold=None)
    s = split(p, "loo", by_time=True)
    assert p.item_ids[s.test.items].tolist() == [2]  # u's latest (t=40)
    assert p.item_ids[s.val.items].tolist() == [4]  # u's second latest (t=30)
    # v has two interactions: too small to split, so it stays in train only and is counted.
    assert s.counts["train_only_users"] == 1


def test_temporal_split_cuts_by_time():
    p = prepare(_raw(), threshold=None)
    s = split(p, "temporal", (0.7, 0.15, 0.15))
    ts = dict(
        zip(
            zip(p.users.tolist(), p.items.tolist(), strict=True), p.timestamps.tolist(), strict=True
        )
    )
    latest_train = max(
        ts[k] for k in zip(s.train.users.tolist(), s.train.items.tolist(), strict=True)
    )
    earliest_test = min(
        ts[k] for k in zip(s.test.users.tolist(), s.test.items.tolist(), strict=True)
    )
    assert latest_train < earliest_test


def test_bad_split_parameters():
    p = prepare(_raw(), threshold=None)
    with pytest.raises(RecsysError, match="sum to"):
        split(p, "ratio", (0.8, 0.1, 0.2))
    with pytest.raises(RecsysError, match="unknown split"):
        split(p, "kfold")
    no_time = Interactions("t", make_frame(["a", "a", "a"], [1, 2, 3]))
    with pytest.raises(RecsysError, match="timestamps"):
        split(prepare(no_time, threshold=None), "temporal")


def test_cache_hit_and_invalidation(tmp_path):
    raw = _raw()
    first = load_split(raw, cache_dir=tmp_path)
    assert (tmp_path / "splits" / first.fingerprint / "meta.json").exists()
    again = load_split(raw, cache_dir=tmp_path)
    assert again.fingerprint == first.fingerprint
    assert np.array_equal(again.test.items, first.test.items)
    assert again.item_text == first.item_text and list(again.user_ids) == list(first.user_ids)
    # Any preparation parameter, or the data itself, makes a new split.
    for config in (
        PrepConfig(seed=7),
        PrepConfig(threshold=3),
        PrepConfig(min_user_interactions=2),
        PrepConfig(split="loo"),
    ):
        assert load_split(raw, config=config, cache_dir=tmp_path).fingerprint != first.fingerprint
    changed = Interactions("toy", raw.frame.iloc[1:], raw.item_text)
    assert load_split(changed, cache_dir=tmp_path).fingerprint != first.fingerprint


@pytest.mark.parametrize("damaged", ["pairs.npz", "items.parquet", "meta.json"])
def test_a_corrupt_cached_split_is_made_again(tmp_path, damaged):
    raw = _raw()
    first = load_split(raw, cache_dir=tmp_path)
    entry = tmp_path / "splits" / first.fingerprint
    (entry / damaged).write_bytes((entry / damaged).read_bytes()[:10])  # cut short
    with pytest.warns(UserWarning, match="cannot be read"):
        again = load_split(raw, cache_dir=tmp_path)
    assert np.array_equal(again.test.items, first.test.items) and again.item_text == first.item_text
    assert load_split(raw, cache_dir=tmp_path).fingerprint == first.fingerprint  # cached again


def test_split_parquet_has_raw_ids(tmp_path):
    data = build_split(_raw(), PrepConfig(threshold=None))
    path = data.to_parquet(tmp_path / "split.parquet")
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["user_id", "item_id", "split"]
    assert len(frame) == len(data.train) + len(data.val) + len(data.test)
    assert set(frame["split"]) == {"train", "val", "test"}
    assert frame["user_id"].str.startswith("u").all()
    assert not list(tmp_path.glob(".*tmp"))


def test_trial_copy_has_no_test():
    data = build_split(_raw(), PrepConfig(threshold=None))
    trial = data.without_test()
    assert trial.test is None and "test" not in set(trial.split_frame()["split"])


def test_read_only_pairs_give_tensors_without_sharing():
    # Arrays from Ray's object store are read-only: tensors must not alias them.
    users, items = np.array([0, 1]), np.array([2, 3])
    users.flags.writeable = False
    items.flags.writeable = False
    pairs = Pairs(users, items)
    u, i = pairs.tensors()
    u[0] = 5
    assert users[0] == 0 and i.tolist() == [2, 3]


# --- item entities -------------------------------------------------------------------------


def _with_entities(raw: Interactions, n_entities: int = 5) -> Interactions:
    """Each of the toy's items linked to entities ``e(i % n)`` and ``e((i + 1) % n)``."""
    items = [f"i{i}" for i in range(30) for _ in range(2)]
    names = [f"e{(i + k) % n_entities}" for i in range(30) for k in range(2)]
    return dataclasses.replace(raw, item_entities=entity_frame(items, names))


def test_entities_follow_the_prepared_items():
    frame = make_frame(["a", "a", "b"], [10, 20, 30], [5, 3, 4])
    links = entity_frame(
        [10, 10, 20, 30, 30, 99], ["drama", "Tom", "comedy", "drama", "drama", "drama"], "x:"
    )
    p = prepare(Interactions("t", frame, item_entities=links), threshold=4)
    # Item 20 (rated 3) is gone, and "comedy" with it; 99 is no item; 10 -> 0, 30 -> 1.
    assert p.item_ids.tolist() == [10, 30]
    assert list(p.item_entities.names) == ["x:Tom", "x:drama"]  # sorted names
    ie = p.item_entities
    pairs = sorted(zip(ie.items.tolist(), ie.entities.tolist(), strict=True))
    assert pairs == [(0, 0), (0, 1), (1, 1)]
    assert prepare(Interactions("t", frame), threshold=4).item_entities is None


def test_entities_naming_no_prepared_item_are_a_warning(caplog):
    frame = make_frame(["a"], [10], [5])
    links = entity_frame(["10"], ["drama"])  # a string id: the items are integers
    with caplog.at_level(logging.WARNING):
        p = prepare(Interactions("t", frame, item_entities=links), threshold=4)
    assert len(p.item_entities) == 0 and "same type" in caplog.text


def test_split_cache_keeps_entities_and_keys_on_them(tmp_path):
    raw = _raw()
    # Without entities the fingerprint is the one from before entities existed (d8d11b7), so
    # splits cached then are still found.
    assert fingerprint(raw, PrepConfig()) == "76b733ca1d8056fc"
    linked = _with_entities(raw)
    first = load_split(linked, cache_dir=tmp_path)
    assert first.fingerprint != fingerprint(raw, PrepConfig())
    assert first.summary["entities_prepared"] == 5 and first.item_entities.n_entities == 5
    assert (tmp_path / "splits" / first.fingerprint / ENTITIES_FILE).exists()
    again = load_split(linked, cache_dir=tmp_path)
    for field in ("items", "entities", "names"):
        np.testing.assert_array_equal(
            getattr(again.item_entities, field), getattr(first.item_entities, field)
        )
    other = _with_entities(raw, n_entities=4)
    assert load_split(other, cache_dir=tmp_path).item_entities.n_entities == 4
    assert load_split(raw, cache_dir=tmp_path).item_entities is None


def test_an_entry_cached_before_entities_existed_reads_as_none(tmp_path):
    raw = _raw()
    first = load_split(raw, cache_dir=tmp_path)
    meta_path = tmp_path / "splits" / first.fingerprint / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["item_entities"]  # as the cache wrote it before
    meta_path.write_text(json.dumps(meta))
    assert load_split(raw, cache_dir=tmp_path).item_entities is None


def test_a_cached_split_missing_its_entities_is_made_again(tmp_path):
    linked = _with_entities(_raw())
    first = load_split(linked, cache_dir=tmp_path)
    (tmp_path / "splits" / first.fingerprint / ENTITIES_FILE).unlink()
    with pytest.warns(UserWarning, match="cannot be read"):
        again = load_split(linked, cache_dir=tmp_path)
    assert len(again.item_entities) == len(first.item_entities)

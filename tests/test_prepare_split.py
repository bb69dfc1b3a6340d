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
    [("ratio", {}), ("loo", {}), ("loo", {"by_time": True}), ("temporal", {}), ("global", {})],
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


# --- the global random split -------------------------------------------------------------


def test_global_split_cuts_all_pairs_not_each_users():
    # One user with ten distinct items: 6/2/2 of all pairs. No held-out item is ever trained
    # on (each appears once): those cold items stay in the catalogue.
    one_user = Interactions("t", make_frame(["u"] * 10, list(range(10)), None, None))
    s = split(prepare(one_user, threshold=None), "global", (0.6, 0.2, 0.2), seed=5)
    assert (len(s.train), len(s.val), len(s.test)) == (6, 2, 2)
    assert s.counts["heldout_dropped_no_train"] == 0
    assert sorted(np.concatenate([s.train.items, s.val.items, s.test.items])) == list(range(10))
    # Ten users with one pair each: the four held out have no training pair, so they are dropped.
    singles = Interactions("t", make_frame([f"u{i}" for i in range(10)], [0] * 10, None, None))
    s = split(prepare(singles, threshold=None), "global", (0.6, 0.2, 0.2), seed=5)
    assert (len(s.train), len(s.val), len(s.test)) == (6, 0, 0)
    assert s.counts["heldout_dropped_no_train"] == 4


def test_global_split_is_seeded_and_not_per_user():
    p = prepare(_raw(per_user=10), threshold=None)
    s = split(p, "global", seed=1)  # default 80/10/10 of the 400 pairs
    assert len(s.train) == 320 and len(s.val) + len(s.test) == 80
    # Unlike the ratio split (one val and one test item each), users hold out unequal shares.
    assert len(set(np.bincount(s.test.users, minlength=40).tolist())) > 1
    again, other = split(p, "global", seed=1), split(p, "global", seed=2)
    assert np.array_equal(s.test.items, again.test.items) and np.array_equal(
        s.test.users, again.test.users
    )
    assert not np.array_equal(s.test.keys(30), other.test.keys(30))


# --- splits the source gives -----------------------------------------------------------------


def _tagged(rows, name="t"):
    """Raw interactions with the split column split files give: rows (user, item, rating, split)."""
    users, items, ratings, tags = zip(*rows, strict=True)
    frame = make_frame(list(users), list(items), list(ratings), None)
    frame["split"] = list(tags)
    return Interactions(name, frame, {i: f"text {i}" for i in items})


TAGGED = [
    ("a", 1, 5, "train"), ("a", 2, 4, "train"), ("a", 3, 5, "train"), ("a", 5, 4, "train"),
    ("b", 1, 5, "train"),
    ("a", 4, 5, "test"),  # item 4 is only in the test file
    ("b", 3, 4, "test"),
    ("c", 2, 5, "test"),  # user c is only in the test file
    ("b", 2, 1, "test"),  # below the threshold
]  # fmt: skip


def _named(data, pairs):
    return sorted(
        zip(data.user_ids[pairs.users].tolist(), data.item_ids[pairs.items].tolist(), strict=True)
    )


def test_split_files_keep_their_split_and_carve_validation_from_train():
    data = build_split(_tagged(TAGGED), PrepConfig(split="files", val_share=0.5, seed=0))
    # a's four training pairs give two to validation (floor(4 x 0.5)); b's single one stays.
    val = _named(data, data.val)
    assert len(val) == 2 and {u for u, _ in val} == {"a"}
    assert _named(data, data.train) == sorted(
        {("a", 1), ("a", 2), ("a", 3), ("a", 5), ("b", 1)} - set(val)
    )
    # The threshold applies to every file; c has no training pair: its test pair is dropped.
    assert _named(data, data.test) == [("a", 4), ("b", 3)]
    assert data.summary["heldout_dropped_no_train"] == 1
    assert data.summary["train_only_users"] == 1  # b: one training pair, none to carve
    assert data.summary["val_carved_from_train"] == 2
    # The item only in the test file stays in the catalogue, with its text.
    assert data.item_ids.tolist() == [1, 2, 3, 4, 5] and data.item_text[3] == "text 4"
    carved_again = build_split(_tagged(TAGGED), PrepConfig(split="files", val_share=0.5, seed=0))
    assert _named(carved_again, carved_again.val) == val


def test_a_validation_file_is_taken_as_it_is_and_k_core_spans_every_file():
    rows = [*TAGGED, ("a", 6, 5, "val"), ("d", 6, 5, "val")]  # d: only in the validation file
    data = build_split(_tagged(rows), PrepConfig(split="files"))
    assert _named(data, data.val) == [("a", 6)]
    assert data.summary["heldout_dropped_no_train"] == 2  # c's test pair, d's validation pair
    assert data.summary["val_carved_from_train"] == 0
    # k-core over all files: b has two positives (a train one, a test one): kept; c, d go.
    cored = build_split(_tagged(rows), PrepConfig(split="files", min_user_interactions=2))
    assert cored.user_ids.tolist() == ["a", "b"]
    assert _named(cored, cored.test) == [("a", 4), ("b", 3)]


def test_a_predefined_split_needs_tagged_interactions():
    with pytest.raises(RecsysError, match="needs interactions tagged train/val/test"):
        split(prepare(_raw(), threshold=None), "files")
    bad = _tagged([("a", 1, 5, "train"), ("a", 2, 5, "holdout")])
    with pytest.raises(RecsysError, match="'holdout' is not one of"):
        build_split(bad, PrepConfig(split="files"))


# --- low ratings as seen -----------------------------------------------------------------


def test_low_ratings_seen_are_no_positives_but_kept_as_seen():
    frame = make_frame(
        ["a", "a", "a", "a", "a", "a", "b", "b", "b", "c"],
        [1, 2, 3, 3, 4, 5, 1, 2, 9, 2],
        [5, 2, 4, 1, 5, 5, 3, 5, 1, 5],  # (a,3) rated 4 and 1: a positive; 9 has no positive
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    )
    raw = Interactions("t", frame)
    dropped = build_split(raw, PrepConfig(split="loo"))
    seen = build_split(raw, PrepConfig(split="loo", low_ratings="seen"))
    assert dropped.seen_only is None and "seen_only" not in dropped.summary
    # The positives and their split are the same either way.
    for part in ("train", "val", "test"):
        assert _named(seen, getattr(seen, part)) == _named(dropped, getattr(dropped, part))
    # (a,2) and (b,1) are low; (a,3) is also a positive; item 9 was never kept by preparation.
    assert _named(seen, seen.seen_only) == [("a", 2), ("b", 1)]
    assert seen.summary["seen_only"] == 2
    assert set(seen.split_frame()["split"]) == {"train", "val", "test", "seen_only"}
    assert seen.without_test().seen_only is seen.seen_only  # validation masks them too
    with pytest.raises(RecsysError, match="unknown --low-ratings 'keep'"):
        build_split(raw, PrepConfig(low_ratings="keep"))


def test_seen_only_pairs_survive_the_cache(tmp_path):
    raw = _raw()
    first = load_split(raw, config=PrepConfig(low_ratings="seen"), cache_dir=tmp_path)
    again = load_split(raw, config=PrepConfig(low_ratings="seen"), cache_dir=tmp_path)
    assert len(first.seen_only) > 0 and again.fingerprint == first.fingerprint
    assert np.array_equal(again.seen_only.keys(100), first.seen_only.keys(100))
    assert load_split(raw, cache_dir=tmp_path).fingerprint != first.fingerprint


def test_splits_made_before_the_new_parameters_keep_their_fingerprints():
    # Printed by the previous version of the project for the same data and parameters.
    from recsys.data.cache import fingerprint

    assert fingerprint(_raw(), PrepConfig()) == "76b733ca1d8056fc"
    assert fingerprint(_raw(), PrepConfig(split="loo", seed=3)) == "3ad5599cb60f8e39"
    # A new parameter at a value of its own makes a new split.
    assert fingerprint(_raw(), PrepConfig(low_ratings="seen")) != "76b733ca1d8056fc"
    assert fingerprint(_raw(), PrepConfig(split="global")) != "76b733ca1d8056fc"


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

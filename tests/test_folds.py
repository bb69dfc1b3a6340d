"""--folds K (``recsys.data.folds``, ``recsys.tuning.folds``): fold layouts checked for
disjointness and coverage, the configs refused, fold runs scored and combined over folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.data import PrepConfig, load_folds
from recsys.data.folds import fold_parts
from recsys.data.interactions import Interactions, make_frame
from recsys.data.predefined import check_config
from recsys.errors import RecsysError


def _raw(n_users=12, n_items=25, seed=0) -> Interactions:
    """Users with 1..n_users positives each (user 0 has one: it cannot be tested)."""
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, n_users + 1)
    users = np.repeat(np.arange(n_users), sizes)
    items = np.concatenate([rng.choice(n_items, s, replace=False) for s in sizes])
    frame = make_frame(users, items, None, np.arange(users.size, dtype=float))
    return Interactions("toy", frame, {})


def _keys(data, part: str) -> set[tuple]:
    p = getattr(data, part)
    return set(zip(data.user_ids[p.users].tolist(), data.item_ids[p.items].tolist(), strict=True))


def test_fold_parts_deal_each_user_evenly_and_keep_single_pairs_in_train():
    users = np.array([0] * 7 + [1] + [2] * 3)
    part = fold_parts(users, 3, np.random.default_rng(0))
    assert part[7] == -1  # user 1's one pair: there is no fold that could test it
    assert sorted(np.bincount(part[:7], minlength=3).tolist()) == [2, 2, 3]
    assert sorted(part[8:].tolist()) == [0, 1, 2]
    again = fold_parts(users, 3, np.random.default_rng(0))
    assert np.array_equal(part, again)
    # Over many users of four pairs, parts differ by at most one and each part gets extras.
    many = np.repeat(np.arange(300), 4)
    parts = fold_parts(many, 3, np.random.default_rng(1)).reshape(300, 4)
    counts = np.stack([np.bincount(p, minlength=3) for p in parts])
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()
    assert set(np.argmax(counts, axis=1).tolist()) == {0, 1, 2}


def test_per_user_folds_cover_every_interaction_once_and_are_disjoint(tmp_path):
    raw = _raw()
    config = PrepConfig(threshold=None, folds=3, seed=5, val_share=0.25)
    folds = load_folds(raw, config=config, cache_dir=tmp_path)
    assert len(folds) == 3
    everything = set(zip(raw.frame["user_id"].tolist(), raw.frame["item_id"].tolist(), strict=True))
    tests = [_keys(f, "test") for f in folds]
    for i, fold in enumerate(folds):
        train, val, test = (_keys(fold, s) for s in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == everything  # nothing dropped: every test user trains
        assert fold.summary["fold"] == i + 1 and fold.summary["fold_train_only_users"] == 1
        for j in range(i):
            assert not (tests[i] & tests[j])
    # Every pair of a user with at least two is tested in exactly one fold; user 0's never.
    assert set.union(*tests) == {p for p in everything if p[0] != 0}
    assert sum(map(len, tests)) == len(everything) - 1
    # Each user's test parts differ in size by at most one.
    for user in range(1, 12):
        sizes = [sum(1 for u, _ in t if u == user) for t in tests]
        assert max(sizes) - min(sizes) <= 1
    # Deterministic for a seed (cache or not), another seed another layout.
    again = load_folds(raw, config=config, cache_dir=tmp_path, use_cache=False)
    assert [_keys(f, "test") for f in again] == tests
    assert [_keys(f, "val") for f in again] == [_keys(f, "val") for f in folds]
    other = load_folds(raw, config=PrepConfig(threshold=None, folds=3, seed=6), use_cache=False)
    assert [_keys(f, "test") for f in other] != tests
    assert len({f.fingerprint for f in folds}) == 3


def _ml100k(folder: Path, n: int = 5) -> set[tuple]:
    """A GroupLens ml-100k folder whose u1..u5 are made as GroupLens' mku.sh makes them: the
    i-th fifth of u.data is ui.test, the rest ui.base."""
    rng = np.random.default_rng(0)
    lines = [
        f"{u}\t{i}\t5\t{t}"
        for t, (u, i) in enumerate(
            (u, i) for u in range(1, 7) for i in rng.choice(20, 5, False) + 1
        )
    ]  # 30 ratings, 6 users x 5 items
    lines = [lines[j] for j in rng.permutation(len(lines))]
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    (folder / "u.item").write_text(
        "".join(f"{i}|Movie {i}|||x|{'|'.join('0' * 19)}\n" for i in range(1, 21))
    )
    step = len(lines) // 5
    for f in range(1, n + 1):
        test = lines[(f - 1) * step : f * step]
        base = lines[: (f - 1) * step] + lines[f * step :]
        (folder / f"u{f}.test").write_text("\n".join(test) + "\n")
        (folder / f"u{f}.base").write_text("\n".join(base) + "\n")
    return {tuple(map(int, line.split("\t")[:2])) for line in lines}


def test_ml100k_folds_are_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path / "home"))
    everything = _ml100k(tmp_path / "ml-100k")
    config = PrepConfig(split="ml100k-fold", folds=5, val_share=0.2)
    folds = load_folds("ml-100k", tmp_path / "ml-100k", config, cache_dir=tmp_path / "cache")
    tests = [_keys(f, "test") for f in folds]
    assert all(len(t) == 6 for t in tests)  # each ui.test's six ratings
    assert set.union(*tests) == everything and sum(map(len, tests)) == len(everything)
    for fold in folds:
        parts = [_keys(fold, s) for s in ("train", "val", "test")]
        assert sum(map(len, parts)) == len(everything) == len(set.union(*parts))
    three = load_folds("ml-100k", tmp_path / "ml-100k", PrepConfig(split="ml100k-fold", folds=3))
    assert [_keys(f, "test") for f in three] == tests[:3]


@pytest.mark.parametrize(
    "config,expected",
    [
        (PrepConfig(folds=1), "at least 2"),
        (PrepConfig(folds=True), "at least 2"),
        (PrepConfig(split="loo", folds=3), "does not apply to --split loo"),
        (PrepConfig(split="temporal", folds=3), "does not apply to --split temporal"),
        (PrepConfig(split="ml100k-fold", folds=6), "has 5 folds"),
        (PrepConfig(folds=3, ratios=(0.8, 0.1, 0.1)), "--ratios does not apply with --folds"),
        (PrepConfig(folds=3, fold=4), "one of 1..3"),
        (PrepConfig(folds=3, val_share=1.5), "--val-share"),
    ],
)
def test_fold_parameters_that_do_not_fit_are_one_line_errors(config, expected):
    with pytest.raises(RecsysError, match=expected) as error:
        check_config(config, "toy", None)
    assert "\n" not in str(error.value)

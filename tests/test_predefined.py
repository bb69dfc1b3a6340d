"""Splits that come with the data: split files in the u1.base format and ML-100K's folds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recsys.data import PrepConfig, load_split
from recsys.data.predefined import check_config, read_split_file
from recsys.errors import RecsysError

# u.item lines for items 1-5: id|title|release|video release|url|19 genre flags (Drama: 9th).
DRAMA = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)
U_ITEM = "".join(f"{i}|Movie {i} (199{i})|01-Jan-1995||http://x|{DRAMA}\n" for i in range(1, 6))
# user, item, rating, timestamp. Item 5 is only in the test file, user 3 only in the test file.
U1_BASE = "1\t1\t5\t10\n1\t2\t4\t11\n1\t3\t5\t12\n1\t4\t4\t13\n2\t1\t5\t14\n2\t2\t2\t15\n"
U1_TEST = "1\t5\t5\t20\n2\t3\t4\t21\n3\t2\t5\t22\n2\t4\t1\t23\n"
U2_BASE = "1\t1\t5\t10\n2\t1\t5\t14\n2\t3\t4\t21\n"
U2_TEST = "1\t2\t4\t11\n"


def write_ml100k(folder: Path) -> Path:
    """A GroupLens ml-100k folder: u.data, u.item and two folds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(U1_BASE + U1_TEST)
    (folder / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    for name, text in (("u1.base", U1_BASE), ("u1.test", U1_TEST)):
        (folder / name).write_text(text)
    (folder / "u2.base").write_text(U2_BASE)
    (folder / "u2.test").write_text(U2_TEST)
    return folder


def _pairs(data, part):
    p = getattr(data, part)
    return sorted(
        zip(data.user_ids[p.users].tolist(), data.item_ids[p.items].tolist(), strict=True)
    )


@pytest.fixture(autouse=True)
def data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path / "home"))


def test_ml100k_fold_reads_u1_base_and_u1_test(tmp_path):
    folder = write_ml100k(tmp_path / "raw" / "ml-100k")
    config = PrepConfig(split="ml100k-fold", fold=1, val_share=0.25, seed=0)
    data = load_split("ml-100k", tmp_path / "raw", config, cache_dir=tmp_path / "cache")
    # Threshold 4 on both files: (2,2) and (2,4) go. User 3 has no training pair: dropped.
    assert _pairs(data, "test") == [(1, 5), (2, 3)]
    assert data.summary["heldout_dropped_no_train"] == 1
    # User 1's four training pairs give one to validation (floor(4 x 0.25)); user 2 has one.
    assert len(data.val) == 1 and data.user_ids[data.val.users].tolist() == [1]
    assert len(data.train) == 4
    # Item texts come from u.item, also for item 5 (only in the test file).
    assert data.item_ids.tolist() == [1, 2, 3, 4, 5]
    assert data.item_text[4] == "Movie 5 (1995). Genres: Drama"
    # Another fold is another split.
    other = load_split(
        "ml-100k", folder, PrepConfig(split="ml100k-fold", fold=2), cache_dir=tmp_path / "cache"
    )
    assert _pairs(other, "test") == [(1, 2)]
    assert other.fingerprint != data.fingerprint


def test_split_files_of_your_own_with_a_validation_file(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (tmp_path / "train.tsv").write_text("1\t1\t5\n1\t2\t5\n1\t3\t5\n2\t1\t5\n")  # no timestamps
    (tmp_path / "val.tsv").write_text("1\t4\n")  # no rating: an implicit positive
    (tmp_path / "test.tsv").write_text("2\t2\t5\n")
    config = PrepConfig(
        split="files",
        train_file=str(tmp_path / "train.tsv"),
        val_file=str(tmp_path / "val.tsv"),
        test_file=str(tmp_path / "test.tsv"),
    )
    data = load_split("ml-100k", folder, config, cache_dir=tmp_path / "cache")
    assert _pairs(data, "train") == [(1, 1), (1, 2), (1, 3), (2, 1)]
    assert _pairs(data, "val") == [(1, 4)]
    assert _pairs(data, "test") == [(2, 2)]
    assert data.item_text[0] == "Movie 1 (1991). Genres: Drama"
    # Moved files with the same content are the same split (the content is hashed, not paths).
    os.rename(tmp_path / "test.tsv", tmp_path / "moved.tsv")
    moved = PrepConfig(
        split="files",
        train_file=str(tmp_path / "train.tsv"),
        val_file=str(tmp_path / "val.tsv"),
        test_file=str(tmp_path / "moved.tsv"),
    )
    assert load_split("ml-100k", folder, moved, cache_dir=tmp_path / "cache").fingerprint == (
        data.fingerprint
    )
    (tmp_path / "moved.tsv").write_text("2\t3\t5\n")
    changed = load_split("ml-100k", folder, moved, cache_dir=tmp_path / "cache")
    assert changed.fingerprint != data.fingerprint and _pairs(changed, "test") == [(2, 3)]


def test_split_files_of_a_dataset_with_string_ids(tmp_path):
    from recsys.data.interactions import Interactions, make_frame

    raw = Interactions("mine", make_frame(["007"], ["x"]), {"x": "the x item", "y": "the y item"})
    (tmp_path / "train").write_text("007\tx\n007\tz\n008\tx\n")
    (tmp_path / "test").write_text("007\ty\n")
    config = PrepConfig(
        split="files",
        train_file=str(tmp_path / "train"),
        test_file=str(tmp_path / "test"),
        threshold=None,
    )
    data = load_split(raw, config=config, use_cache=False)
    assert data.user_ids.tolist() == ["007", "008"]  # the leading zero survives
    assert data.item_text == ["the x item", "the y item", ""]
    assert _pairs(data, "test") == [("007", "y")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        (" \n", "is empty"),
        ("1\t2\t3\t4\t5\n", "line 1 has 5 tab-separated fields"),
        ("1 2 5 10\n", "line 1 has 1 tab-separated fields"),
        ("1\t2\t5\t10\n1\t3\tfive\t11\n", "malformed line 2: rating is 'five'"),
        ("1\t2\t5\t10\n1\t3\t5\t11\t0\n", "malformed line"),
        ("1\t2\n\t3\n", "malformed line 2: user_id is missing"),
    ],
)
def test_a_malformed_split_file_is_named_with_its_line(tmp_path, text, expected):
    path = tmp_path / "u1.base"
    path.write_text(text)
    with pytest.raises(RecsysError, match=expected) as info:
        read_split_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_split_file_ids_must_be_the_datasets_kind(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u1.test").write_text("1\tx7\t5\t1\n")
    with pytest.raises(RecsysError, match="item_id 'x7' is not an integer"):
        load_split("ml-100k", folder, PrepConfig(split="ml100k-fold"), use_cache=False)


def _check(tmp_path, dataset="ml-100k", data_dir=None, **prep):
    return check_config(PrepConfig(**prep), dataset, data_dir)


def test_the_files_a_split_reads_are_checked_before_anything_is_read(tmp_path, monkeypatch):
    folder = write_ml100k(tmp_path / "ml-100k")
    assert _check(tmp_path, data_dir=tmp_path, split="ml100k-fold", fold=2) == {
        "train": folder / "u2.base",
        "test": folder / "u2.test",
    }
    assert _check(tmp_path, split="ratio") == {}
    real_access = os.access
    locked = folder / "u1.base"
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    with pytest.raises(RecsysError, match="u1.base is not readable"):
        _check(tmp_path, split="files", train_file=str(locked), test_file=str(locked))


@pytest.mark.parametrize(
    ("prep", "dataset", "expected"),
    [
        ({"split": "files"}, "ml-100k", "needs --train-file and --test-file"),
        ({"split": "files", "train_file": "a"}, "ml-100k", "needs --test-file"),
        ({"split": "files", "train_file": "/no/a", "test_file": "/no/b"}, "x", "does not exist"),
        ({"split": "files", "train_file": "/", "test_file": "/"}, "x", "/ is not a file"),
        ({"split": "files", "train_file": "a", "test_file": "b", "fold": 2}, "x", "--fold is"),
        ({"split": "ratio", "train_file": "a"}, "ml-100k", "--train-file is for --split files"),
        ({"split": "loo", "fold": 1, "val_share": 0.2}, "x", "--fold, --val-share are for"),
        ({"split": "ml100k-fold", "fold": 6}, "ml-100k", "--fold must be one of 1, 2, 3, 4, 5"),
        ({"split": "ml100k-fold", "fold": 0}, "ml-100k", "--fold must be one of"),
        ({"split": "ml100k-fold"}, "ml-1m", "MovieLens-100K's own folds, not 'ml-1m'"),
        ({"split": "ml100k-fold"}, "ml-100k", "the cached and RecBole copies have no folds"),
        ({"split": "ml100k-fold", "test_file": "b"}, "ml-100k", "drop --test-file"),
        ({"split": "ml100k-fold", "ratios": (0.8, 0.1, 0.1)}, "ml-100k", "--ratios does not"),
        ({"split": "files", "val_share": 1.0}, "x", "--val-share 1.0 must be a fraction"),
        ({"split": "files", "val_share": 0}, "x", "--val-share 0 must be a fraction"),
    ],
)
def test_split_parameters_that_do_not_fit_are_one_line_errors(prep, dataset, expected):
    with pytest.raises(RecsysError, match=expected) as info:
        check_config(PrepConfig(**prep), dataset, None)
    assert "\n" not in str(info.value)


def test_a_fold_folder_without_the_fold_and_a_val_share_beside_a_val_file(tmp_path):
    (tmp_path / "u.data").write_text(U1_BASE)
    with pytest.raises(RecsysError, match="holds no u3.base and u3.test"):
        _check(tmp_path, data_dir=tmp_path, split="ml100k-fold", fold=3)
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(U2_BASE)
    with pytest.raises(RecsysError, match="drop one of the two"):
        _check(
            tmp_path,
            split="files",
            train_file=str(tmp_path / "a"),
            val_file=str(tmp_path / "b"),
            test_file=str(tmp_path / "c"),
            val_share=0.2,
        )


def test_split_files_summary_counts_add_up(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    data = load_split("ml-100k", folder, PrepConfig(split="ml100k-fold"), use_cache=False)
    s = data.summary
    assert s["train"] + s["val"] + s["test"] + s["heldout_dropped_no_train"] == s["after_k_core"]
    assert not np.intersect1d(data.train.keys(10), data.test.keys(10)).size

"""Dataset loaders: tiny files in each real format, with known counts and texts, and bad input."""

from __future__ import annotations

import gzip
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.data import movielens
from recsys.data.amazon import load_amazon2023
from recsys.data.files import data_home
from recsys.data.generic import load_generic
from recsys.data.goodbooks import load_goodbooks
from recsys.data.loaders import DATASETS, load_interactions
from recsys.data.movielens import load_ml1m, load_ml10m, load_ml100k
from recsys.errors import RecsysError

# --- ML-100K ---------------------------------------------------------------------------------

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881251000\n"
# id|title|release date|video release|url|19 genre flags (unknown, Action, Adventure, Animation,
# Children's, Comedy, ..., Drama (8), ..., Musical (12), ...)
FLAGS = {
    242: "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0",
    302: "0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0",
    267: "1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
}
U_ITEM = (
    f"242|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS[242]}\n"
    f"302|Misérables, Les (1995)|01-Jan-1995||http://y|{FLAGS[302]}\n"
    f"267|unknown||||{FLAGS[267]}\n"
)
TEXTS = {
    242: "Toy Story (1995). Genres: Animation, Children's, Comedy",
    302: "Misérables, Les (1995). Genres: Drama, Musical",
    267: "unknown",
}
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "242\tToy Story\t1995\tAnimation Children's Comedy\n"
    "302\tMisérables, Les\t1995\tDrama Musical\n"
    "267\tunkonwn\tunkonwn\tunknown\n"
)


def write_grouplens(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    return folder


def recbole_wheel(folder: Path) -> Path:
    path = folder / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(movielens.RECBOLE_PREFIX + ".inter", INTER)
        archive.writestr(movielens.RECBOLE_PREFIX + ".item", ITEM.encode("utf-8"))
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test reaches the network, and none touches the user's cache."""

    def refuse(dest: Path) -> Path:
        raise OSError("network disabled in tests")

    monkeypatch.setattr(movielens, "download_grouplens", refuse)
    monkeypatch.setattr(movielens, "download_recbole_wheel", refuse)
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path / "home"))


def check_ml100k_sample(data) -> None:
    assert data.name == "ml-100k"
    summary = data.summary()
    assert (summary["users"], summary["items"], summary["interactions"]) == (2, 2, 3)
    row = data.frame.iloc[2]
    assert (row.user_id, row.item_id, row.rating, row.timestamp) == (196, 302, 5.0, 881251000.0)
    assert data.item_text == TEXTS


def test_ml100k_from_grouplens_files(tmp_path):
    check_ml100k_sample(load_ml100k(write_grouplens(tmp_path / "raw")))


def test_ml100k_from_unzipped_folder(tmp_path):
    write_grouplens(tmp_path / "raw" / "ml-100k")
    check_ml100k_sample(load_ml100k(tmp_path / "raw"))


def test_ml100k_from_recbole_files(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(INTER)
    (tmp_path / "ml-100k.item").write_text(ITEM)
    check_ml100k_sample(load_ml100k(tmp_path))


def test_ml100k_fetches_the_recbole_wheel_then_uses_the_cache(tmp_path, monkeypatch):
    calls = []

    def fake_pip(dest: Path) -> Path:
        calls.append(dest)
        return recbole_wheel(dest)

    monkeypatch.setattr(movielens, "download_recbole_wheel", fake_pip)
    first = load_ml100k(cache_dir=tmp_path / "cache")
    check_ml100k_sample(first)
    assert len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "cache" / "ml-100k").iterdir()) == [
        "items.parquet",
        "ratings.parquet",
    ]

    second = load_ml100k(cache_dir=tmp_path / "cache")
    assert len(calls) == 1  # no second download
    assert second.source == str(tmp_path / "cache" / "ml-100k")
    check_ml100k_sample(second)
    pd.testing.assert_frame_equal(first.frame, second.frame)


def test_ml100k_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "download_recbole_wheel", recbole_wheel)
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path / "env"))
    assert data_home() == tmp_path / "env"
    load_ml100k()
    assert (tmp_path / "env" / "ml-100k" / "ratings.parquet").is_file()


def test_ml100k_prefers_the_grouplens_zip(tmp_path, monkeypatch):
    def fake_grouplens(dest: Path) -> Path:
        path = dest / "ml-100k.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("ml-100k/u.data", U_DATA)
            archive.writestr("ml-100k/u.item", U_ITEM.encode("latin-1"))
        return path

    def no_pip(dest: Path) -> Path:
        raise AssertionError("the wheel must not be fetched when GroupLens answers")

    monkeypatch.setattr(movielens, "download_grouplens", fake_grouplens)
    monkeypatch.setattr(movielens, "download_recbole_wheel", no_pip)
    check_ml100k_sample(load_ml100k(cache_dir=tmp_path / "cache"))


def test_ml100k_ignores_a_corrupt_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "ml-100k"
    cache.mkdir(parents=True)
    (cache / "ratings.parquet").write_text("not parquet")
    (cache / "items.parquet").write_text("not parquet")
    monkeypatch.setattr(movielens, "download_recbole_wheel", recbole_wheel)
    check_ml100k_sample(load_ml100k(cache_dir=tmp_path / "cache"))


def test_ml100k_says_what_it_tried_when_every_source_fails(tmp_path):
    with pytest.raises(RecsysError) as err:
        load_ml100k(cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "GroupLens" in message and "pip download recbole==1.2.1" in message
    assert "network disabled in tests" in message and "--data-dir" in message
    assert "\n" not in message


def test_grouplens_download_uses_a_short_timeout(monkeypatch):
    monkeypatch.setattr(movielens, "_check_resolves", lambda host, timeout: None)

    def no_connection(url, timeout):
        assert timeout <= 10
        raise OSError("connection refused")

    monkeypatch.setattr(movielens.urllib.request, "urlopen", no_connection)
    with pytest.raises(OSError):
        movielens.download_grouplens(Path("."))


@pytest.mark.slow
def test_ml100k_real_chain(tmp_path, monkeypatch, caplog):
    """The real sources (GroupLens, else the recbole wheel from the package index)."""
    monkeypatch.undo()
    caplog.set_level(logging.WARNING, logger=movielens.__name__)
    try:
        data = load_ml100k(cache_dir=tmp_path)
    except RecsysError as exc:
        pytest.skip(f"no ML-100K source reachable: {exc}")
    summary = data.summary()
    assert (summary["users"], summary["items"], summary["interactions"]) == (943, 1682, 100_000)
    assert data.item_text[1] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert set(data.frame["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert logged_warnings(caplog) == []


def test_ml100k_malformed_line(tmp_path):
    write_grouplens(tmp_path)
    (tmp_path / "u.data").write_text(U_DATA + "7\t8\tfive\t881250949\n")
    with pytest.raises(RecsysError, match=r"u\.data: malformed line 4: rating is 'five'"):
        load_ml100k(tmp_path)


def test_ml100k_too_many_fields(tmp_path):
    write_grouplens(tmp_path)
    (tmp_path / "u.data").write_text(U_DATA + "7\t8\t5\t881250949\t1\n")
    with pytest.raises(RecsysError, match=r"u\.data: malformed line .*line 4, saw 5"):
        load_ml100k(tmp_path)


def write_full_ml100k(folder: Path, lines: int = 100_000, titles: int = 1_682) -> Path:
    """GroupLens files with ML-100K's counts: 943 users, 1,682 movies, 100,000 ratings.

    Sorted by user like a real file cut short would be: users 1-42 rate 107 movies, the others
    106, and line i rates movie i % 1682 + 1. So the first 30,000 lines hold 283 users
    (42 * 107 + 240 * 106 = 29,934, then 66 lines of user 283) and all 1,682 movies.

    Args:
        lines: keep only the first ``lines`` lines of ``u.data``.
        titles: ``u.item`` holds movies 1 to ``titles``.
    """
    users = np.repeat(np.arange(1, 944), [107] * 42 + [106] * 901)
    rows = range(lines)
    (folder / "u.data").write_text(
        "".join(f"{users[i]}\t{i % 1682 + 1}\t{i % 5 + 1}\t{881250949 + i}\n" for i in rows)
    )
    (folder / "u.item").write_text(
        "".join(
            f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{FLAGS[302]}\n"
            for i in range(1, titles + 1)
        )
    )
    return folder


def logged_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


PUBLISHED = "but ML-100K has 943 users, 1,682 movies and 100,000 ratings"


def test_ml100k_full_data_loads_without_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=movielens.__name__)
    data = load_ml100k(write_full_ml100k(tmp_path))
    summary = data.summary()
    assert (summary["users"], summary["items"], summary["interactions"]) == (943, 1682, 100_000)
    assert logged_warnings(caplog) == []


def test_ml100k_warns_about_a_u_data_cut_short(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=movielens.__name__)
    data = load_ml100k(write_full_ml100k(tmp_path, lines=30_000))
    assert len(data.frame) == 30_000  # still loaded: a subset may be deliberate
    [message] = logged_warnings(caplog)
    assert f"{tmp_path / 'u.data'} has 283 users, 1,682 movies and 30,000 ratings, " in message
    assert PUBLISHED in message and "pass --data-dir with u.data and u.item" in message


def test_ml100k_warns_about_rated_movies_without_a_title(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=movielens.__name__)
    data = load_ml100k(write_full_ml100k(tmp_path, titles=100))
    assert len(data.item_text) == 100
    [message] = logged_warnings(caplog)  # the ratings are complete: no count warning
    assert f"1,582 of the 1,682 rated movies have no title in {tmp_path / 'u.item'}" in message
    assert "pass --data-dir with u.data and u.item" in message


def test_ml100k_warns_about_a_short_download_and_cache(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=movielens.__name__)
    monkeypatch.setattr(movielens, "download_recbole_wheel", recbole_wheel)
    cache = tmp_path / "cache" / "ml-100k"
    load_ml100k(cache_dir=tmp_path / "cache")
    load_ml100k(cache_dir=tmp_path / "cache")
    fetched, cached = logged_warnings(caplog)
    inter = f"recbole-1.2.1-py3-none-any.whl:{movielens.RECBOLE_PREFIX}.inter"
    assert fetched.startswith(f"ml-100k: {inter} has 2 users, 2 movies and 3 ratings, {PUBLISHED}")
    assert cached.startswith(f"ml-100k: {cache / 'ratings.parquet'} has 2 users, ")
    assert f"delete {cache} to fetch it again" in fetched and f"delete {cache}" in cached


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("u.data", "", "is empty"),
        ("u.data", " \n\t\n", "is empty"),
        ("ml-100k.inter", "", "is empty"),
        ("ml-100k.inter", INTER.split("\n")[0] + "\n", "holds no ratings"),  # header only
    ],
)
def test_ml100k_empty_ratings_file(tmp_path, name, text, says):
    if name == "u.data":
        write_grouplens(tmp_path)
    else:
        (tmp_path / "ml-100k.item").write_text(ITEM)
    (tmp_path / name).write_text(text)
    with pytest.raises(RecsysError) as err:
        load_ml100k(tmp_path)
    assert str(err.value).startswith(
        f"{tmp_path / name} {says}; download {movielens.GROUPLENS_URL}"
    )
    assert str(err.value).endswith("unzip it and pass --data-dir with u.data and u.item")


def test_ml100k_missing_required_file(tmp_path):
    (tmp_path / "u.data").write_text(U_DATA)
    with pytest.raises(RecsysError, match="must hold u.data and u.item"):
        load_ml100k(tmp_path)


def test_missing_data_directory(tmp_path):
    with pytest.raises(RecsysError, match="does not exist"):
        load_ml100k(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecsysError, match="is not a directory"):
        load_ml1m(tmp_path / "file")


def test_unreadable_data_directory(tmp_path, monkeypatch):
    locked = write_grouplens(tmp_path / "locked")
    # Root reads any directory whatever its mode, so permissions are denied through os.access.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    with pytest.raises(RecsysError, match="not readable"):
        load_ml100k(locked)


# --- ML-100K item entities: the knowledge graph, else genres ---------------------------------

# Items 242 and 302 stand for Freebase entities m.a and m.b. Triples whose head is an item's entity
# give its entities (m.a sequel m.b: the other movie is one too); m.x's own triple is not an item's.
KG = (
    "head_id:token\trelation_id:token\ttail_id:token\n"
    "m.a\tfilm.film.actor\tm.x\n"
    "m.a\tfilm.film.genre\tm.g\n"
    "m.b\tfilm.film.genre\tm.g\n"
    "m.b\tfilm.film.prequel\tm.a\n"
    "m.x\tfilm.actor.film\tm.a\n"
    "m.a\tfilm.film.starring\tm.x\n"
)
LINK = "item_id:token\tentity_id:token\n242\tm.a\n302\tm.b\n"
KG_LINKS = {(242, "m.x"), (242, "m.g"), (302, "m.g"), (302, "m.a")}
GENRE_LINKS = {
    (242, "genre:Animation"),
    (242, "genre:Children's"),
    (242, "genre:Comedy"),
    (302, "genre:Drama"),
    (302, "genre:Musical"),
}


def links(data) -> set[tuple]:
    return set(data.item_entities.itertuples(index=False, name=None))


def write_recbole(folder: Path, kg: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.inter").write_text(INTER)
    (folder / "ml-100k.item").write_text(ITEM)
    if kg:
        (folder / "ml-100k.kg").write_text(KG)
        (folder / "ml-100k.link").write_text(LINK)
    return folder


def recbole_wheel_with_kg(folder: Path) -> Path:
    path = recbole_wheel(folder)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(movielens.RECBOLE_PREFIX + ".kg", KG)
        archive.writestr(movielens.RECBOLE_PREFIX + ".link", LINK)
    return path


def test_ml100k_entities_are_the_knowledge_graphs_neighbours(tmp_path):
    data = load_ml100k(write_recbole(tmp_path))
    assert links(data) == KG_LINKS
    assert len(data.item_entities) == len(KG_LINKS)  # the duplicate (242, m.x) counts once
    assert data.summary()["entities"] == 3


def test_ml100k_entities_fall_back_to_genres_or_are_chosen(tmp_path):
    assert links(load_ml100k(write_grouplens(tmp_path / "grouplens"))) == GENRE_LINKS
    assert links(load_ml100k(write_recbole(tmp_path / "plain", kg=False))) == GENRE_LINKS
    folder = write_recbole(tmp_path / "kg")
    assert links(load_ml100k(folder, entities="genres")) == GENRE_LINKS
    assert links(load_interactions("ml-100k", folder, entities="kg")) == KG_LINKS
    assert load_ml100k(folder, entities="none").item_entities is None
    with pytest.raises(RecsysError, match="no ml-100k.kg and ml-100k.link.*entities=genres"):
        load_ml100k(tmp_path / "plain", entities="kg")
    with pytest.raises(RecsysError, match="entities must be one of auto, kg, genres, none"):
        load_ml100k(folder, entities="freebase")


def test_ml100k_knowledge_graph_from_the_wheel_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "download_recbole_wheel", recbole_wheel_with_kg)
    assert links(load_ml100k(cache_dir=tmp_path)) == KG_LINKS
    assert (tmp_path / "ml-100k" / movielens.KG_CACHE_FILE).is_file()
    monkeypatch.setattr(movielens, "download_recbole_wheel", None)  # from the cache alone now
    assert links(load_ml100k(cache_dir=tmp_path)) == KG_LINKS


def test_ml100k_kg_asked_for_is_fetched_into_a_cache_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "download_recbole_wheel", recbole_wheel)  # no KG inside
    first = load_ml100k(cache_dir=tmp_path)
    assert links(first) == GENRE_LINKS  # auto: no knowledge graph at hand
    with pytest.raises(RecsysError, match="holds no ml-100k.kg"):
        load_ml100k(cache_dir=tmp_path, entities="kg")
    monkeypatch.setattr(movielens, "download_recbole_wheel", recbole_wheel_with_kg)
    fetched = load_ml100k(cache_dir=tmp_path, entities="kg")
    assert links(fetched) == KG_LINKS
    pd.testing.assert_frame_equal(fetched.frame, first.frame)
    assert links(load_ml100k(cache_dir=tmp_path)) == KG_LINKS  # auto finds it cached now


# --- ML-1M -----------------------------------------------------------------------------------


def write_ml1m(folder: Path, plots: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "3::Amélie (2001)::Comedy|Romance\n".encode("latin-1")
    )
    if plots:
        (folder / "plots.csv").write_text(
            'movie_id,plot\n1193,"A rebel, in a ward."\n', encoding="utf-8"
        )
    return folder


def test_ml1m(tmp_path):
    data = load_ml1m(write_ml1m(tmp_path))
    assert data.summary()["interactions"] == 3
    assert data.frame["rating"].tolist() == [5.0, 3.0, 4.0]
    assert data.item_text == {
        1193: "One Flew Over the Cuckoo's Nest (1975). Genres: Drama. Plot: A rebel, in a ward.",
        661: "James and the Giant Peach (1996). Genres: Animation, Children's, Musical",
        3: "Amélie (2001). Genres: Comedy, Romance",
    }
    assert links(data) == {
        (1193, "genre:Drama"),
        (661, "genre:Animation"),
        (661, "genre:Children's"),
        (661, "genre:Musical"),
        (3, "genre:Comedy"),
        (3, "genre:Romance"),
    }


def test_ml1m_without_plots_and_from_the_data_home(tmp_path):
    write_ml1m(tmp_path / "home" / "ml-1m", plots=False)
    data = load_interactions("ml-1m")
    assert data.item_text[1193] == "One Flew Over the Cuckoo's Nest (1975). Genres: Drama"


def test_ml1m_needs_a_directory(tmp_path):
    with pytest.raises(RecsysError, match="--data-dir"):
        load_ml1m()


def test_ml1m_malformed_line(tmp_path):
    write_ml1m(tmp_path)
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661\n")
    with pytest.raises(RecsysError, match=r"ratings\.dat: malformed line 2: rating is missing"):
        load_ml1m(tmp_path)


def test_ml1m_plots_with_wrong_columns(tmp_path):
    write_ml1m(tmp_path)
    (tmp_path / "plots.csv").write_text("id,summary\n1193,x\n")
    with pytest.raises(RecsysError, match=r"plots\.csv: wrong columns: expected \['movie_id', "):
        load_ml1m(tmp_path)


# --- ML-10M ----------------------------------------------------------------------------------

ML10M_RATINGS = "1::122::5::838985046\n1::185::4.5::838983525\n2::122::0.5::838983392\n"
ML10M_MOVIES = (
    "122::Boomerang (1992)::Comedy|Romance\n"
    "185::Net, The (1995)::Action|Crime|Thriller\n"
    "8606::Pull My Daisy (1958)::(no genres listed)\n"
    "4973::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
)
ML10M_TAGS = (
    "15::122::dumb::1215184630\n"
    "20::122::Eddie Murphy::1188263867\n"
    "21::122::eddie murphy ::1188263868\n"  # the same tag: case and spaces ignored
    "20::185::computers::1188263835\n"
    "21::185::a::b  ::1188263836\n"  # a tag may hold "::"
    "22::4973::Paris::1188263837\n"
    "23::4973::  ::1188263838\n"  # an empty tag is left out
)


def write_ml10m(folder: Path, encoding: str = "utf-8", tags: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(ML10M_RATINGS)
    (folder / "movies.dat").write_bytes(ML10M_MOVIES.encode(encoding))
    if tags:
        (folder / "tags.dat").write_bytes(ML10M_TAGS.encode(encoding))
    return folder


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_ml10m(tmp_path, encoding):
    data = load_ml10m(write_ml10m(tmp_path, encoding))
    assert data.name == "ml-10m" and data.summary()["interactions"] == 3
    assert data.frame["rating"].tolist() == [5.0, 4.5, 0.5]  # half stars
    assert data.frame["item_id"].tolist() == [122, 185, 122]
    assert data.frame["timestamp"].tolist() == [838985046.0, 838983525.0, 838983392.0]
    assert data.item_text == {
        # "Eddie Murphy" was applied twice, so it comes before "dumb"; its first spelling names it.
        122: "Boomerang (1992). Genres: Comedy, Romance. Tags: Eddie Murphy, dumb",
        185: "Net, The (1995). Genres: Action, Crime, Thriller. Tags: a::b, computers",
        8606: "Pull My Daisy (1958)",
        4973: "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001). Genres: Comedy, Romance. "
        "Tags: Paris",
    }


def test_ml10m_from_the_zip_folder_with_fewer_tags_and_without_tags(tmp_path):
    write_ml10m(tmp_path / "home" / "ml-10m" / "ml-10M100K")
    data = load_interactions("ml-10m", max_tags=1)  # <data home>/ml-10m, then its subfolder
    assert data.item_text[122] == "Boomerang (1992). Genres: Comedy, Romance. Tags: Eddie Murphy"
    assert load_ml10m(tmp_path / "home" / "ml-10m", max_tags=0).item_text[122] == (
        "Boomerang (1992). Genres: Comedy, Romance"
    )
    bare = load_ml10m(write_ml10m(tmp_path / "bare", tags=False))
    assert bare.item_text[185] == "Net, The (1995). Genres: Action, Crime, Thriller"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "ratings.dat",
            "1::122::5::838985046\n1::185\n",
            r"ratings\.dat: malformed line 2: rating",
        ),
        ("ratings.dat", "1::122::five::838985046\n", "rating is 'five', expected a number"),
        ("ratings.dat", "", r"ratings\.dat holds no ratings"),
        ("movies.dat", "x::Boomerang (1992)::Comedy\n", "item_id is 'x'"),
        ("tags.dat", "15::122::dumb::1215184630\n15::122\n", r"tags\.dat: malformed line 2"),
        ("tags.dat", "15::x::dumb::1215184630\n", r"tags\.dat: malformed line 1"),
    ],
)
def test_ml10m_malformed_files(tmp_path, name, text, expected):
    write_ml10m(tmp_path)
    (tmp_path / name).write_text(text)
    with pytest.raises(RecsysError, match=expected):
        load_ml10m(tmp_path)


def test_ml10m_needs_its_files_and_a_sane_tag_count(tmp_path):
    with pytest.raises(RecsysError, match="'ml-10m' needs a data directory"):
        load_ml10m()
    (tmp_path / "ratings.dat").write_text(ML10M_RATINGS)
    with pytest.raises(RecsysError, match=r"movies\.dat not found .* from https://files"):
        load_ml10m(tmp_path)
    with pytest.raises(RecsysError, match="max_tags must be an integer >= 0"):
        load_ml10m(tmp_path, max_tags=-1)


# --- GoodBooks-10k ---------------------------------------------------------------------------

BOOKS_HEADER = (
    "book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,"
    "original_publication_year,original_title,title,language_code,average_rating"
)


def write_goodbooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("user_id,book_id,rating\n1,258,5\n2,4081,4\n2,260,5\n")
    (folder / "to_read.csv").write_text("user_id,book_id\n9,8\n2,260\n")
    (folder / "books.csv").write_text(
        BOOKS_HEADER + "\n"
        '258,5907,5907,1,2,x,x,J.R.R. Tolkien,1937.0,The Hobbit,"The Hobbit",en,4.25\n'
        '260,1,1,2,3,x,x,"Stephen King, Peter Straub",,,"The Talisman",eng,4.1\n'
        "8,5,5,3,4,x,x,Anon,-750.0,,Odyssey,eng,3.9\n"
    )
    return folder


def test_goodbooks(tmp_path):
    data = load_goodbooks(write_goodbooks(tmp_path))
    frame = data.frame
    # (2, 260) is both rated and shelved: the rating wins, the shelving is dropped.
    assert len(frame) == 4
    assert frame["rating"].isna().sum() == 1
    shelved = frame[frame["rating"].isna()].iloc[0]
    assert (shelved.user_id, shelved.item_id) == (9, 8)
    assert data.item_text == {
        258: "The Hobbit by J.R.R. Tolkien (1937)",
        260: "The Talisman by Stephen King, Peter Straub",
        8: "Odyssey by Anon (-750)",
    }
    assert links(data) == {
        (258, "author:J.R.R. Tolkien"),
        (260, "author:Stephen King"),
        (260, "author:Peter Straub"),
        (8, "author:Anon"),
    }
    assert len(load_goodbooks(tmp_path, to_read=False).frame) == 3


def test_goodbooks_wrong_columns(tmp_path):
    write_goodbooks(tmp_path)
    (tmp_path / "ratings.csv").write_text("user,book,score\n1,258,5\n")
    with pytest.raises(RecsysError) as err:
        load_goodbooks(tmp_path)
    message = str(err.value)
    assert "ratings.csv: wrong columns" in message
    assert "['user_id', 'book_id', 'rating']" in message and "['user', 'book', 'score']" in message


def test_goodbooks_missing_required_file(tmp_path):
    write_goodbooks(tmp_path)
    (tmp_path / "books.csv").unlink()
    with pytest.raises(RecsysError, match="books.csv not found"):
        load_goodbooks(tmp_path)


# --- Amazon Reviews 2023 ---------------------------------------------------------------------

REVIEWS = [
    {"rating": 5.0, "title": "Great", "text": "ok", "asin": "B01", "parent_asin": "P1",
     "user_id": "U1", "timestamp": 1588687728923, "verified_purchase": True, "images": []},
    {"rating": 2.0, "title": "Meh", "text": "no", "asin": "B02", "parent_asin": "0312",
     "user_id": "U1", "timestamp": 1588687729000, "verified_purchase": False, "images": []},
    {"rating": 4.0, "title": "Fine", "text": "yes", "asin": "B03", "parent_asin": "P1",
     "user_id": "U2", "timestamp": 1588687730000, "verified_purchase": True, "images": []},
]  # fmt: skip
META = [
    {"main_category": "All Beauty", "title": "Hair Oil", "store": "Acme",
     "categories": [], "features": ["Light", "Vegan"], "description": ["Smells nice."],
     "parent_asin": "P1", "price": None},
    {"main_category": "All Beauty", "title": "Comb", "store": None,
     "categories": ["Beauty", "Tools"], "features": [], "description": [],
     "parent_asin": "0312", "price": 3.5},
    {"main_category": "All Beauty", "title": "Unused", "store": "X", "categories": [],
     "features": [], "description": [], "parent_asin": "P9"},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_amazon2023(tmp_path):
    write_jsonl(tmp_path / "All_Beauty.jsonl", REVIEWS)
    write_jsonl(tmp_path / "meta_All_Beauty.jsonl.gz", META)
    data = load_amazon2023(tmp_path, category="All_Beauty")
    frame = data.frame
    assert frame["user_id"].tolist() == ["U1", "U1", "U2"]
    assert frame["item_id"].tolist() == ["P1", "0312", "P1"]  # "0312" stays a string
    assert frame["rating"].tolist() == [5.0, 2.0, 4.0]
    assert frame["timestamp"].iloc[0] == pytest.approx(1588687728.923)
    assert data.item_text == {
        "P1": "Hair Oil. Store: Acme. Category: All Beauty. Features: Light; Vegan. "
        "Description: Smells nice.",
        "0312": "Comb. Category: Beauty > Tools",
    }
    assert links(data) == {
        ("P1", "store:Acme"),
        ("0312", "category:Beauty"),
        ("0312", "category:Tools"),
    }
    verified = load_amazon2023(tmp_path, verified_only=True)  # the one reviews file is found
    assert verified.frame["item_id"].tolist() == ["P1", "P1"]


def test_amazon2023_explicit_paths(tmp_path):
    reviews = write_jsonl(tmp_path / "r.jsonl.gz", REVIEWS)
    meta = write_jsonl(tmp_path / "m.jsonl", META)
    data = load_interactions("amazon2023", reviews_path=reviews, meta_path=meta)
    assert len(data.frame) == 3 and set(data.item_text) == {"P1", "0312"}


def test_amazon2023_malformed_json(tmp_path):
    path = tmp_path / "All_Beauty.jsonl"
    path.write_text(json.dumps(REVIEWS[0]) + "\n{broken\n")
    write_jsonl(tmp_path / "meta_All_Beauty.jsonl", META)
    with pytest.raises(RecsysError, match=r"All_Beauty\.jsonl: malformed JSON on line 2"):
        load_amazon2023(tmp_path)


def test_amazon2023_field_of_varying_type(tmp_path):
    # description as a string in one record: pyarrow rejects the file, the line reader copes
    odd = dict(META[1], description="Fine teeth.")
    write_jsonl(tmp_path / "All_Beauty.jsonl", REVIEWS)
    write_jsonl(tmp_path / "meta_All_Beauty.jsonl", [META[0], odd])
    data = load_amazon2023(tmp_path)
    assert data.item_text["0312"] == "Comb. Category: Beauty > Tools. Description: Fine teeth."
    write_jsonl(tmp_path / "All_Beauty.jsonl", [REVIEWS[0], dict(REVIEWS[1], rating="five")])
    with pytest.raises(RecsysError, match=r"line 2 has rating 'five', expected a number"):
        load_amazon2023(tmp_path)


def test_amazon2023_wrong_fields_and_missing_meta(tmp_path):
    write_jsonl(tmp_path / "All_Beauty.jsonl", [{"user": "U1", "item": "P1", "stars": 5}])
    with pytest.raises(RecsysError, match="meta_All_Beauty.jsonl"):
        load_amazon2023(tmp_path)
    write_jsonl(tmp_path / "meta_All_Beauty.jsonl", META)
    with pytest.raises(RecsysError, match=r"wrong fields: expected \['user_id', 'parent_asin'"):
        load_amazon2023(tmp_path)


def test_amazon2023_needs_a_category_among_several(tmp_path):
    write_jsonl(tmp_path / "A.jsonl", REVIEWS)
    write_jsonl(tmp_path / "B.jsonl", REVIEWS)
    with pytest.raises(RecsysError, match="category="):
        load_amazon2023(tmp_path)
    with pytest.raises(RecsysError, match="no C.jsonl"):
        load_amazon2023(tmp_path, category="C")


# --- generic ---------------------------------------------------------------------------------


def test_generic_csv_with_item_text(tmp_path):
    (tmp_path / "log.csv").write_text(
        "who;what;stars;when\n007;a1;4.5;2024-01-01T00:00:00Z\n7;a2;;2024-01-01T00:01:00Z\n"
    )
    (tmp_path / "items.csv").write_text('what,text\na1,"First, item"\na2,Second\n')
    data = load_interactions(
        "generic",
        tmp_path,
        path="log.csv",
        sep=";",
        user_col="who",
        item_col="what",
        rating_col="stars",
        timestamp_col="when",
        item_text_path="items.csv",
    )
    frame = data.frame
    assert frame["user_id"].tolist() == ["007", "7"]  # ids are strings: 007 stays 007
    assert frame["rating"].iloc[0] == 4.5 and np.isnan(frame["rating"].iloc[1])
    assert frame["timestamp"].tolist() == [1704067200.0, 1704067260.0]
    assert data.item_text == {"a1": "First, item", "a2": "Second"}
    assert data.item_entities is None


def test_generic_item_entities(tmp_path):
    (tmp_path / "interactions.csv").write_text("user_id,item_id\n1,007\n2,8\n")
    (tmp_path / "tags.csv").write_text(
        "item_id,tag\n007,spy\n007,spy\n8,\n8,cold war\n007,cold war\n"
    )
    data = load_generic(tmp_path, entities_path="tags.csv", entity_col="tag")
    assert links(data) == {("007", "spy"), ("007", "cold war"), ("8", "cold war")}
    assert len(data.item_entities) == 3  # the repeated row counts once, the empty one not at all
    with pytest.raises(RecsysError, match="item entities file .*nope.csv not found"):
        load_generic(tmp_path, entities_path="nope.csv")
    with pytest.raises(RecsysError, match=r"tags\.csv: wrong columns"):
        load_generic(tmp_path, entities_path="tags.csv")


def test_generic_parquet_default_name(tmp_path):
    pd.DataFrame({"user_id": [1, 2, 2], "item_id": [10, 10, 11], "t": [3, 1, 2]}).to_parquet(
        tmp_path / "interactions.parquet"
    )
    data = load_generic(tmp_path, timestamp_col="t")
    assert data.frame["item_id"].tolist() == ["10", "10", "11"]
    assert data.frame["rating"].isna().all()
    assert data.frame["timestamp"].tolist() == [3.0, 1.0, 2.0]


def test_generic_wrong_columns(tmp_path):
    (tmp_path / "interactions.csv").write_text("user,item\n1,2\n")
    with pytest.raises(RecsysError, match=r"interactions\.csv: wrong columns: expected"):
        load_generic(tmp_path)
    pd.DataFrame({"u": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(RecsysError, match=r"x\.parquet: wrong columns: expected"):
        load_generic(tmp_path, path="x.parquet")


def test_generic_bad_values(tmp_path):
    (tmp_path / "interactions.csv").write_text("user_id,item_id,r,t\n1,2,x,5\n")
    with pytest.raises(RecsysError, match="r on data row 1 is 'x'"):
        load_generic(tmp_path, rating_col="r")
    (tmp_path / "interactions.csv").write_text("user_id,item_id,r,t\n1,2,3,yesterday\n")
    with pytest.raises(RecsysError, match="neither a number nor a date"):
        load_generic(tmp_path, timestamp_col="t")


def test_generic_missing_file(tmp_path):
    with pytest.raises(RecsysError, match="none of"):
        load_generic(tmp_path)
    with pytest.raises(RecsysError, match="not found"):
        load_generic(tmp_path, path="nope.csv")


# --- registry --------------------------------------------------------------------------------


def test_registry_names():
    assert set(DATASETS) == {"ml-100k", "ml-1m", "ml-10m", "goodbooks-10k", "amazon2023",
                             "generic", "synthetic"}  # fmt: skip


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(RecsysError, match=r"unknown dataset 'ml-20m'; choose one of \["):
        load_interactions("ml-20m")


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(RecsysError, match=r"dataset 'synthetic' has no option 'users'"):
        load_interactions("synthetic", users=10)


def test_registry_passes_options(tmp_path):
    data = load_interactions("synthetic", n_users=30, n_items=20, n_interactions=100, seed=3)
    assert len(data.frame) == 100
    check_ml100k_sample(load_interactions("ml-100k", write_grouplens(tmp_path)))

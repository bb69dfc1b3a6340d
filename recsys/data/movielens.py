"""MovieLens 100K, 1M and 10M: ratings plus one "Title (year). Genres: A, B" text per movie.

ML-100K is found, in order, in: a directory the user gives (GroupLens ``u.data`` + ``u.item``, or
RecBole atomic files ``ml-100k.inter`` + ``ml-100k.item``); the cache
(``<data home>/ml-100k/{ratings,items}.parquet``, see :func:`recsys.data.files.data_home`); the
GroupLens zip; the copy shipped inside the ``recbole==1.2.1`` wheel, fetched with pip so that the
user's index configuration applies. Whatever is fetched is cached, so later loads are offline.
Every source passes one check: an empty ratings file is an error; counts other than the published
ones, or rated movies without a title, are logged as warnings (a subset may be deliberate).

Item entities (``Interactions.item_entities``, for graph models such as ``lightgcn_kg``): for
ML-100K, the Freebase knowledge graph RecBole ships beside the ratings (``ml-100k.kg``: triples
``head_id, relation_id, tail_id``; ``ml-100k.link``: ``item_id -> entity_id``): each movie's
entities are the tails of the triples whose head is the movie's own entity (its actors,
directors, writers, genres, languages, awards...). Where no knowledge graph is at hand (GroupLens
files, a cache written without it) the movie's genres are its entities. ML-1M's are its genres.

ML-1M is read from a directory with ``ratings.dat`` and ``movies.dat`` (GroupLens ``::`` format,
latin-1) and, optionally, ``plots.csv``: a UTF-8 CSV with a header ``movie_id,plot`` whose plot
text is appended to the movie's text as `` Plot: ...``.

ML-10M is read from a directory with ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``,
half-star ratings 0.5-5), ``movies.dat`` (``MovieID::Title::Genres``) and, optionally,
``tags.dat`` (``UserID::MovieID::Tag::Timestamp``), or from the ``ml-10M100K/`` folder the
GroupLens zip unpacks to. Each file is read as UTF-8, else as latin-1 (which decodes any byte).
A movie's distinct tags (case and spacing ignored), most applied first, are appended to its text
as `` Tags: a, b``, at most ``max_tags`` of them (Sentence-BERT reads only the first 256 word
pieces of a text).
"""

from __future__ import annotations

import csv
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from recsys.data.files import (
    data_home,
    default_dir,
    find_file,
    read_table,
    read_text,
    require_dir,
    require_file,
)
from recsys.data.interactions import (
    COLUMNS,
    ENTITY_COLUMNS,
    Interactions,
    entity_frame,
    make_frame,
)
from recsys.errors import RecsysError
from recsys.io import atomic_path

log = logging.getLogger(__name__)

# The 19 genre flags of u.item, in file order.
GENRES = tuple(
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|Drama|Fantasy|"
    "Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western".split("|")
)
ITEM_COLUMNS = ("item_id", "title", "year", "genres")  # genres "|"-joined; year "" when unknown

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_TIMEOUT_S = 5.0
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
KG_COLUMNS = ("head_id", "relation_id", "tail_id")
LINK_COLUMNS = ("item_id", "entity_id")
# load_ml100k's ``entities``: the knowledge graph when one is at hand (else genres), only the
# knowledge graph (fetched if need be), only genres, or no entities at all.
ENTITY_SOURCES = ("auto", "kg", "genres", "none")
GENRE_PREFIX = "genre:"
KG_CACHE_FILE = "kg.parquet"
PIP_TIMEOUT_S = 300.0
ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"

ML100K_FIX = f"download {GROUPLENS_URL}, unzip it and pass --data-dir with u.data and u.item"
ML100K_COUNTS = (943, 1_682, 100_000)  # users, rated movies, ratings of the published dataset
ML1M_HINT = f"it must hold ratings.dat and movies.dat from {ML1M_URL}"
ML10M_URL = "https://files.grouplens.org/datasets/movielens/ml-10m.zip"
ML10M_HINT = f"it must hold ratings.dat and movies.dat (optionally tags.dat) from {ML10M_URL}"
ML10M_FOLDER = "ml-10M100K"  # what the zip unpacks to
ML10M_MAX_TAGS = 20
# A tag may hold any text, "::" included: the ids and the timestamp fix the fields around it.
_TAG_LINE = r"^(?P<user_id>[^:]*)::(?P<item_id>[^:]*)::(?P<tag>.*)::(?P<timestamp>[^:]*)$"
_YEAR_IN_TITLE = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$"


def load_ml100k(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    entities: str = "auto",
) -> Interactions:
    """MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings from 1 to 5.

    Args:
        data_dir: a folder with ``u.data`` + ``u.item`` or ``ml-100k.inter`` + ``ml-100k.item``
            (or an ``ml-100k/`` subfolder holding them), and optionally the knowledge graph
            ``ml-100k.kg`` + ``ml-100k.link``. When None, the cache, then the GroupLens zip, then
            the ``recbole==1.2.1`` wheel are tried.
        cache_dir: data home for the cached copy (default: ``$RECSYS_TUNE_DATA`` or
            ``~/.cache/recsys-tune``).
        entities: the items' entities: ``"auto"`` the knowledge graph when the source has it
            (the folder, the cache, the wheel) and the genres otherwise; ``"kg"`` the knowledge
            graph only (without ``data_dir``, fetched from the wheel into the cache when the
            cache lacks it); ``"genres"``; ``"none"``.
    """
    if entities not in ENTITY_SOURCES:
        raise RecsysError(
            f"dataset 'ml-100k': entities must be one of {', '.join(ENTITY_SOURCES)}, got "
            f"{entities!r}"
        )
    if data_dir is not None:
        tables, source = _read_ml100k_dir(Path(data_dir).expanduser())
        if entities == "kg" and tables.kg is None:
            raise RecsysError(
                f"dataset 'ml-100k': entities='kg' but {source} has no ml-100k.kg and "
                "ml-100k.link; copy them there from the recbole==1.2.1 wheel "
                f"({RECBOLE_PREFIX}.kg/.link), or pass entities=genres"
            )
        return _ml100k(tables, source, ML100K_FIX, entities)

    cache = data_home(cache_dir) / "ml-100k"
    refetch = f"delete {cache} to fetch it again, or {ML100K_FIX}"
    cached = _read_cache(cache)
    if cached is not None:
        if entities == "kg" and cached.kg is None:
            cached = _with_fetched_kg(cached, cache)
        return _ml100k(cached, str(cache), refetch, entities)

    tried = [f"cache {cache} (empty)"]
    fetchers = (
        (f"GroupLens {GROUPLENS_URL}", _fetch_grouplens),
        (f"pip download {RECBOLE_REQUIREMENT}", _fetch_recbole),
    )
    for label, fetch in fetchers:
        try:
            with tempfile.TemporaryDirectory(prefix="recsys-ml100k-") as tmp:
                tables = fetch(Path(tmp))
        except (OSError, subprocess.SubprocessError, zipfile.BadZipFile, RecsysError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            log.info("ml-100k: %s failed: %s", label, reason)
            tried.append(f"{label} ({reason})")
            continue
        _write_cache(cache, tables.ratings, tables.items, tables.kg)
        if entities == "kg" and tables.kg is None:
            tables = _with_fetched_kg(tables, cache)
        return _ml100k(tables, f"{label} -> {cache}", refetch, entities)
    raise RecsysError("could not load ml-100k; tried " + "; ".join(tried) + f". Fix: {ML100K_FIX}")


def _with_fetched_kg(tables: _Tables, cache: Path) -> _Tables:
    """``tables`` with the knowledge graph of the recbole wheel, which is fetched and cached."""
    try:
        with tempfile.TemporaryDirectory(prefix="recsys-ml100k-") as tmp:
            kg = _read_recbole_kg(download_recbole_wheel(Path(tmp)))
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise RecsysError(
            f"dataset 'ml-100k': entities='kg' needs the knowledge graph, and fetching "
            f"{RECBOLE_REQUIREMENT} failed ({reason}); put ml-100k.kg and ml-100k.link in "
            "--data-dir, or pass entities=genres"
        ) from None
    if kg is None:
        raise RecsysError(
            f"dataset 'ml-100k': the {RECBOLE_REQUIREMENT} wheel holds no ml-100k.kg/.link; "
            "put them in --data-dir, or pass entities=genres"
        )
    _write_frames(cache, [(KG_CACHE_FILE, kg)])
    return replace(tables, kg=kg)


def load_ml1m(data_dir: str | Path | None = None) -> Interactions:
    """MovieLens 1M: 6,040 users, 3,706 rated movies, 1,000,209 ratings from 1 to 5.

    Args:
        data_dir: a folder with ``ratings.dat``, ``movies.dat`` and optionally ``plots.csv``
            (columns ``movie_id,plot``); None means ``<data home>/ml-1m``.
    """
    directory = require_dir(default_dir("ml-1m", data_dir, ML1M_HINT), "ml-1m", ML1M_HINT)
    ratings_path = require_file(directory, ["ratings.dat"], "ml-1m", ML1M_HINT)
    movies_path = require_file(directory, ["movies.dat"], "ml-1m", ML1M_HINT)
    ratings = read_table(
        _colons_to_tabs(ratings_path),
        columns=("user_id", "item_id", "rating", "timestamp"),
        sep="\t",
        header=False,
        numeric=("user_id", "item_id", "rating", "timestamp"),
        quoting=csv.QUOTE_NONE,
        label=str(ratings_path),
    )
    items = _movies(movies_path)
    plots = None
    plots_path = find_file(directory, ["plots.csv"])
    if plots_path is not None:
        table = read_table(
            plots_path, columns=("movie_id", "plot"), numeric=("movie_id",), dtype={"plot": str}
        )
        plots = dict(zip(table["movie_id"].astype("int64"), table["plot"].fillna(""), strict=True))
    return _interactions(
        "ml-1m", ratings, items, str(directory), plots, item_entities=genre_links(items)
    )


def genre_links(items: pd.DataFrame) -> pd.DataFrame:
    """Item-entity links of the movies' genres (``ITEM_COLUMNS`` tables): ``genre:Comedy``..."""
    genres = items[["item_id", "genres"]].assign(genres=items["genres"].fillna("").str.split("|"))
    links = genres.explode("genres", ignore_index=True)
    return entity_frame(links["item_id"].to_numpy(), links["genres"].fillna(""), GENRE_PREFIX)


def kg_links(kg: pd.DataFrame, link: pd.DataFrame) -> pd.DataFrame:
    """Item-entity links of a RecBole knowledge graph: each item's one-hop neighbours.

    Args:
        kg: triples, columns ``KG_COLUMNS``.
        link: ``LINK_COLUMNS``: the entity that stands for each item.

    Returns:
        ``ENTITY_COLUMNS`` links: each item to the tails of the triples whose head is its entity
        (the Freebase ids of its actors, genres, director...), in the order of the files.
    """
    heads = link.merge(kg, left_on="entity_id", right_on="head_id", sort=False)
    return entity_frame(heads["item_id"].to_numpy(np.int64), heads["tail_id"])


def load_ml10m(data_dir: str | Path | None = None, max_tags: int = ML10M_MAX_TAGS) -> Interactions:
    """MovieLens 10M: 69,878 users, 10,677 rated movies, 10,000,054 half-star ratings.

    Args:
        data_dir: a folder with ``ratings.dat``, ``movies.dat`` and optionally ``tags.dat``, or
            with the zip's ``ml-10M100K/`` folder; None means ``<data home>/ml-10m``.
        max_tags: most tags appended to a movie's text (0: none).
    """
    check_ml10m_options(max_tags)
    directory = require_dir(default_dir("ml-10m", data_dir, ML10M_HINT), "ml-10m", ML10M_HINT)
    if find_file(directory, ["ratings.dat"]) is None and (directory / ML10M_FOLDER).is_dir():
        directory = directory / ML10M_FOLDER
    ratings_path = require_file(directory, ["ratings.dat"], "ml-10m", ML10M_HINT)
    movies_path = require_file(directory, ["movies.dat"], "ml-10m", ML10M_HINT)
    # Ten million lines: read with the C parser split at every ":" (so "::" leaves an empty
    # field between two values) instead of a copy of the text with "::" replaced.
    ratings = read_table(
        ratings_path,
        columns=("user_id", "_", "item_id", "__", "rating", "___", "timestamp"),
        sep=":",
        header=False,
        numeric=COLUMNS,
        dtype={"_": str, "__": str, "___": str},
        quoting=csv.QUOTE_NONE,
    )[list(COLUMNS)]
    if ratings.empty:
        raise RecsysError(f"{ratings_path} holds no ratings; {ML10M_HINT}")
    items = _movies(movies_path, "utf-8")
    tags = {}
    tags_path = find_file(directory, ["tags.dat"])
    if tags_path is not None and max_tags:
        tags = _tags(tags_path, max_tags)
    return _interactions(
        "ml-10m", ratings, items, str(directory), tags=tags, item_entities=genre_links(items)
    )


def check_ml10m_options(max_tags: int = ML10M_MAX_TAGS) -> None:
    """The checks of :func:`load_ml10m`'s options that need no file (run before Ray starts)."""
    if isinstance(max_tags, bool) or not isinstance(max_tags, int) or max_tags < 0:
        raise RecsysError(f"dataset 'ml-10m': max_tags must be an integer >= 0, got {max_tags!r}")


load_ml10m.check_options = check_ml10m_options  # see recsys.data.loaders.check_options


def movie_text(
    title: str, year: str, genres: list[str], plot: str = "", tags: Sequence[str] = ()
) -> str:
    """``"Toy Story (1995). Genres: Animation, Comedy. Plot: .... Tags: pixar, fun"``; empty
    parts are left out."""
    text = f"{title} ({year})" if year else title
    if genres:
        text += ". Genres: " + ", ".join(genres)
    if plot:
        text += ". Plot: " + plot.strip()
    if tags:
        text += ". Tags: " + ", ".join(tags)
    return text


def _movies(path: Path, encoding: str = "latin-1") -> pd.DataFrame:
    """``movies.dat`` (``MovieID::Title (year)::Genre|Genre``) as :data:`ITEM_COLUMNS`."""
    movies = read_table(
        _colons_to_tabs(path, encoding),
        columns=("item_id", "title", "genres"),
        sep="\t",
        header=False,
        numeric=("item_id",),
        dtype={"title": str, "genres": str},
        quoting=csv.QUOTE_NONE,
        label=str(path),
    )
    parts = movies["title"].fillna("").str.extract(_YEAR_IN_TITLE)
    return pd.DataFrame(
        {
            "item_id": movies["item_id"].astype("int64"),
            "title": parts["title"].fillna(movies["title"].fillna("")),
            "year": parts["year"].fillna(""),
            "genres": movies["genres"].fillna("").replace("(no genres listed)", ""),
        }
    )


def _tags(path: Path, max_tags: int) -> dict[int, list[str]]:
    """``tags.dat``: movie id -> its distinct tags, most applied first (ties alphabetical)."""
    text = _decoded(path, "utf-8")
    lines = pd.Series(text.splitlines())
    lines = lines[lines.str.strip() != ""]
    fields = lines.str.extract(_TAG_LINE)
    ids = fields[["user_id", "item_id"]].apply(pd.to_numeric, errors="coerce")
    bad = (fields.isna().any(axis=1) | ids.isna().any(axis=1)).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise RecsysError(
            f"{path}: malformed line {int(lines.index[row]) + 1}: expected "
            f"UserID::MovieID::Tag::Timestamp, got {lines.iloc[row][:80]!r}; fix or remove it"
        )
    tag = fields["tag"].str.strip()
    frame = pd.DataFrame(
        {"item_id": ids["item_id"].astype("int64"), "tag": tag, "key": tag.str.casefold()}
    )
    frame = frame[frame["tag"] != ""]
    # The first spelling of a tag names it; its count is how often it was applied to the movie.
    counted = frame.groupby(["item_id", "key"], sort=False).agg(
        tag=("tag", "first"), n=("tag", "size")
    )
    counted = counted.reset_index().sort_values(
        ["item_id", "n", "key"], ascending=[True, False, True], kind="stable"
    )
    top = counted.groupby("item_id", sort=False).head(max_tags)
    items, names = top["item_id"].to_numpy(), top["tag"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    groups = np.split(names, starts[1:])
    return dict(zip(items[starts].tolist(), (g.tolist() for g in groups), strict=True))


def _fetch_grouplens(tmp: Path) -> _Tables:
    # download_* are looked up at call time so that tests can replace them.
    return _read_grouplens_zip(download_grouplens(tmp))


def _fetch_recbole(tmp: Path) -> _Tables:
    return _read_recbole_zip(download_recbole_wheel(tmp))


def download_grouplens(dest: Path, url: str = GROUPLENS_URL) -> Path:
    """Downloads the GroupLens ML-100K zip into ``dest``; fails within seconds when offline."""
    _check_resolves(urlparse(url).hostname or "", GROUPLENS_TIMEOUT_S)
    path = dest / "ml-100k.zip"
    with urllib.request.urlopen(url, timeout=GROUPLENS_TIMEOUT_S) as response:
        path.write_bytes(response.read())
    return path


def download_recbole_wheel(dest: Path) -> Path:
    """Fetches the ``recbole==1.2.1`` wheel into ``dest`` with this interpreter's pip.

    pip (not a hand-made HTTP request) so that the user's index, proxy and certificate settings
    apply; ``--no-deps`` because only the data files inside the wheel are wanted.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--quiet", RECBOLE_REQUIREMENT, "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    wheels = sorted(dest.glob("recbole-*.whl"))
    if result.returncode != 0 or not wheels:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        raise OSError(lines[-1] if lines else f"pip exited with status {result.returncode}")
    return wheels[0]


def _check_resolves(host: str, timeout: float) -> None:
    """Raises OSError unless ``host`` resolves within ``timeout`` (getaddrinfo has no timeout)."""
    if urllib.request.getproxies().get("https"):
        return  # the proxy resolves the host
    outcome: list[BaseException | None] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise OSError(f"cannot resolve {host} within {timeout:.0f} s")
    if outcome[0] is not None:
        raise OSError(f"cannot resolve {host}: {outcome[0]}")


@dataclass(frozen=True)
class _Tables:
    """ML-100K ratings (``COLUMNS``) and movies (``ITEM_COLUMNS``) with the files they came from,
    and the knowledge graph's item-entity links (``ENTITY_COLUMNS``) when the source has them."""

    ratings: pd.DataFrame
    items: pd.DataFrame
    ratings_file: str
    items_file: str
    kg: pd.DataFrame | None = None


def _read_ml100k_dir(directory: Path) -> tuple[_Tables, str]:
    hint = f"it must hold u.data and u.item (or ml-100k.inter and ml-100k.item); {ML100K_FIX}"
    directory = require_dir(directory, "ml-100k", hint)
    for folder in (directory, directory / "ml-100k"):
        if find_file(folder, ["u.data"]) and find_file(folder, ["u.item"]):
            data, item = folder / "u.data", folder / "u.item"
            ratings = _grouplens_ratings(read_text(data), str(data))
            items = _grouplens_items(read_text(item, encoding="latin-1"), str(item))
            tables = _Tables(ratings, items, str(data), str(item), _read_kg_dir(folder))
            return tables, str(folder)
        if find_file(folder, ["ml-100k.inter"]) and find_file(folder, ["ml-100k.item"]):
            inter = read_text(folder / "ml-100k.inter")
            item = read_text(folder / "ml-100k.item")
            tables = _recbole_frames(inter, item, str(folder / "ml-100k"))
            return replace(tables, kg=_read_kg_dir(folder)), str(folder)
    present = sorted(p.name for p in directory.iterdir())[:10]
    raise RecsysError(f"dataset 'ml-100k': {directory} holds {present}; {hint}")


def _read_kg_dir(folder: Path) -> pd.DataFrame | None:
    """The knowledge graph's links from ``ml-100k.kg`` + ``ml-100k.link``, None without both."""
    if not (find_file(folder, ["ml-100k.kg"]) and find_file(folder, ["ml-100k.link"])):
        return None
    label = str(folder / "ml-100k")
    return _kg_frames(read_text(folder / "ml-100k.kg"), read_text(folder / "ml-100k.link"), label)


def _kg_frames(kg: str, link: str, label: str) -> pd.DataFrame:
    """Links from the RecBole atomic ``.kg`` and ``.link`` texts; ``label`` names them."""
    triples = read_table(
        _untyped_header(_nonblank(kg, label + ".kg")),
        columns=KG_COLUMNS,
        sep="\t",
        dtype=dict.fromkeys(KG_COLUMNS, str),
        quoting=csv.QUOTE_NONE,
        label=label + ".kg",
    )
    links = read_table(
        _untyped_header(_nonblank(link, label + ".link")),
        columns=LINK_COLUMNS,
        sep="\t",
        numeric=("item_id",),
        dtype={"entity_id": str},
        quoting=csv.QUOTE_NONE,
        label=label + ".link",
    )
    links["item_id"] = links["item_id"].astype("int64")
    return kg_links(triples.dropna(), links.dropna())


def _grouplens_ratings(text: str, label: str) -> pd.DataFrame:
    """``u.data``: user id, item id, rating, timestamp, tab-separated, no header."""
    return read_table(
        _nonblank(text, label),
        columns=COLUMNS,
        sep="\t",
        header=False,
        numeric=COLUMNS,
        quoting=csv.QUOTE_NONE,
        label=label,
    )


def _grouplens_items(text: str, label: str) -> pd.DataFrame:
    """``u.item``: id|title (year)|release date|video release date|IMDb URL|19 genre flags."""
    flags = [f"genre_{i}" for i in range(len(GENRES))]
    table = read_table(
        _nonblank(text, label),
        columns=("item_id", "title", "release_date", "video_release_date", "url", *flags),
        sep="|",
        header=False,
        numeric=("item_id", *flags),
        dtype={"title": str, "release_date": str, "video_release_date": str, "url": str},
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        label=label,
    )
    titles = table["title"].fillna("")
    parts = titles.str.extract(_YEAR_IN_TITLE)
    release_year = table["release_date"].fillna("").str.extract(r"(\d{4})\s*$")[0]
    on = table[flags].to_numpy() == 1
    genres = ["|".join(GENRES[j] for j in np.flatnonzero(row) if j > 0) for row in on]
    return pd.DataFrame(
        {
            "item_id": table["item_id"].astype("int64"),
            "title": parts["title"].fillna(titles),
            "year": parts["year"].fillna(release_year).fillna(""),
            "genres": genres,
        }
    )


def _read_grouplens_zip(path: Path) -> _Tables:
    with zipfile.ZipFile(path) as archive:
        data = archive.read("ml-100k/u.data").decode("ascii")
        item = archive.read("ml-100k/u.item").decode("latin-1")
    # The zip is a temporary download: messages name it, not its vanished folder.
    data_label, item_label = f"{path.name}:ml-100k/u.data", f"{path.name}:ml-100k/u.item"
    return _Tables(
        _grouplens_ratings(data, data_label),
        _grouplens_items(item, item_label),
        data_label,
        item_label,
    )


def _read_recbole_zip(path: Path) -> _Tables:
    with zipfile.ZipFile(path) as archive:
        try:
            inter = archive.read(RECBOLE_PREFIX + ".inter").decode("utf-8")
            item = archive.read(RECBOLE_PREFIX + ".item").decode("utf-8")
        except KeyError as exc:
            raise RecsysError(f"{path} lacks the ML-100K files ({exc})") from None
    tables = _recbole_frames(inter, item, f"{path.name}:{RECBOLE_PREFIX}")
    return replace(tables, kg=_read_recbole_kg(path))


def _read_recbole_kg(path: Path) -> pd.DataFrame | None:
    """The knowledge graph's links inside the wheel at ``path``; None when it lacks them."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        kg_name, link_name = RECBOLE_PREFIX + ".kg", RECBOLE_PREFIX + ".link"
        if not {kg_name, link_name} <= names:
            return None
        kg = archive.read(kg_name).decode("utf-8")
        link = archive.read(link_name).decode("utf-8")
    return _kg_frames(kg, link, f"{path.name}:{RECBOLE_PREFIX}")


def _recbole_frames(inter: str, item: str, label: str) -> _Tables:
    """RecBole atomic files: tab-separated, headers typed like ``user_id:token``.

    Args:
        label: the files' common path without the ``.inter`` / ``.item`` suffix, for messages.
    """
    ratings = read_table(
        _untyped_header(_nonblank(inter, label + ".inter")),
        columns=COLUMNS,
        sep="\t",
        numeric=COLUMNS,
        quoting=csv.QUOTE_NONE,
        label=label + ".inter",
    )
    table = read_table(
        _untyped_header(_nonblank(item, label + ".item")),
        columns=("item_id", "movie_title", "release_year", "class"),
        sep="\t",
        numeric=("item_id",),
        dtype={"movie_title": str, "release_year": str, "class": str},
        quoting=csv.QUOTE_NONE,
        label=label + ".item",
    )
    # RecBole writes its placeholder for the movie GroupLens calls "unknown" as "unkonwn".
    year = table["release_year"].fillna("")
    genres = (
        table["class"]
        .fillna("")
        .str.split()
        .map(lambda names: "|".join(g for g in names if g != "unknown"))
    )
    items = pd.DataFrame(
        {
            "item_id": table["item_id"].astype("int64"),
            "title": table["movie_title"].fillna("").replace("unkonwn", "unknown"),
            "year": year.where(year.str.fullmatch(r"\d{4}"), ""),
            "genres": genres,
        }
    )
    return _Tables(ratings, items, label + ".inter", label + ".item")


def _nonblank(text: str, label: str) -> str:
    """``text``, unless it is empty or only whitespace: then a RecsysError naming ``label``."""
    # Checked before parsing: pandas reads an empty headerless file as zero ratings, and a
    # whitespace-only one as a malformed line, neither of which says what is wrong.
    if not text.strip():
        raise RecsysError(f"{label} is empty; {ML100K_FIX}")
    return text


def _untyped_header(text: str) -> str:
    """Drops the ``:type`` suffixes of a RecBole header line."""
    head, sep, body = text.partition("\n")
    names = [field.split(":", 1)[0] for field in head.rstrip("\r").split("\t")]
    return "\t".join(names) + sep + body


def _colons_to_tabs(path: Path, encoding: str = "latin-1") -> str:
    # The C parser takes only one-character separators; "::" needs the much slower python one.
    return _decoded(path, encoding).replace("::", "\t")


def _decoded(path: Path, encoding: str) -> str:
    """The file as ``encoding`` text; a UTF-8 file that does not decode is read as latin-1."""
    if encoding != "utf-8":
        return read_text(path, encoding=encoding)
    try:
        return read_text(path, encoding="utf-8")
    except RecsysError:  # not UTF-8: GroupLens' older files are latin-1, which decodes any byte
        return read_text(path, encoding="latin-1")


def _read_cache(cache: Path) -> _Tables | None:
    ratings_path, items_path = cache / "ratings.parquet", cache / "items.parquet"
    if not (ratings_path.is_file() and items_path.is_file()):
        return None
    try:
        ratings = pd.read_parquet(ratings_path)
        items = pd.read_parquet(items_path)
    except (OSError, ValueError) as exc:
        log.warning("ml-100k: ignoring unreadable cache %s (%s)", cache, exc)
        return None
    if list(ratings.columns) != list(COLUMNS) or list(items.columns) != list(ITEM_COLUMNS):
        log.warning("ml-100k: ignoring cache %s with unexpected columns", cache)
        return None
    return _Tables(ratings, items, str(ratings_path), str(items_path), _read_kg_cache(cache))


def _read_kg_cache(cache: Path) -> pd.DataFrame | None:
    """The cached knowledge-graph links; None when absent or unreadable (fetched again)."""
    path = cache / KG_CACHE_FILE
    if not path.is_file():
        return None
    try:
        kg = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        log.warning("ml-100k: ignoring unreadable cache %s (%s)", path, exc)
        return None
    if list(kg.columns) != list(ENTITY_COLUMNS):
        log.warning("ml-100k: ignoring cache %s with unexpected columns", path)
        return None
    return kg


def _write_cache(
    cache: Path, ratings: pd.DataFrame, items: pd.DataFrame, kg: pd.DataFrame | None = None
) -> None:
    """Writes the canonical parquet pair (and the knowledge graph's links when given); a failure
    only costs the next load a new download."""
    frames = [("items.parquet", items), ("ratings.parquet", ratings)]
    if kg is not None:
        frames.insert(0, (KG_CACHE_FILE, kg))  # first: a cache with ratings is read as complete
    _write_frames(cache, frames)


def _write_frames(cache: Path, frames: list[tuple[str, pd.DataFrame]]) -> None:
    try:
        for name, frame in frames:
            with atomic_path(cache / name) as tmp:
                frame.reset_index(drop=True).to_parquet(tmp, index=False)
    except OSError as exc:
        log.warning("ml-100k: could not cache the data in %s (%s)", cache, exc)


def _ml100k(tables: _Tables, source: str, fix: str, entities: str = "auto") -> Interactions:
    """Checks ML-100K tables from any source against the published dataset, then builds it.

    Args:
        source: where the data came from, for :attr:`Interactions.source`.
        fix: how to get a complete copy from this source, for the messages.
        entities: see :func:`load_ml100k`; with ``"kg"`` the tables hold the knowledge graph.
    """
    ratings = tables.ratings
    if ratings.empty:
        raise RecsysError(f"{tables.ratings_file} holds no ratings; {fix}")
    found = (ratings["user_id"].nunique(), ratings["item_id"].nunique(), len(ratings))
    if found != ML100K_COUNTS:
        log.warning(
            "ml-100k: %s has %s users, %s movies and %s ratings, but ML-100K has %s users, "
            "%s movies and %s ratings; loading it as it is (fine for a deliberate subset); "
            "if the file is cut short, %s",
            tables.ratings_file,
            *(f"{n:,}" for n in (*found, *ML100K_COUNTS)),
            fix,
        )
    _warn_untitled(tables, fix)
    links = None
    if entities in ("auto", "kg") and tables.kg is not None:
        links = tables.kg
    elif entities in ("auto", "genres"):
        links = genre_links(tables.items)
    kind = "none" if links is None else "knowledge graph" if links is tables.kg else "genres"
    log.info("ml-100k: item entities from %s (entities=%r)", kind, entities)
    return _interactions("ml-100k", ratings, tables.items, source, item_entities=links)


def _warn_untitled(tables: _Tables, fix: str) -> None:
    """Warns when rated movies have no title in the item file: their text would be empty."""
    items = tables.items
    titled = items["item_id"][items["title"].fillna("").str.strip() != ""]
    rated = pd.unique(tables.ratings["item_id"])
    untitled = int((~np.isin(rated, titled.to_numpy())).sum())
    if untitled:
        log.warning(
            "ml-100k: %s of the %s rated movies have no title in %s, so Sentence-BERT embeds "
            "an empty text for them; if the file is cut short, %s",
            f"{untitled:,}",
            f"{len(rated):,}",
            tables.items_file,
            fix,
        )


def _interactions(
    name: str,
    ratings: pd.DataFrame,
    items: pd.DataFrame,
    source: str,
    plots: dict | None = None,
    tags: dict | None = None,
    item_entities: pd.DataFrame | None = None,
) -> Interactions:
    plots, tags = plots or {}, tags or {}
    frame = make_frame(
        ratings["user_id"].to_numpy(np.int64),
        ratings["item_id"].to_numpy(np.int64),
        ratings["rating"].to_numpy(np.float64),
        ratings["timestamp"].to_numpy(np.float64),
    )
    text = {}
    for item_id, title, year, genres in items[list(ITEM_COLUMNS)].itertuples(index=False):
        names = [g for g in genres.split("|") if g]
        text[int(item_id)] = movie_text(
            title, year, names, plots.get(int(item_id), ""), tags.get(int(item_id), ())
        )
    return Interactions(
        name=name, frame=frame, item_text=text, source=source, item_entities=item_entities
    )

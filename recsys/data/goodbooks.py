"""GoodBooks-10k: 6M ratings of 10k books, plus "to read" shelvings, with "Title by Author" texts.

Files, as in https://github.com/zygmuntz/goodbooks-10k: ``ratings.csv``
(``user_id,book_id,rating``), ``books.csv`` (``book_id,...,authors,original_publication_year,
original_title,title,...``) and, optionally, ``to_read.csv`` (``user_id,book_id``).

Each book's authors are its entities (``author:<name>``, ``Interactions.item_entities``).

A "to read" shelving is an implicit positive: it gets rating NaN, which the preparation step keeps
as a positive whatever the rating threshold. A shelving of a book the user also rated is dropped
(the rating says more).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.files import default_dir, find_file, read_table, require_dir, require_file
from recsys.data.interactions import Interactions, entity_frame, make_frame

URL = "https://github.com/zygmuntz/goodbooks-10k"
HINT = f"it must hold ratings.csv and books.csv (and optionally to_read.csv) from {URL}"


def load_goodbooks(data_dir: str | Path | None = None, *, to_read: bool = True) -> Interactions:
    """GoodBooks-10k ratings (1 to 5), and "to read" shelvings as implicit positives.

    Args:
        data_dir: folder with ``ratings.csv``, ``books.csv`` and optionally ``to_read.csv``;
            None means ``<data home>/goodbooks-10k``.
        to_read: add the shelvings of ``to_read.csv`` (rating NaN) when the file is there.
    """
    directory = default_dir("goodbooks-10k", data_dir, HINT)
    directory = require_dir(directory, "goodbooks-10k", HINT)
    ratings_path = require_file(directory, ["ratings.csv"], "goodbooks-10k", HINT)
    books_path = require_file(directory, ["books.csv"], "goodbooks-10k", HINT)
    ratings = read_table(
        ratings_path,
        columns=("user_id", "book_id", "rating"),
        numeric=("user_id", "book_id", "rating"),
    )
    users = ratings["user_id"].to_numpy(np.int64)
    books = ratings["book_id"].to_numpy(np.int64)
    values = ratings["rating"].to_numpy(np.float64)

    shelf_path = find_file(directory, ["to_read.csv"]) if to_read else None
    if shelf_path is not None:
        shelf = read_table(
            shelf_path, columns=("user_id", "book_id"), numeric=("user_id", "book_id")
        )
        shelf_users = shelf["user_id"].to_numpy(np.int64)
        shelf_books = shelf["book_id"].to_numpy(np.int64)
        base = int(max(books.max(initial=0), shelf_books.max(initial=0))) + 1
        # pandas' hash-table isin: np.isin takes seconds on millions of int64 keys
        new = ~pd.Series(shelf_users * base + shelf_books).isin(users * base + books).to_numpy()
        users = np.concatenate([users, shelf_users[new]])
        books = np.concatenate([books, shelf_books[new]])
        values = np.concatenate([values, np.full(int(new.sum()), np.nan)])

    table = read_table(
        books_path,
        columns=("book_id", "title", "authors"),
        numeric=("book_id",),
        optional=("original_publication_year",),
        dtype={"title": str, "authors": str},
    )
    years = table.get("original_publication_year", pd.Series(np.nan, index=table.index))
    years = pd.to_numeric(years, errors="coerce")
    text = {
        int(book): book_text(title, authors, year)
        for book, title, authors, year in zip(
            table["book_id"],
            table["title"].fillna(""),
            table["authors"].fillna(""),
            years,
            strict=True,
        )
    }
    frame = make_frame(users, books, values)
    return Interactions("goodbooks-10k", frame, text, str(directory), author_links(table))


def author_links(books: pd.DataFrame) -> pd.DataFrame:
    """Item-entity links of the books' authors (``authors`` is a comma-separated list)."""
    authors = books[["book_id", "authors"]].assign(
        authors=books["authors"].fillna("").str.split(",")
    )
    links = authors.explode("authors", ignore_index=True)
    return entity_frame(links["book_id"].to_numpy(np.int64), links["authors"].fillna(""), "author:")


def book_text(title: str, authors: str, year: float) -> str:
    """``"The Hobbit by J.R.R. Tolkien (1937)"``; empty parts are left out."""
    text = title
    if authors:
        text += " by " + ", ".join(a.strip() for a in authors.split(","))
    if not np.isnan(year):
        text += f" ({int(year)})"
    return text.strip()

"""Reading dataset files for the loaders: where data lives, and tables checked on the way in.

Every problem a user can cause here (a missing directory or file, wrong columns, a malformed
line, undecodable text) becomes a one-line :class:`RecsysError` naming the file and the fix.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recsys.errors import RecsysError

DATA_ENV = "RECSYS_TUNE_DATA"
DEFAULT_DATA_HOME = Path("~/.cache/recsys-tune")


def data_home(cache_dir: str | Path | None = None) -> Path:
    """The folder for downloaded and cached raw datasets.

    Args:
        cache_dir: explicit folder; when None, ``$RECSYS_TUNE_DATA``, else ``~/.cache/recsys-tune``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else DEFAULT_DATA_HOME.expanduser()


def default_dir(dataset: str, data_dir: str | Path | None, hint: str) -> Path:
    """``data_dir``, or ``<data home>/<dataset>`` when it is None and that folder exists.

    Args:
        hint: which files the folder must hold and where to get them, for the error message.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    fallback = data_home() / dataset
    if fallback.is_dir():
        return fallback
    raise RecsysError(
        f"dataset {dataset!r} needs a data directory: pass --data-dir DIR ({hint}) "
        f"or put the files in {fallback}"
    )


def require_dir(path: str | Path, dataset: str, hint: str) -> Path:
    """Checks that ``path`` is a readable directory.

    Args:
        hint: which files the folder must hold, for the error message.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise RecsysError(f"dataset {dataset!r}: data directory {path} does not exist; {hint}")
    if not path.is_dir():
        raise RecsysError(f"dataset {dataset!r}: {path} is not a directory; {hint}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise RecsysError(
            f"dataset {dataset!r}: data directory {path} is not readable; fix its permissions"
        )
    return path


def find_file(directory: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` that is a file in ``directory``, or None."""
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def require_file(directory: Path, names: Sequence[str], dataset: str, hint: str) -> Path:
    """The first of ``names`` present in ``directory``; a RecsysError listing them otherwise."""
    found = find_file(directory, names)
    if found is None:
        wanted = " or ".join(names)
        raise RecsysError(f"dataset {dataset!r}: {wanted} not found in {directory}; {hint}")
    return found


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The whole file as text, with unreadable or undecodable files as RecsysError."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise RecsysError(
            f"{path}: not {encoding} text (byte {exc.start}); re-save it as {encoding}"
        ) from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise RecsysError(f"{path}: cannot read it ({reason}); check the file") from None


def read_table(
    source: Path | str,
    *,
    columns: Sequence[str],
    sep: str = ",",
    header: bool = True,
    numeric: Sequence[str] = (),
    optional: Sequence[str] = (),
    dtype: dict | None = None,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_MINIMAL,
    label: str | None = None,
) -> pd.DataFrame:
    """Reads a delimited table and checks its columns and every line.

    Args:
        source: a path, or the text itself (then ``label`` names it in messages).
        columns: required columns. With ``header=True`` the file's header must contain them
            (other columns are dropped); with ``header=False`` they name the fields in order and
            each line must have exactly that many.
        sep: field separator (one character).
        numeric: columns that must parse as numbers on every line.
        optional: further header columns kept when the file has them.
        dtype: pandas dtypes for some columns (e.g. ``str`` for ids).
        quoting: a ``csv.QUOTE_*`` constant; ``QUOTE_NONE`` for formats without quoting.
        label: name of the source in messages when ``source`` is text.

    Returns:
        A frame with ``columns`` then the ``optional`` ones present, in that order; the
        ``numeric`` ones as numbers.
    """
    text_given = isinstance(source, str) and label is not None
    name = label if text_given else str(source)
    frame = _parse(
        io.StringIO(source) if text_given else source,
        name,
        columns=columns,
        sep=sep,
        header=header,
        dtype=dtype,
        encoding=encoding,
        text_given=text_given,
        quoting=quoting,
    )
    if header:
        frame = _keep_columns(frame, name, columns, optional)
    _to_numbers(frame, name, numeric, first_line=2 if header else 1)
    return frame


def _parse(
    buffer: Path | str | io.StringIO,
    name: str,
    *,
    columns: Sequence[str],
    sep: str,
    header: bool,
    dtype: dict | None,
    encoding: str,
    text_given: bool,
    quoting: int,
) -> pd.DataFrame:
    """``pd.read_csv`` of ``buffer`` (text when ``text_given``), failures as a RecsysError."""
    try:
        with warnings.catch_warnings():
            # pandas only warns when the first line has more fields than names; make it an error
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                buffer,
                sep=sep,
                header=0 if header else None,
                names=None if header else list(columns),
                index_col=False,
                dtype=dtype,
                encoding=None if text_given else encoding,
                quoting=quoting,
                keep_default_na=False,
                na_values=[""],
                low_memory=False,
            )
    except UnicodeDecodeError as exc:
        raise RecsysError(
            f"{name}: not {encoding} text (byte {exc.start}); re-save it as {encoding}"
        ) from None
    except pd.errors.EmptyDataError:
        raise RecsysError(f"{name}: the file is empty; expected columns {list(columns)}") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        detail = str(exc).strip().splitlines()[0].replace("Error tokenizing data. C error: ", "")
        raise RecsysError(
            f"{name}: malformed line ({detail}); expected {len(columns)} {sep!r}-separated "
            f"fields {list(columns)} on every line"
        ) from None
    except ValueError as exc:
        raise RecsysError(f"{name}: cannot parse it ({exc}); check the file format") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise RecsysError(f"{name}: cannot read it ({reason}); check the file") from None


def _keep_columns(
    frame: pd.DataFrame, name: str, columns: Sequence[str], optional: Sequence[str]
) -> pd.DataFrame:
    """``columns`` then the ``optional`` ones present; a RecsysError when a required one lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RecsysError(
            f"{name}: wrong columns: expected {list(columns)}, found {list(frame.columns)}; "
            f"give the file a header line with those names"
        )
    return frame[list(columns) + [c for c in optional if c in frame.columns]]


def _to_numbers(frame: pd.DataFrame, name: str, numeric: Sequence[str], first_line: int) -> None:
    """Converts the ``numeric`` columns in place; the first non-number is a RecsysError.

    Args:
        first_line: file line number of the first data row, for the message.
    """
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            row = int(bad.argmax())
            raise RecsysError(
                f"{name}: malformed line {row + first_line}: {col} is "
                f"{_shown(frame[col].iloc[row])}, expected a number; fix or remove that line"
            )
        frame[col] = values


def _shown(value: object) -> str:
    return "missing" if pd.isna(value) else repr(value)

"""Small file helpers: writes that never leave a half-written file behind, and the check that a
folder can be written before anything is."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from recsys.errors import RecsysError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; a finished file gets the usual permissions (0666 less umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def check_writable(path: str | Path, flag: str) -> None:
    """Raises unless folder ``path`` (which may not exist yet) can be created and written to.

    Tries for real (a temporary file in the nearest existing folder), so a read-only file system
    is caught even for a user whom permissions would let write.

    Args:
        path: the folder.
        flag: the command-line flag that named it, for the message.
    """
    path = Path(path).expanduser().resolve()
    too_long = [p.name for p in (path, *path.parents) if len(os.fsencode(p.name)) > 255]
    if too_long:
        raise RecsysError(
            f"{flag}: the folder name {too_long[0][:40]}... is {len(too_long[0])} characters "
            f"long, more than a file system takes (255); pass a shorter one"
        )
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RecsysError(
            f"{flag} {path}: {probe} is a file, not a folder; pass a folder you can write to"
        )
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise RecsysError(
            f"{flag} {path}: cannot write in {probe} ({error.strerror or error}); pass a folder "
            f"you can write to"
        ) from None


_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s]+)@")


def redact(uri: str) -> str:
    """``uri`` with its user info (``user:token@``) hidden, for everything that is logged or
    saved: ``http://u:pw@host`` -> ``http://***@host``."""
    return _USERINFO.sub(r"\g<scheme>***@", uri)


def redact_command(words: list[str]) -> list[str]:
    """A command line with the user info of every URI in it hidden (``--flag=URI`` too)."""
    out = []
    for word in words:
        flag, eq, value = word.partition("=")
        out.append(f"{flag}={redact(value)}" if eq and flag.startswith("--") else redact(word))
    return out

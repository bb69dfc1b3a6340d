"""An exclusive claim on a results directory while a sweep runs there.

Two sweeps with the same ``--name`` / ``--results-dir`` (or two resumes of one sweep) would
otherwise both pass the "already holds a sweep" check and write each other's files. The claim
is an ``flock`` on ``<results>/.sweep/lock``, taken before anything else: the operating system
drops it when the process ends, ``kill -9`` included, so a killed sweep never blocks its own
``--resume``. A sweep refused for bad input removes what the claim created.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from recsys.errors import RecsysError
from recsys.io import check_writable

LOCK = "lock"


class Claim:
    """The held claim on one results directory (see the module docstring)."""

    def __init__(self, lock: Path, fd: int, created: list[Path], new_lock: bool) -> None:
        self.lock = lock
        self._fd: int | None = fd
        self._created = created  # the folders the claim made, deepest first
        self._new_lock = new_lock

    @classmethod
    def take(cls, results_dir: Path, state_dir: str) -> Claim:
        """Claims ``results_dir``, or raises a one-line ``RecsysError`` naming the process that
        holds it."""
        check_writable(results_dir, "--results-dir")
        folder = results_dir / state_dir
        created = [p for p in (folder, *folder.parents) if not p.exists()]
        lock = folder / LOCK
        new_lock = not lock.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            for made in created:
                with contextlib.suppress(OSError):
                    made.rmdir()
            raise RecsysError(
                f"--results-dir {results_dir}: cannot be created ({error.strerror or error}); "
                f"pass a shorter or other folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RecsysError(
                f"{results_dir} is in use by another sweep (pid {holder}); wait for it to end, "
                f"or pass another --name / --results-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(lock, fd, created, new_lock)

    def release(self, undo: bool = False) -> None:
        """Lets the claim go; ``undo``: also removes the lock and the folders the claim made
        (a sweep refused before it wrote anything leaves nothing behind)."""
        if self._fd is None:
            return
        if undo and self._new_lock:
            with contextlib.suppress(OSError):
                self.lock.unlink()
            for folder in self._created:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

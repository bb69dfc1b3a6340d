"""Ctrl-C and SIGTERM during a sweep: during the search, Tune saves its state and stops; after
it, the sweep records that it was interrupted. Either way ``--resume`` continues."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from recsys.tuning import console


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM during a search: Tune saves its state and stops, and the event says so.

    A terminal's Ctrl-C also reaches the trial processes, whose trials then end in errors; the
    event, not the trials' states, tells an interrupted search from a finished one. A second
    Ctrl-C stops at once.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # signals reach the main thread only
        return

    def stop(signum: int, frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        console.warn("interrupted: saving the search's state (Ctrl-C again to stop at once)")
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Tune would replace the SIGINT handler with one that sets no flag of ours.
    before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the sweep as Ctrl-C does (``KeyboardInterrupt``), so that the sweep records
    that it was interrupted (the search replaces this with its own graceful stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

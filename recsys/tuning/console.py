"""The sweep's one console: progress and information (``say``), which ``--quiet`` silences, and
warnings (``warn``: something was lost or waits), which go to stderr whatever the verbosity.

``run_sweep`` sets the verbosity once (:func:`configure`); every step of the sweep prints through
here, so ``--quiet`` silences the whole sweep but its warnings, errors and final summary.
"""

from __future__ import annotations

import sys

_verbose = True


def configure(verbose: bool) -> None:
    global _verbose
    _verbose = bool(verbose)


def verbose() -> bool:
    return _verbose


def say(*lines: str) -> None:
    """Lines of progress or information (silenced by ``--quiet``)."""
    if _verbose:
        for line in lines:
            print(line, flush=True)


def warn(line: str) -> None:
    """A line the user must see: on stderr, also with ``--quiet``."""
    print(line, file=sys.stderr, flush=True)

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


class _NoReportsYet:
    """Drops Tune's "Failed to fetch metrics" warning when every trial it names only lacks its
    results file: a trial that an interruption or a time budget stopped before its first report
    has no metrics to fetch, which is not a failure (the sweep's records say it never reported)."""

    def filter(self, record: object) -> bool:
        message = str(getattr(record, "msg", ""))
        if not message.startswith("Failed to fetch metrics"):
            return True
        failures = [line for line in message.splitlines()[1:] if line.startswith("- ")]
        return not failures or not all("FileNotFoundError(" in line for line in failures)


def hide_unreported_trials() -> None:
    """Installs :class:`_NoReportsYet` on Tune's result reader's logger (once)."""
    import logging

    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    if not any(isinstance(f, _NoReportsYet) for f in logger.filters):
        logger.addFilter(_NoReportsYet())

"""How things end badly, by type: ``RecsysError`` for the user's input, ``SweepEnded`` for a
sweep that started and stopped before its results. Each carries its exit status, so an entry
script's ``except`` clauses can come in any order.
"""

import errno

# Exit statuses: how a sweep ended, for scripts and schedulers (``recsys.cli`` re-exports them).
EXIT_OK = 0  # every model has its result, no trial lost
EXIT_MODEL_FAILED = 1  # a model has no result (every trial failed), or trial updates never
# reached the tracking store; the sweep is "failed" and --resume retries. Also: the results are
# complete but the tracking store broke ("untracked"); --resume logs the sweep again
EXIT_BAD_INPUT = 2  # nothing ran: a flag, file or path was wrong
EXIT_TRIALS_LOST = 3  # every model has a result, but some trials failed after their restarts
EXIT_TIME_BUDGET = 4  # --time-budget ran out: the results are of the trials it let run (a model
# that got none has no result); the sweep is "time_budget", final (--warm-start goes on from it)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: --resume continues


class RecsysError(Exception):
    """A problem with the user's input, phrased as what is wrong and how to fix it.

    Entry scripts print ``str(error)`` on one line and exit non-zero, without a traceback.
    """

    exit_status = EXIT_BAD_INPUT
    label = "error"


class SweepEnded(Exception):
    """A sweep that started ended before its results; the message says how to go on."""

    exit_status = EXIT_MODEL_FAILED
    label = "failed"


class SweepInterrupted(SweepEnded):
    """The sweep stopped before every trial finished; ``--resume`` continues it."""

    exit_status = EXIT_INTERRUPTED
    label = "interrupted"


class TrackingLost(SweepEnded):
    """The tracking store stayed unreachable: some trial updates were never logged."""


class DiskFull(SweepEnded):
    """A disk the sweep writes to is full (or over quota): the sweep stopped where it was;
    ``--resume`` goes on once there is space."""


# errno values that mean "no room to write", whatever the file.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def require(ok: bool, message: str) -> None:
    """Raises ``RecsysError(message)`` unless ``ok``: the check of a config's field."""
    if not ok:
        raise RecsysError(message)

"""How a sweep ends: ``SweepResult`` (what a sweep that ran to its end hands back), its status
recorded in its state and on its MLflow runs, and the interruption that tells the user how to
go on."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from recsys.errors import DISK_FULL_ERRNOS, DiskFull, SweepInterrupted
from recsys.io import redact
from recsys.tuning import console, tracking
from recsys.tuning.leaderboard import Leaderboard
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.state import TIME_BUDGET, UNTRACKED, SweepState
from recsys.tuning.trial_runs import unreachable


@dataclass
class SweepResult:
    """What :func:`recsys.tuning.sweep.run_sweep` hands back; ``state.status`` says how the
    sweep ended."""

    state: SweepState
    leaderboard: Leaderboard
    outcomes: list[ModelOutcome]
    wall_seconds: float = 0.0  # this run of the sweep (a resumed one: since the resume)
    search_seconds: float = 0.0  # the part of it in the search
    notes: list[str] = field(default_factory=list)

    @property
    def failed_models(self) -> list[ModelOutcome]:
        """Models without a result for a failure of theirs (not for a time budget that ran out
        before any of their trials reported: :attr:`unreached`)."""
        return [o for o in self.outcomes if o.error is not None and o not in self.unreached]

    @property
    def unreached(self) -> list[ModelOutcome]:
        """Models the time budget left without a trial that reported (none without the cut)."""
        if not self.state.time_cut:
            return []
        return [o for o in self.outcomes if o.error is not None and o.trials == 0]

    @property
    def trials_failed(self) -> int:
        return sum(o.trials_failed for o in self.outcomes)

    @property
    def ending(self) -> str:
        """How a sweep that ran to its end ended (``SweepState.status``)."""
        if self.failed_models:
            return "failed"
        if not self.state.tracked:
            return UNTRACKED
        if self.state.time_cut:
            return TIME_BUDGET
        return "trials_lost" if self.trials_failed else "finished"


def interrupted(state: SweepState) -> SweepInterrupted:
    return SweepInterrupted(
        f"sweep {state.name!r} interrupted; nothing is lost: continue it with "
        f"{state.resume_command()}"
    )


def ended(state: SweepState, error: BaseException) -> BaseException:
    """Records how a sweep that stopped on ``error`` ended; returns what to raise: ``error``
    itself, or the ending that tells the user how to go on (an interruption after the search:
    :func:`interrupted`; a full disk: :func:`disk_full`)."""
    if isinstance(error, KeyboardInterrupt):  # after the search (which saves its own state)
        record(state, "interrupted")
        return interrupted(state)
    if isinstance(error, OSError):
        with contextlib.suppress(OSError):  # on a full disk the state may not fit either
            record(state, "failed")
        return disk_full(state, error) if error.errno in DISK_FULL_ERRNOS else error
    record(state, "interrupted" if isinstance(error, SweepInterrupted) else "failed")
    return error


def disk_full(state: SweepState, error: OSError) -> DiskFull:
    """A full disk's ending. The state on disk stays the last one saved (written atomically, so
    never cut short) and a resume goes on from it once there is space."""
    where = f" writing {error.filename}" if error.filename else ""
    return DiskFull(
        f"{error.strerror or 'no space left on device'}{where}: the sweep stopped; what it "
        f"finished is kept. Free space on that disk and continue with {state.resume_command()}"
    )


def record(state: SweepState, status: str) -> None:
    """Records how the sweep ended: in its state, on its MLflow runs (open ones closed).

    A tracking store that does not answer leaves the runs open and says so; the state, the
    sweep's own record, is written first.
    """
    state.status = status
    state.save()
    if not state.tracked:
        return
    try:
        tracking.end_sweep(state.tracking_uri, state.parent_run_id, status)
    except Exception as error:
        if not unreachable(error):
            raise
        console.warn(
            f"MLflow at {redact(state.tracking_uri)} does not answer: the sweep's runs stay "
            f"RUNNING there; it ended {status!r} (see {state.results_dir}/.sweep/sweep.json)"
        )

"""How a sweep ends: its status recorded in its state and on its MLflow runs, and the
interruption that tells the user how to go on."""

from __future__ import annotations

from recsys.errors import SweepInterrupted
from recsys.tuning import console, tracking
from recsys.tuning.state import SweepState
from recsys.tuning.trial_runs import unreachable


def interrupted(state: SweepState) -> SweepInterrupted:
    return SweepInterrupted(
        f"sweep {state.name!r} interrupted; nothing is lost: continue it with "
        f"{state.resume_command()}"
    )


def record(state: SweepState, status: str) -> None:
    """Records how the sweep ended: in its state, on its MLflow runs (open ones closed).

    A tracking store that does not answer leaves the runs open and says so; the state, the
    sweep's own record, is written first.
    """
    state.status = status
    state.save()
    try:
        tracking.end_sweep(state.tracking_uri, state.parent_run_id, status)
    except Exception as error:
        if not unreachable(error):
            raise
        console.warn(
            f"MLflow at {state.tracking_uri} does not answer: the sweep's runs stay RUNNING "
            f"there; it ended {status!r} (see {state.results_dir}/.sweep/sweep.json)"
        )

"""After the search, for one model: its best checkpoint, what its search cost, its curves.

Pure functions of :class:`~recsys.tuning.records.TrialRecord`: no file read, no model built, no
Ray (scoring the chosen checkpoint is :mod:`recsys.tuning.scoring`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recsys.metrics import metric_key
from recsys.tuning.outcome import SearchCost
from recsys.tuning.records import TrialEnd, TrialRecord


class ModelFailed(Exception):
    """Every trial of a model failed, or none kept a checkpoint: it has no best checkpoint."""


@dataclass(frozen=True)
class Choice:
    """A model's best checkpoint among its trials, and what trained it.

    Attributes:
        model: the model; ``trial_id`` the trial; ``checkpoint`` the chosen one of its
            checkpoints (a ``ray.tune.Checkpoint``).
        config: the trial's hyperparameters; ``seed`` its seed; ``epoch`` the checkpoint's.
        value: the validation target reported with the checkpoint.
    """

    model: str
    trial_id: str
    checkpoint: Any
    config: dict[str, Any]
    seed: int
    epoch: int
    value: float


def choose(records: Sequence[TrialRecord], metric: str) -> Choice:
    """The checkpoint with the best validation ``metric`` over all trials and epochs (the first
    trial's on a tie).

    Raises:
        ModelFailed: every trial failed, or none reported the metric with a checkpoint.
    """
    key = metric_key("val", metric)
    if records and all(r.end is TrialEnd.FAILED for r in records):
        first = next(r.error for r in records if r.error is not None)
        name = records[0].model
        raise ModelFailed(f"every trial of {name!r} failed; first error: {one_line(first)}")
    best: tuple[TrialRecord, Any, float, Any] | None = None
    for record in records:
        for checkpoint, metrics in record.checkpoints:
            value = metrics.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if best is None or value > best[2]:
                best = (record, checkpoint, value, metrics)
    if best is None:
        name = records[0].model if records else "the model"
        raise ModelFailed(f"no trial of {name!r} reported {key} with a checkpoint")
    record, checkpoint, value, metrics = best
    return Choice(
        model=record.model,
        trial_id=record.trial_id,
        checkpoint=checkpoint,
        config=dict(record.config),
        seed=record.seed,
        epoch=int(metrics.get("epoch", 0)),
        value=float(value),
    )


def search_cost(records: Sequence[TrialRecord]) -> SearchCost:
    """What a model's search spent. Its wall time, from the first trial's start to the last
    report, includes the time a sweep stood interrupted."""
    starts = [r.started_at for r in records if r.started_at is not None]
    ends = [r.last_report_at for r in records if r.last_report_at is not None]
    return SearchCost(
        trials=len(records),
        stopped=sum(r.end is TrialEnd.STOPPED for r in records),
        failed=sum(r.end is TrialEnd.FAILED for r in records),
        epochs=sum(r.last_epoch for r in records),
        seconds=sum(r.train_seconds for r in records),
        wall_seconds=max(ends) - min(starts) if starts else 0.0,
    )


def trial_curves(records: Sequence[TrialRecord], key: str) -> list[dict[str, Any]]:
    """Every reported ``(trial, epoch, value)`` of ``key``, and whether the trial was stopped
    early."""
    rows = []
    for record in records:
        stopped = record.end is TrialEnd.STOPPED
        for epoch, value in record.values(key):
            rows.append(
                {
                    "trial_id": record.trial_id or record.path,
                    "epoch": epoch,
                    "value": value,
                    "stopped_early": stopped,
                }
            )
    return rows


def one_line(error: Any) -> str:
    """The last line of an error (a trial's error is a whole remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__

"""What one trial did, as the steps after the search read it: ``TrialRecord`` and ``TrialEnd``.

Tune's shapes end here: :func:`records_of` is the one place that reads a ``ResultGrid``. Every
later step (``best``, the leaderboard's counts, the curves) reads records, and the console's
progress and the trials' MLflow tags end trials by the same rule, :meth:`TrialEnd.of`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from recsys.tuning.trainable import is_defaults_trial, split_config, trial_seed, warm_source


class TrialEnd(enum.Enum):
    """How a trial ended; the value is its MLflow tag (``recsys.status``)."""

    FINISHED = "completed"  # trained its whole budget
    STOPPED = "stopped_early"  # stopped by ASHA before its budget
    FAILED = "error"  # ended in an error after its restarts: its results are lost

    @classmethod
    def of(cls, failed: bool, last_epoch: int, max_epochs: int) -> TrialEnd:
        """The one rule: failed, else stopped before ``max_epochs``, else finished."""
        if failed:
            return cls.FAILED
        return cls.STOPPED if last_epoch < max_epochs else cls.FINISHED


@dataclass(frozen=True)
class TrialRecord:
    """One trial of one model, as it ended.

    Attributes:
        trial_id: Tune's id (empty if the trial never reported); ``path`` its folder.
        model: the registry name; ``config`` its hyperparameters; ``seed`` its training seed.
        reports: every evaluation it reported, one per epoch (a resumed trial's repeated
            epochs: the last report), in epoch order.
        checkpoints: ``(checkpoint, metrics reported with it)`` of the checkpoints it kept.
        end: how it ended; ``error`` its error (a remote traceback) if it failed.
        started_at, last_report_at: Unix times of its first start and its last report (None if
            it never reported); ``train_seconds`` its training time over every epoch.
        defaults: whether it is its model's defaults trial (the first of its search).
        warm_from: the earlier best run whose config it re-runs (``--warm-start``), or None.
    """

    trial_id: str
    path: str
    model: str
    config: Mapping[str, Any]
    seed: int
    reports: tuple[Mapping[str, Any], ...]
    checkpoints: tuple[tuple[Any, Mapping[str, Any]], ...]
    end: TrialEnd
    error: str | None = None
    started_at: float | None = None
    last_report_at: float | None = None
    train_seconds: float = 0.0
    defaults: bool = False
    warm_from: str | None = None

    @property
    def last_epoch(self) -> int:
        return int(self.reports[-1]["epoch"]) if self.reports else 0

    def values(self, key: str) -> list[tuple[int, float]]:
        """``(epoch, value)`` of every report of ``key`` (NaN and missing left out)."""
        out = []
        for report in self.reports:
            value = report.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out.append((int(report["epoch"]), float(value)))
        return out


def records_of(
    grid: Iterable[Any], max_epochs: Mapping[str, int], root_seed: int
) -> dict[str, list[TrialRecord]]:
    """Per model (in ``max_epochs``' order), the records of its trials in a Tune ``ResultGrid``
    (or any iterable of Tune ``Result``).

    A trial that never ran (no report, no error: one the time budget stopped before it
    started) is no trial of its model and has no record.
    """
    out: dict[str, list[TrialRecord]] = {model: [] for model in max_epochs}
    for result in grid:
        record = _record(result, max_epochs, root_seed)
        if record.reports or record.end is TrialEnd.FAILED:
            out.setdefault(record.model, []).append(record)
    return out


def _record(result: Any, max_epochs: Mapping[str, int], root_seed: int) -> TrialRecord:
    model, config = split_config(result.config)
    frame = result.metrics_dataframe
    reports: list[dict[str, Any]] = []
    started = ended = None
    seconds = 0.0
    if frame is not None and "epoch" in frame and len(frame):
        if "timestamp" in frame and "time_total_s" in frame:
            started = float((frame["timestamp"] - frame["time_total_s"]).min())
            ended = float(frame["timestamp"].max())
        frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch", kind="stable")
        reports = frame.to_dict("records")
        if "epoch_seconds" in frame:
            gaps = frame["epoch"].diff().fillna(frame["epoch"].iloc[0])
            seconds = float((frame["epoch_seconds"] * gaps).sum())
    failed = result.error is not None
    last = int(reports[-1]["epoch"]) if reports else 0
    return TrialRecord(
        trial_id=str((result.metrics or {}).get("trial_id", "")),
        path=str(result.path),
        model=model,
        config=config,
        seed=trial_seed(root_seed, model, config),
        reports=tuple(reports),
        checkpoints=tuple((c, dict(m)) for c, m in (result.best_checkpoints or [])),
        end=TrialEnd.of(failed, last, max_epochs.get(model, last)),
        error=str(result.error) if failed else None,
        started_at=started,
        last_report_at=ended,
        train_seconds=seconds,
        defaults=is_defaults_trial(result.config),
        warm_from=warm_source(result.config),
    )

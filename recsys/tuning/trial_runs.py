"""Each trial of the search as an MLflow run nested under the sweep's run, logged from the driver.

Every call to the tracking store goes through an :class:`Outbox`. When the store does not
answer (a tracking server restarting, a network cut), the calls wait there in order while the
search goes on; they are sent again every few seconds and once more, waiting up to
:data:`FINAL_WAIT_S`, when the search ends. Updates still waiting then fail the sweep, with
their number: nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ray.tune import Callback

from recsys.errors import TrackingLost
from recsys.io import redact
from recsys.tuning import console
from recsys.tuning.records import TrialEnd, TrialRecord
from recsys.tuning.tracking import (
    TAG_DEFAULTS,
    TAG_NODE,
    TAG_STATUS,
    TAG_WARM,
    child_run,
    client,
    find_child_runs,
    metric_batch,
    param_batch,
    store_problem,
)
from recsys.tuning.trainable import is_defaults_trial, split_config, trial_seed, warm_source

RETRY_EVERY_S = 5.0
FINAL_WAIT_S = 180.0
REQUEST_TIMEOUT_S = 10  # per call while buffering, instead of MLflow's 120 s and 7 retries
_TRIAL_METRICS = (
    "epoch",
    "epoch_seconds",
    "setup_seconds",
    "resumed_from_epoch",
    # what the trial used, and the memory plan's estimate of it (recsys.tuning.accounting)
    "cpu_seconds",
    "peak_rss_bytes",
    "peak_gpu_bytes",
    "mem_estimate_bytes",
    "gpu_estimate_bytes",
    "epoch_seconds_estimate",
)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store could not be reached (worth retrying), not that it
    refused the call."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, OSError):  # ConnectionError and TimeoutError among them
        return True
    if isinstance(error, MlflowException):
        # MLflow's HTTP client: "API request to <url> failed with exception ..." when nothing
        # answers; 503/429 answers from a server that is starting or busy.
        return "API request to" in str(error) or error.error_code in (
            "TEMPORARILY_UNAVAILABLE",
            "REQUEST_LIMIT_EXCEEDED",
        )
    return False


@contextlib.contextmanager
def _one_try() -> Iterator[None]:
    """MLflow's HTTP client tries a call 7 times over minutes by default; the outbox retries
    itself, so one try with a short timeout keeps the search going."""
    saved = {k: os.environ.get(k) for k in _ONE_TRY}
    os.environ.update(_ONE_TRY)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_ONE_TRY = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
}


class Outbox:
    """Tracking calls, sent in order; while the store does not answer they wait for the next
    :meth:`flush`.

    A store that is broken for good (``tracking.store_problem``: a local database deleted or
    replaced) is not waited for: the outbox says so once, and from then on counts the calls it
    cannot send in :attr:`lost` instead of sending them; :attr:`broken` says why.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.where = redact(tracking_uri)
        self.broken: str | None = None
        self.lost = 0
        self._pending: deque[Callable[[], Any]] = deque()
        self._down_since: float | None = None
        self._last_try = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, call: Callable[[], Any]) -> None:
        if self.broken is not None:
            self.lost += 1
            return
        self._pending.append(call)
        if self._down_since is None or self.retry_due():
            self.flush()

    def _break(self, problem: str) -> None:
        self.broken = problem
        self.lost += len(self._pending)
        self._pending.clear()
        console.warn(
            f"MLflow store {self.where} is broken: {problem}; this sweep's runs are no longer "
            "logged there. The search goes on and its results directory will be complete"
        )

    def retry_due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last_try >= RETRY_EVERY_S

    def flush(self) -> bool:
        """Sends what waits, in order; False if the store stopped answering on the way."""
        self._last_try = time.monotonic()
        while self._pending:
            try:
                with _one_try():
                    self._pending[0]()
            except Exception as error:
                problem = store_problem(self.tracking_uri)
                if problem is not None:
                    self._break(problem)
                    return True
                if not unreachable(error):
                    raise
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    console.warn(
                        f"MLflow at {self.where} does not answer: trial updates wait and are "
                        f"sent again every {RETRY_EVERY_S:g} s; the search goes on"
                    )
                return False
            self._pending.popleft()
        if self._down_since is not None:
            console.warn(
                f"MLflow at {self.where} answers again after "
                f"{time.monotonic() - self._down_since:.0f} s: every waiting update is logged"
            )
            self._down_since = None
        return True

    def drain(self, timeout: float = FINAL_WAIT_S) -> None:
        """Flushes until nothing waits; raises :class:`TrackingLost` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self.flush():
            if time.monotonic() >= deadline:
                raise TrackingLost(
                    f"MLflow at {self.where} did not answer for {timeout:.0f} s at the end of the "
                    f"search: {len(self)} trial updates were not logged; start the tracking "
                    f"server again and resume the sweep with --resume"
                )
            time.sleep(RETRY_EVERY_S)


class MlflowTrialCallback(Callback):
    """Mirrors each trial of the search into a run nested under the sweep's run.

    Params are the trial config plus its seed; metrics are logged per evaluation with the epoch
    as step; on completion the run is tagged with whether ASHA stopped it early. After a
    restore, a trial that already has a run keeps it (found by its trial-id tag) and epochs
    already logged are not logged again.
    """

    def __init__(
        self,
        tracking_uri: str,
        parent_run_id: str,
        max_epochs: Mapping[str, int],
        root_seed: int,
        sweep_id: str = "",
    ) -> None:
        """``max_epochs``: per model, the epochs of a trial ASHA does not stop; ``sweep_id``:
        the sweep's id, by which a restored search finds this callback (:meth:`__reduce__`)."""
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.max_epochs = dict(max_epochs)
        self.root_seed = root_seed
        self.sweep_id = sweep_id
        self._init_state()
        if sweep_id:
            _LIVE[sweep_id] = self

    def __reduce__(self):
        # Tune pickles callbacks with the experiment and a restored search uses the pickled
        # ones: it gets this sweep's live callback back (the one the driver drains, with the
        # store and parent run of this run of the sweep), not a stale copy of the last one.
        return _restored, (self.sweep_id, self.__getstate__())

    def _init_state(self) -> None:
        self._client = None
        self.outbox = Outbox(self.tracking_uri)
        self._runs: dict[str, str] = {}  # trial id -> run id
        self._last_step: dict[str, int] = {}  # trial id -> last epoch logged (or waiting)
        self._last_epoch: dict[str, int] = {}

    def __getstate__(self) -> dict:
        # The MLflow client holds a DB engine; credentials are not written to disk.
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state.pop("outbox", None)
        state["tracking_uri"] = redact(self.tracking_uri)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_state()

    @property
    def mlflow(self):
        """The client, and the runs an earlier run of the sweep left (read once, at start)."""
        if self._client is None:
            self._client = client(self.tracking_uri)
            for trial_id, run in find_child_runs(
                self.tracking_uri, self.parent_run_id, "trial"
            ).items():
                self._runs[trial_id] = run.info.run_id
                history = self._client.get_metric_history(run.info.run_id, "epoch")
                self._last_step[trial_id] = max((m.step for m in history), default=0)
        return self._client

    def setup(self, **info: Any) -> None:
        _ = self.mlflow  # the store answered the checks before the search

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        c, trial_id = self.mlflow, trial.trial_id
        if trial_id in self._runs or trial_id in self._last_step:
            self.outbox.put(lambda: c.update_run(self._runs[trial_id], status="RUNNING"))
            return
        model, config = split_config(trial.config)
        seed = trial_seed(self.root_seed, model, config)
        self._last_step[trial_id] = 0
        tags = _marks(is_defaults_trial(trial.config), warm_source(trial.config))

        def create() -> None:
            run_id = child_run(c, self.parent_run_id, "trial", model, trial_id, tags=tags)
            self._runs[trial_id] = run_id
            c.log_batch(run_id, params=param_batch({**config, "seed": seed}))

        self.outbox.put(create)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        c, trial_id = self.mlflow, trial.trial_id
        if trial_id not in self._last_step:
            self.on_trial_start(iteration, trials, trial)
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        self._last_epoch[trial_id] = epoch
        if "node_id" in result:  # the first report after each (re)start
            node = str(result["node_id"])
            self.outbox.put(lambda: c.set_tag(self._runs[trial_id], TAG_NODE, node))
        if epoch <= self._last_step.get(trial_id, 0):
            return  # already logged before the restore
        keep = {
            k: v
            for k, v in result.items()
            if k.startswith(("val_", "train_")) or k in _TRIAL_METRICS
        }
        batch = metric_batch(keep, epoch)
        self.outbox.put(lambda: c.log_batch(self._runs[trial_id], metrics=batch))
        self._last_step[trial_id] = epoch

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._finish(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._finish(trial, "FAILED")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if self.outbox.retry_due():
            self.outbox.flush()

    def _finish(self, trial: Any, status: str) -> None:
        c, trial_id = self.mlflow, trial.trial_id
        if trial_id not in self._last_step:
            return
        last = trial.last_result or {}
        epoch = int(last.get("epoch", self._last_epoch.get(trial_id, 0)))
        max_epochs = self.max_epochs[split_config(trial.config)[0]]
        outcome = TrialEnd.of(status == "FAILED", epoch, max_epochs).value

        def finish() -> None:
            run_id = self._runs[trial_id]
            c.set_tag(run_id, TAG_STATUS, outcome)
            c.set_tag(run_id, "recsys.final_epoch", str(epoch))
            c.set_terminated(run_id, status=status)

        self.outbox.put(finish)

    def complete(self, records: Mapping[str, list[TrialRecord]]) -> str | None:
        """After the search: every trial's run logged (:meth:`backfill`, then everything that
        waits sent); returns why the store is broken if it is (nothing more is logged)."""
        self.backfill(records)
        self.outbox.drain()
        return self.outbox.broken

    def backfill(self, records: Mapping[str, list[TrialRecord]]) -> int:
        """Logs the trials that have no run under the sweep's run (a sweep resumed into a new
        store after its first one broke) from their records: params, every reported epoch,
        how they ended. Returns how many runs it created."""
        c = self.mlflow
        created = 0
        for model, trials in records.items():
            for record in trials:
                if not record.trial_id or record.trial_id in self._runs:
                    continue
                self.outbox.put(lambda r=record, m=model: self._log_record(c, m, r))
                created += 1
        return created

    def _log_record(self, c: Any, model: str, record: TrialRecord) -> None:
        tags = _marks(record.defaults, record.warm_from)
        run_id = child_run(c, self.parent_run_id, "trial", model, record.trial_id, tags=tags)
        self._runs[record.trial_id] = run_id
        c.log_batch(run_id, params=param_batch({**record.config, "seed": record.seed}))
        metrics = [
            metric
            for report in record.reports
            for metric in metric_batch(
                {
                    k: v
                    for k, v in report.items()
                    if k.startswith(("val_", "train_")) or k in _TRIAL_METRICS
                },
                int(report["epoch"]),
            )
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            c.log_batch(run_id, metrics=metrics[start : start + 1000])
        c.set_tag(run_id, TAG_STATUS, record.end.value)
        c.set_tag(run_id, "recsys.final_epoch", str(record.last_epoch))
        c.set_terminated(run_id, status="FAILED" if record.end is TrialEnd.FAILED else "FINISHED")


def _marks(defaults: bool, warm_from: str | None) -> dict[str, str]:
    """A trial run's tags that say where its config came from: its model's defaults, or the
    earlier best run it re-runs (``--warm-start``)."""
    tags = {TAG_DEFAULTS: "true"} if defaults else {}
    return {**tags, TAG_WARM: warm_from} if warm_from else tags


_LIVE: dict[str, MlflowTrialCallback] = {}  # sweep id -> its callback in this driver


def _restored(sweep_id: str, state: dict) -> MlflowTrialCallback:
    """Unpickles a trial callback: the live one of its sweep when this process has it."""
    live = _LIVE.get(sweep_id) if sweep_id else None
    if live is not None:
        return live
    callback = MlflowTrialCallback.__new__(MlflowTrialCallback)
    callback.__setstate__(state)
    return callback

"""The console during a search: one compact line per model when one of its trials ends, and a
line per busy model every minute, instead of Tune's repeated status tables.

    [  4m12s] lightgcn  running 2  finished 1  stopped 3  failed 0  of 6  best val ndcg@10 0.2071
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from ray.tune import Callback

from recsys.metrics import metric_key
from recsys.tuning.records import TrialEnd
from recsys.tuning.trainable import MODEL_KEY

HEARTBEAT_S = 60.0


class ProgressLines(Callback):
    """Prints each model's progress (see the module docstring).

    Counts come from Tune's own list of trials, so a resumed search counts the trials its earlier
    run ended. A trial that ended before its model's ``max_epochs`` was stopped by ASHA.

    Args:
        samples: per model, its number of trials.
        max_epochs: per model, an unstopped trial's epochs.
        metric: the validation target, e.g. ``"ndcg@10"``.
        write: where lines go (``print`` by default).
    """

    def __init__(
        self,
        samples: Mapping[str, int],
        max_epochs: Mapping[str, int],
        metric: str,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.samples = dict(samples)
        self.max_epochs = dict(max_epochs)
        self.metric = metric
        self.key = metric_key("val", metric)
        self.write = write or (lambda line: print(line, flush=True))
        self.started = time.time()
        self.last_beat = self.started
        self.width = max((len(m) for m in self.samples), default=8)

    def counts(self, trials: list, model: str, ended: Any = None) -> dict[str, Any]:
        """Running, finished, stopped and failed trials of ``model`` and its best value;
        ``ended`` is a trial Tune reports complete before it marks it so."""
        out: dict[str, Any] = {"running": 0, "finished": 0, "stopped": 0, "failed": 0}
        best = -math.inf
        for trial in trials:
            if trial.config.get(MODEL_KEY) != model:
                continue
            status = "TERMINATED" if trial is ended else trial.status
            if status == "RUNNING":
                out["running"] += 1
            elif status == "ERROR":
                out["failed"] += 1
            elif status == "TERMINATED":
                epoch = int((trial.last_result or {}).get("epoch", 0))
                end = TrialEnd.of(False, epoch, self.max_epochs[model])
                out["stopped" if end is TrialEnd.STOPPED else "finished"] += 1
            value = (getattr(trial, "metric_analysis", {}) or {}).get(self.key, {}).get("max")
            if value is not None and not math.isnan(value):
                best = max(best, float(value))
        out["best"] = best
        return out

    def line(self, trials: list, model: str, ended: Any = None) -> str:
        c = self.counts(trials, model, ended)
        elapsed = int(time.time() - self.started)
        best = f"{c['best']:.4f}" if c["best"] > -math.inf else "-"
        return (
            f"[{elapsed // 60:>3}m{elapsed % 60:02d}s] {model:<{self.width}}  "
            f"running {c['running']}  finished {c['finished']}  stopped {c['stopped']}  "
            f"failed {c['failed']}  of {self.samples[model]}  best val {self.metric} {best}"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.write(self.line(trials, trial.config[MODEL_KEY], ended=trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.write(self.line(trials, trial.config[MODEL_KEY]))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.time() - self.last_beat < HEARTBEAT_S:
            return
        self.last_beat = time.time()
        busy = {t.config.get(MODEL_KEY) for t in trials if t.status == "RUNNING"}
        for model in self.samples:
            if model in busy:
                self.write(self.line(trials, model))


class TrialFaults(Callback):
    """One line per trial failure, in place of Tune's whole traceback (``recsys.tuning.resources``
    sets ``TUNE_PRINT_ALL_TRIAL_ERRORS=0``): a warning, shown also with ``--quiet``.

        trial 3f2a1b0c of lightgcn failed (ActorDiedError: ...); it restarts from epoch 40
        (restart 1 of 2)
    """

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        from recsys.tuning import console

        self.write = write or console.warn

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        latest = getattr(trial, "latest_checkpoint_result", None)
        epoch = int((latest.metrics if latest is not None else {}).get("epoch", 0))
        self.write(
            f"trial {trial.trial_id} of {trial.config.get(MODEL_KEY)} failed ({_why(trial)}); it "
            f"restarts from epoch {epoch} (restart {trial.num_failures} of "
            f"{trial.max_failures})"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        where = f"; the whole error: {trial.error_file}" if trial.error_file else ""
        self.write(
            f"trial {trial.trial_id} of {trial.config.get(MODEL_KEY)} failed after its restarts "
            f"({_why(trial)}): its results are lost{where}"
        )


def _why(trial: Any) -> str:
    """The last line of a trial's error (its file holds a whole remote traceback)."""
    try:
        with open(trial.error_file) as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, TypeError):
        return "no error recorded"
    last = lines[-1] if lines else "no error recorded"
    return last if len(last) <= 160 else last[:157] + "..."

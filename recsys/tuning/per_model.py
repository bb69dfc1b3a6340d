"""Every model's search inside one Tuner, each with its own searcher, scheduler and budget.

One Tuner runs the trials of all models at once, so a cluster fills and
``--max-concurrent-trials`` caps the total. Each trial's config names its model under
:data:`~recsys.tuning.trainable.MODEL_KEY`; :class:`ModelSearcher` hands out the models'
suggestions in turn until each has its number of trials, and :class:`ModelScheduler` passes each
trial's events to its model's own scheduler (ASHA with that model's epochs).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.sample import Domain

from recsys.tuning.trainable import MODEL_KEY


class RandomSearcher(Searcher):
    """Random search over Tune domains, from its own seeded generator (saved with the sweep)."""

    def __init__(self, domains: Mapping[str, Domain], seed: int) -> None:
        super().__init__()
        self._domains = dict(domains)
        self._rng = np.random.default_rng(seed)

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return {name: d.sample(random_state=self._rng) for name, d in self._domains.items()}

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        pass  # random search learns nothing from results


class ModelSearcher(Searcher):
    """One searcher per model behind the Tuner's single searcher.

    Suggestions go to the models in turn, so every model has trials running from the start;
    a model stops getting trials once it has had ``samples[model]``. Results reach the searcher
    of the trial's model (Optuna learns only from its own model's trials).

    Args:
        searchers: per model, a searcher of its searched parameters only.
        samples: per model, how many trials to run.
        fixed: per model, the values its space fixes (merged into every suggestion).
        metric, mode: what the searchers optimise.
    """

    def __init__(
        self,
        searchers: Mapping[str, Searcher],
        samples: Mapping[str, int],
        fixed: Mapping[str, Mapping[str, Any]],
        metric: str,
        mode: str,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._searchers = dict(searchers)
        self._left = {m: int(samples[m]) for m in searchers}
        self._fixed = {m: dict(fixed.get(m, {})) for m in searchers}
        self._owner: dict[str, str] = {}  # trial id -> model
        self._turn = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        models = list(self._searchers)
        for i in range(len(models)):
            at = (self._turn + i) % len(models)
            model = models[at]
            if self._left[model] <= 0:
                continue
            config = self._searchers[model].suggest(trial_id)
            if config == Searcher.FINISHED:
                self._left[model] = 0
                continue
            if config is None:  # that searcher waits for results
                continue
            self._turn = at + 1
            self._left[model] -= 1
            self._owner[trial_id] = model
            return {MODEL_KEY: model, **self._fixed[model], **config}
        return None if any(self._left.values()) else Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._owner:
            self._searchers[self._owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._owner:
            self._searchers[self._owner[trial_id]].on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class ModelScheduler(FIFOScheduler):
    """Sends each trial's events to its model's scheduler (its ASHA, with its budget).

    Trials start in the order the searcher created them (FIFO); each model's scheduler alone
    decides whether its trials continue.
    """

    def __init__(self, schedulers: Mapping[str, TrialScheduler]) -> None:
        super().__init__()
        self._schedulers = dict(schedulers)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        accepted = [
            s.set_search_properties(metric, mode, **spec) for s in self._schedulers.values()
        ]
        self._metric, self._mode = metric, mode
        return all(accepted)

    def _of(self, trial: Any) -> TrialScheduler:
        return self._schedulers[trial.config[MODEL_KEY]]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"{m}: {s.debug_string()}" for m, s in self._schedulers.items())

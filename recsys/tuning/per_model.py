"""Every model's search inside one Tuner, each with its own searcher, scheduler and budget.

One Tuner runs the trials of all models at once, so a cluster fills and
``--max-concurrent-trials`` caps the total. Each trial's config names its model under
:data:`~recsys.tuning.trainable.MODEL_KEY`; :class:`ModelSearcher` hands out the models'
suggestions in turn until each has its number of trials, and :class:`ModelScheduler` passes each
trial's events to its model's own scheduler (ASHA with that model's epochs). Each model's first
trial is its defaults, which ASHA does not stop (see :mod:`recsys.tuning.space`).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.sample import Domain

from recsys.tuning.space import is_grid
from recsys.tuning.trainable import DEFAULTS_KEY, MODEL_KEY, WARM_KEY, is_defaults_trial


class RandomSearcher(Searcher):
    """Random search over Tune domains, from its own seeded generator (saved with the sweep),
    after the given ``points_to_evaluate`` (as Tune's own searchers take them).

    ``tune.grid_search`` values among the domains are enumerated: suggestion ``i`` takes the
    ``i``-th point of their product (last parameter fastest, round after round) and draws the
    other parameters. A point to evaluate takes the place of its grid point's next turn, so
    that every grid point gets the same number of trials.
    """

    def __init__(
        self,
        domains: Mapping[str, Domain | dict],
        seed: int,
        points_to_evaluate: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()
        self._names = list(domains)
        self._grid = {n: list(d["grid_search"]) for n, d in domains.items() if is_grid(d)}
        self._domains = {n: d for n, d in domains.items() if n not in self._grid}
        self._rng = np.random.default_rng(seed)
        self._points = [dict(p) for p in points_to_evaluate]
        self._turn = 0  # grid turns handed out (skipped ones included)
        self._taken: list[tuple] = []  # grid points whose next turn a point to evaluate took

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self._points:
            point = self._points.pop(0)
            if self._grid:
                self._taken.append(tuple(point.get(n) for n in self._grid))
            return point
        values = self._next_grid_point()
        values.update({n: d.sample(random_state=self._rng) for n, d in self._domains.items()})
        return {n: values[n] for n in self._names}

    def _next_grid_point(self) -> dict[str, Any]:
        """The grid values of the next turn not taken by a point to evaluate."""
        while True:
            index, point = self._turn, []
            self._turn += 1
            for values in reversed(self._grid.values()):  # mixed radix: last name fastest
                index, at = divmod(index, len(values))
                point.append(values[at])
            point = tuple(reversed(point))
            if point in self._taken:
                self._taken.remove(point)
                continue
            return dict(zip(self._grid, point, strict=True))

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
        defaults_first: models whose searcher's first suggestion is the model's defaults
            (``points_to_evaluate``); that trial's config is marked with
            :data:`~recsys.tuning.trainable.DEFAULTS_KEY`.
        warm_from: per model, the MLflow runs whose configs its searcher suggests next
            (``--warm-start``), in order; each of those trials' configs is marked with its run
            under :data:`~recsys.tuning.trainable.WARM_KEY`.
    """

    def __init__(
        self,
        searchers: Mapping[str, Searcher],
        samples: Mapping[str, int],
        fixed: Mapping[str, Mapping[str, Any]],
        metric: str,
        mode: str,
        defaults_first: Sequence[str] = (),
        warm_from: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._searchers = dict(searchers)
        self._unmarked = set(defaults_first)  # models whose defaults trial is still to come
        self._warm = {m: list(runs) for m, runs in (warm_from or {}).items() if runs}
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
            return {MODEL_KEY: model, **self._marker(model), **self._fixed[model], **config}
        return None if any(self._left.values()) else Searcher.FINISHED

    def _marker(self, model: str) -> dict[str, Any]:
        """What marks ``model``'s next trial: its defaults, then the earlier runs it re-runs."""
        if model in self._unmarked:
            self._unmarked.discard(model)
            return {DEFAULTS_KEY: True}
        if self._warm.get(model):
            return {WARM_KEY: self._warm[model].pop(0)}
        return {}

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
        self.__dict__.setdefault("_warm", {})  # saved before --warm-start existed


class ModelScheduler(FIFOScheduler):
    """Sends each trial's events to its model's scheduler (its ASHA, with its budget).

    Trials start in the order the searcher created them (FIFO); each model's scheduler decides
    whether its trials continue, except for a model's defaults trial, which always runs its
    whole budget: ASHA still records its results, so they count at every rung, but its slow
    start cannot stop it.
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
        decision = self._of(trial).on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE if is_defaults_trial(trial.config) else decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"{m}: {s.debug_string()}" for m, s in self._schedulers.items())

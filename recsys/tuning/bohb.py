"""BOHB's model (Falkner et al., ICML 2018) as one model's searcher, behind that model's ASHA.

``--search bohb``: hpbandster's BOHB config generator (through Tune's ``TuneBOHB``) proposes
each trial from kernel density estimates of the good and the bad configurations seen at the
largest budget that has enough of them. Tune pairs ``TuneBOHB`` with ``HyperBandForBOHB``,
which pauses trials at synchronous brackets sized for hundreds of trials; a sweep here gives
each model 6-8 trials, runs every model in one Tuner and never stops a model's defaults trial
(see :mod:`recsys.tuning.per_model`). So the budgets BOHB learns from are the rungs of the
model's own ASHA (``grace_period * reduction_factor**k`` epochs, and ``max_epochs``): when a
trial's report first reaches a rung, its validation metric there is one observation at that
budget, as the asynchronous BOHB variants do with ASHA's promotions.

BOHB needs, at one budget, ``2 * (d + 1)`` observations of a ``d``-parameter space before it
fits a model (``d + 1`` good and ``d + 1`` bad ones); until then, and for a third of the
proposals after, it draws at random. Its numpy draws come from this searcher's own seeded
state (hpbandster draws from numpy's global generator), so a seed repeats a search.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.sample import Domain, Quantized


def rungs(grace_period: int, reduction_factor: int, max_epochs: int) -> tuple[int, ...]:
    """The epochs at which the model's ASHA compares trials, and its full budget."""
    out, t = [], grace_period
    while t < max_epochs:
        out.append(t)
        t *= reduction_factor
    return (*out, max_epochs)


class BOHBSearcher(Searcher):
    """One model's BOHB, fed one observation per ASHA rung a trial reaches.

    Args:
        domains: the model's searched parameters, as Tune domains (no grid).
        metric, mode: the reported metric it maximises or minimises.
        budgets: the rungs, in epochs (:func:`rungs`).
        seed: seeds the configuration space and BOHB's numpy draws.
        points_to_evaluate: configs suggested first (the defaults, borrowed configs).
    """

    def __init__(
        self,
        domains: Mapping[str, Domain],
        metric: str,
        mode: str,
        budgets: Sequence[int],
        seed: int,
        points_to_evaluate: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        from ray.tune.search.bohb import TuneBOHB

        super().__init__(metric=metric, mode=mode)
        samplers = {n: d.get_sampler() for n, d in domains.items()}
        self._quanta = {n: s.q for n, s in samplers.items() if isinstance(s, Quantized)}
        self._bounds = {n: (domains[n].lower, domains[n].upper) for n in self._quanta}
        self._budgets = tuple(sorted(budgets))
        self._state = np.random.RandomState(seed % 2**32).get_state()
        with self._own_random():
            self._bohb = TuneBOHB(
                space=TuneBOHB.convert_search_space(dict(domains)),
                metric=metric,
                mode=mode,
                seed=seed % 2**31,
                points_to_evaluate=[dict(p) for p in points_to_evaluate] or None,
                max_concurrent=0,  # the Tuner's limiter caps concurrency
            )
        self._seen: dict[str, set[int]] = {}  # trial id -> rungs already observed

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        with self._own_random():
            config = self._bohb.suggest(trial_id)
        if config is None:
            return None
        config = {n: self._python(n, v) for n, v in config.items()}
        self._bohb.trial_to_params[trial_id] = dict(config)  # what BOHB learns: what ran
        self._seen[trial_id] = set()
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        seen = self._seen.get(trial_id)
        if seen is None or self.metric not in result or "epoch" not in result:
            return
        for budget in self._budgets:
            if budget not in seen and result["epoch"] >= budget:
                seen.add(budget)
                with self._own_random():
                    self._bohb.on_trial_result(
                        trial_id, {**result, "hyperband_info": {"budget": budget}}
                    )

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if self._seen.pop(trial_id, None) is not None:
            with self._own_random():
                self._bohb.on_trial_complete(trial_id, result, error)

    def _python(self, name: str, value: Any) -> Any:
        """A plain Python value, on its quantum's grid (TuneBOHB drops quantization)."""
        if isinstance(value, np.generic):
            value = value.item()
        if name in self._quanta:
            q, (low, high) = self._quanta[name], self._bounds[name]
            value = float(np.clip(round(round(value / q) * q, 10), low, high))
        return value

    @contextlib.contextmanager
    def _own_random(self) -> Iterator[None]:
        """Numpy's global generator swapped for the searcher's own while hpbandster draws, and
        the deprecation and numeric warnings of hpbandster on ConfigSpace 1.x kept off the
        console."""
        with warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning, RuntimeWarning):
                warnings.simplefilter("ignore", category)
            outer = np.random.get_state()
            np.random.set_state(self._state)
            try:
                yield
            finally:
                self._state = np.random.get_state()
                np.random.set_state(outer)

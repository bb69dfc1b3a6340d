"""``--warm-start``: a new search starts from the earlier sweeps of the same split in the store.

An earlier sweep lends its trials only when its parent run's ``dataset_fingerprint`` is this
sweep's: the fingerprint covers the source data and every preparation and split parameter
(:func:`recsys.data.cache.fingerprint`), so a sweep on other data or another split never
borrows. From those sweeps, per model:

* **points**: the best configs (their "best" runs), best first by this sweep's validation
  target, are the first trials after the model's defaults, within its budget
  (:data:`MAX_POINTS` at most); each such trial is tagged in MLflow with the run it re-runs.
* **observations**: every trial that ended (not in an error), with its last reported value of
  the target (what the earlier searcher was told), for the searchers that take prior
  observations (Optuna's, through ``add_trial``); random search learns nothing from them.

An earlier run is borrowed only where it fits this sweep's space: the same parameter names,
the same fixed values, every searched value inside its distribution. Nothing else is compared
(an earlier sweep's epochs budget may differ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recsys.metrics import metric_key
from recsys.tuning import console
from recsys.tuning.config import OPTUNA_SEARCHES
from recsys.tuning.space import Budget, Param, SearchSpace

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.state import SweepState

MAX_POINTS = 3  # earlier best configs re-run per model: the rest of its budget is its searcher's
SEARCH_LIMIT = 10_000  # runs read per query


@dataclass(frozen=True)
class EarlierRun:
    """A run of an earlier sweep as the warm start reads it: its role (``best`` or ``trial``),
    model, params as MLflow keeps them (strings), its validation metrics (a trial's: the last
    reported) and how it ended (a trial's ``recsys.status`` tag)."""

    run_id: str
    sweep_run_id: str
    role: str
    model: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    status: str = ""


@dataclass(frozen=True)
class EarlierSweeps:
    """What the store holds: the sweeps on this fingerprint (``same``: their parent run ids), how
    many sweeps of the dataset are on another fingerprint, and the runs of ``same``."""

    same: tuple[str, ...] = ()
    other: int = 0
    runs: tuple[EarlierRun, ...] = ()


@dataclass(frozen=True)
class Observation:
    """An earlier config (its searched parameters, typed), its value and its run."""

    config: Mapping[str, Any]
    value: float
    run_id: str


@dataclass(frozen=True)
class Borrowed:
    """Per model, the earlier best configs to evaluate first (best first) and the earlier
    trials to tell its searcher; ``sweeps``: the parent runs they came from."""

    points: Mapping[str, tuple[Observation, ...]] = field(default_factory=dict)
    observations: Mapping[str, tuple[Observation, ...]] = field(default_factory=dict)
    sweeps: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(self.points.values()) and not any(self.observations.values())


@dataclass(frozen=True)
class WarmSource:
    """Where a new search borrows from: the store, this sweep's data fingerprint and dataset
    name, its target and searcher, and its own parent run (never borrowed from; tagged with
    what was borrowed)."""

    tracking_uri: str
    fingerprint: str
    dataset: str
    metric: str
    search: str
    parent_run_id: str | None = None

    def borrow(self, spaces: Mapping[str, SearchSpace], budgets: Mapping[str, Budget]) -> Borrowed:
        """Reads the earlier sweeps, chooses what fits, says so in one line, tags the sweep."""
        from recsys.tuning.tracking import TAG_WARM, client

        earlier = lookup(self.tracking_uri, self.fingerprint, self.dataset, self.parent_run_id)
        borrowed = choose(earlier, spaces, budgets, self.metric, self.search)
        line = describe(earlier, borrowed, self.dataset, self.fingerprint)
        console.say(line)
        if self.parent_run_id is not None:
            client(self.tracking_uri).set_tag(self.parent_run_id, TAG_WARM, line[:5000])
        return borrowed


def lookup(
    tracking_uri: str, fingerprint: str, dataset: str, exclude: str | None = None
) -> EarlierSweeps:
    """The sweeps in the store (every experiment) on ``fingerprint``, with their best and trial
    runs; those of ``dataset`` on another fingerprint are only counted. ``exclude``: this
    sweep's own parent run."""
    from recsys.tuning.tracking import TAG_MODEL, TAG_ROLE, TAG_STATUS, client

    c = client(tracking_uri)
    experiments = [e.experiment_id for e in c.search_experiments(max_results=SEARCH_LIMIT)]
    if not experiments:
        return EarlierSweeps()
    sweeps = c.search_runs(
        experiments, filter_string=f"tags.`{TAG_ROLE}` = 'sweep'", max_results=SEARCH_LIMIT
    )
    sweeps = [s for s in sweeps if s.info.run_id != exclude]
    same = [s for s in sweeps if s.data.tags.get("dataset_fingerprint") == fingerprint]
    other = sum(
        s.data.tags.get("dataset") == dataset
        and s.data.tags.get("dataset_fingerprint") != fingerprint
        for s in sweeps
    )
    runs = []
    for sweep in same:
        children = c.search_runs(
            [sweep.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{sweep.info.run_id}'",
            max_results=SEARCH_LIMIT,
        )
        for run in children:
            tags = run.data.tags
            if tags.get(TAG_ROLE) not in ("best", "trial"):
                continue
            runs.append(
                EarlierRun(
                    run_id=run.info.run_id,
                    sweep_run_id=sweep.info.run_id,
                    role=tags[TAG_ROLE],
                    model=tags.get(TAG_MODEL, ""),
                    params=dict(run.data.params),
                    metrics={k: v for k, v in run.data.metrics.items() if k.startswith("val_")},
                    status=tags.get(TAG_STATUS, ""),
                )
            )
    return EarlierSweeps(tuple(s.info.run_id for s in same), int(other), tuple(runs))


def choose(
    earlier: EarlierSweeps,
    spaces: Mapping[str, SearchSpace],
    budgets: Mapping[str, Budget],
    metric: str,
    search: str,
) -> Borrowed:
    """What a search borrows from ``earlier`` (see the module docstring); pure."""
    key = metric_key("val", metric)
    points, observations = {}, {}
    for model, space in spaces.items():
        if not space.searched():
            continue
        runs = [r for r in earlier.runs if r.model == model and key in r.metrics]
        best = _fitting(space, [r for r in runs if r.role == "best"], key)
        room = min(MAX_POINTS, budgets[model].num_samples - 1)
        points[model] = _distinct(best, space.first_trial)[: max(room, 0)]
        if search in OPTUNA_SEARCHES:
            trials = [r for r in runs if r.role == "trial" and r.status != "error"]
            observations[model] = tuple(_fitting(space, trials, key))
    return Borrowed(points, observations, earlier.same)


def _fitting(space: SearchSpace, runs: Sequence[EarlierRun], key: str) -> list[Observation]:
    """The runs whose params fit ``space``, as observations, best value first."""
    out = []
    for run in runs:
        value = float(run.metrics[key])
        config = fit(space, run.params)
        if config is not None and math.isfinite(value):
            out.append(Observation(config, value, run.run_id))
    return sorted(out, key=lambda o: -o.value)


def _distinct(
    observations: Sequence[Observation], defaults: Mapping[str, Any]
) -> tuple[Observation, ...]:
    """Each config once (its best run), the defaults left out (they run first anyway)."""
    seen = [dict(defaults)]
    out = []
    for o in observations:
        if dict(o.config) not in seen:
            seen.append(dict(o.config))
            out.append(o)
    return tuple(out)


def fit(space: SearchSpace, params: Mapping[str, str]) -> dict[str, Any] | None:
    """The searched values of an earlier run's ``params`` (MLflow's strings) typed by
    ``space``; None unless the run has every parameter of the space, its fixed values, searched
    values inside their distributions, and any other field of the model's config at its
    default (what the space leaves out). Params that are no config field (the seed, the
    serving settings a best run also has) do not count."""
    out = {}
    for name, param in space.params.items():
        value = _typed(param, params[name]) if name in params else _NO
        if value is _NO or not param.contains(value):
            return None
        if not param.fixed:
            out[name] = value
    for name, default in _config_defaults(space.model).items():
        if name not in space.params and name in params and params[name] != str(default):
            return None
    return out


def _config_defaults(model: str) -> dict[str, Any]:
    """The defaults of ``model``'s config fields (those without one: left out)."""
    import dataclasses

    from recsys.models import get_spec

    out = {}
    for f in dataclasses.fields(get_spec(model).config_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


_NO = object()


def _typed(param: Param, text: str) -> Any:
    """``text`` (``str(value)``, as MLflow keeps params) as one of ``param``'s values."""
    if param.fixed:
        return param.value if str(param.value) == text else _NO
    if param.dist in ("choice", "grid"):
        return next((v for v in param.args[0] if str(v) == text), _NO)
    try:
        number = float(text)
    except ValueError:
        return _NO
    if param.dist in ("randint", "qrandint"):
        return int(number) if number.is_integer() else _NO
    return number


def describe(earlier: EarlierSweeps, borrowed: Borrowed, dataset: str, fingerprint: str) -> str:
    """The one line a warm start prints: what it borrowed, and the sweeps it could not."""
    elsewhere = (
        f"; {earlier.other} earlier sweep{'s' if earlier.other != 1 else ''} of {dataset} on "
        f"another split or data (not fingerprint {fingerprint[:12]}) lend nothing"
        if earlier.other
        else ""
    )
    if borrowed.empty:
        what = (
            f"{len(earlier.same)} earlier sweep(s) on this split have no trial that fits "
            "these spaces"
            if earlier.same
            else f"no earlier sweep on this split (fingerprint {fingerprint[:12]})"
        )
        return f"warm start: {what}{elsewhere}; the search starts from scratch"
    parts = [
        f"{m} {len(p)} config(s) first, {len(borrowed.observations.get(m, ()))} observations"
        for m, p in borrowed.points.items()
        if p or borrowed.observations.get(m)
    ]
    return (
        f"warm start: from {len(borrowed.sweeps)} earlier sweep(s) on this split: "
        f"{', '.join(parts)}{elsewhere}"
    )


def source(state: SweepState, data: SplitData) -> WarmSource:
    """Where ``state``'s sweep borrows from: its store, its split's fingerprint, its target."""
    cfg = state.config
    return WarmSource(
        state.tracking_uri, data.fingerprint, data.name, cfg.metric, cfg.search, state.parent_run_id
    )

"""What a sweep is asked to do: ``SweepConfig``, its validation, and each model's budget.

Nothing here starts Ray, reads data or writes a file: every check a user's input can fail runs
before any of that.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recsys.buckets import COLD_USER_THRESHOLD
from recsys.errors import RecsysError
from recsys.metrics import MAX_REPORT_KS, REPORT_KS, parse_metric, report_ks
from recsys.models import MODELS, get_spec
from recsys.tuning.space import Budget, SearchSpace, load_space

MAIN_MODELS = ("lightgcn", "lightgcn_hardneg", "hybrid_vae")
DEFAULT_MODELS = (
    *MAIN_MODELS,
    "lightgcn_text",
    "popularity",
    "itemknn",
    "ease",
    "bpr_mf",
    "mult_vae",
    "gfcf",
    "rp3beta",
    "semantic",
    "ials",
)
# The seed projects' and course notebooks' models: the text-aware LightGCNs and HybridVAE, and
# what they were compared with.
SEED_MODELS = (
    "lightgcn",
    "lightgcn_hardneg",
    "lightgcn_text",
    "hybrid_vae",
    "mult_vae",
    "userknn",
    "semantic",
    "mult_dae",
    "lightgcn_kg",
    "ncf_mlp",
    "two_tower",
)
# The non-neural baselines and classic neural ones a fair leaderboard needs.
BASELINE_MODELS = (
    "popularity",
    "itemknn",
    "userknn",
    "ease",
    "gfcf",
    "rp3beta",
    "ials",
    "bpr_mf",
    "mult_vae",
    "mult_dae",
)
# Names --models also accepts, each standing for the models it lists ("all": every model
# registered when the names are expanded).
MODEL_GROUPS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_MODELS,
    "seeds": SEED_MODELS,
    "baselines": BASELINE_MODELS,
    "all": (),
}
# --search: what suggests each model's trials, one kind for every model of a sweep. "optuna" is
# Optuna's TPE; "gp" its Gaussian-process sampler; "cmaes" its CMA-ES (Optuna's CmaEsSampler);
# "bohb" hpbandster's BOHB model behind each model's ASHA (recsys/tuning/bohb.py).
SEARCHES = ("random", "optuna", "gp", "cmaes", "bohb")
OPTUNA_SEARCHES = ("optuna", "gp", "cmaes")  # searchers that take earlier trials as observations
# Each searcher's modules beyond the core dependencies, and the extra that installs them.
SEARCH_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "optuna": (("optuna",), "optuna"),
    "gp": (("optuna", "scipy", "torch"), "gp"),
    "cmaes": (("optuna", "cmaes"), "cmaes"),
    "bohb": (("hpbandster", "ConfigSpace"), "bohb"),
}
MODEL_SEARCHES = (*OPTUNA_SEARCHES, "bohb")  # searchers that draw: a grid parameter is refused
SCHEDULERS = ("asha", "fifo")

# What a resume may change (where and how it runs); the rest is what the sweep was started with.
RESUME_MAY_CHANGE = ("address", "gpus_per_trial", "cpus_per_trial", "max_concurrent_trials")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # what `mlflow ui` opens by default (MLflow 3)


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs; ``recsys.cli`` builds it from the command line.

    ``None`` means: the search-space file's value (budgets) or a default chosen at run time.
    """

    dataset: str = "ml-100k"
    data_dir: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    prep: dict[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = DEFAULT_MODELS
    num_samples: int | None = None
    max_epochs: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    metric: str = "ndcg@10"
    report_ks: tuple[int, ...] = REPORT_KS
    sampled_negatives: int = 0
    search: str = "random"
    scheduler: str = "asha"
    seed: int = 0
    tracking_uri: str | None = None
    experiment: str | None = None
    address: str | None = None
    storage_path: str | None = None
    name: str | None = None
    resume: bool = False
    results_dir: str | None = None
    smoke: bool = False
    space_dir: str | None = None
    max_concurrent_trials: int | None = None
    max_failures: int = 2
    seeds: int = 1
    folds: int | None = None
    time_budget_s: float | None = None
    warm_start: bool = False
    reuse_actors: bool = True
    cold_user_threshold: int = COLD_USER_THRESHOLD
    compare: tuple[str, ...] = ()
    verbose: int = 1
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SweepConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["models"] = tuple(values.get("models", DEFAULT_MODELS))
        values["report_ks"] = tuple(values.get("report_ks", REPORT_KS))
        values["compare"] = tuple(values.get("compare", ()))
        return cls(**values)

    def resumed_with(self, given: SweepConfig) -> SweepConfig:
        """This (saved) config continued with ``given``'s choices of where and how to run.

        What to search may not change on resume; the cluster, the trials' resources and the
        console output may.
        """
        changes = {a: getattr(given, a) for a in RESUME_MAY_CHANGE if getattr(given, a) is not None}
        return dataclasses.replace(self, **changes, verbose=given.verbose, resume=True)


def group_members(group: str) -> tuple[str, ...]:
    """The models of a group of :data:`MODEL_GROUPS`; ``all``: every registered model, now."""
    return tuple(MODELS) if group == "all" else MODEL_GROUPS[group]


def expand_models(text: str) -> tuple[str, ...]:
    """``--models``: comma-separated model names and group names (:data:`MODEL_GROUPS`), in
    order, each model once (``default,gfcf`` adds GF-CF to the default sweep).

    Raises:
        RecsysError: a name or group given twice.
    """
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    dupes = sorted({t for t in tokens if tokens.count(t) > 1})
    if dupes:
        raise RecsysError(f"--models names {dupes[0]!r} twice; name each model once")
    models: list[str] = []
    for token in tokens:
        for name in group_members(token) if token in MODEL_GROUPS else (token,):
            if name not in models:
                models.append(name)
    return tuple(models)


def validate(cfg: SweepConfig) -> dict[str, SearchSpace]:
    """Every check that needs neither Ray nor data; returns each model's validated space.

    Raises:
        RecsysError: the first problem found, before anything is written.
    """
    parse_metric(cfg.metric)
    check_report_ks(cfg)
    _check_choice("--search", cfg.search, SEARCHES)
    _check_choice("--scheduler", cfg.scheduler, SCHEDULERS)
    check_search_packages(cfg.search)
    _check_counts(cfg)
    check_time_budget(cfg.time_budget_s)
    check_name(cfg.name)
    if cfg.experiment is not None and not cfg.experiment.strip():
        raise RecsysError("--experiment is empty; name the MLflow experiment, or leave it out")
    _check_data_options(cfg)
    spaces = load_spaces(cfg)
    comparison_pairs(cfg)
    for space in spaces.values():
        check_space_values(space)
        if cfg.search in MODEL_SEARCHES and space.grid():
            raise RecsysError(
                f"{space.path}: parameter {next(iter(space.grid()))!r} is a grid, which "
                f"--search {cfg.search} cannot run (model-based searchers draw, they do not "
                "enumerate); use --search random, or {choice: [...]} for it to draw from"
            )
    return cold_searched(cfg, spaces)


# A cold-item split's leaderboard status of a model that cannot score a new item.
CANNOT_SCORE_COLD = "cannot score cold items"


def is_cold(cfg: SweepConfig) -> bool:
    """Whether the sweep's split is a cold-item one (``--split cold_items``)."""
    return cfg.prep.get("split") == "cold_items"


def scores_cold_items(space: SearchSpace) -> bool:
    """Whether every trial of ``space`` builds a model that scores items from their content
    (the model's ``scores_cold_items`` at each of the space's corners).

    Raises:
        RecsysError: some corners can and others cannot: the space must choose.
    """
    spec = get_spec(space.model)
    able = {what: spec.scores_cold_items(spec.make_config(v)) for what, v in _corners(space)}
    if all(able.values()) or not any(able.values()):
        return all(able.values())
    unable = next(what for what, ok in able.items() if not ok)
    raise RecsysError(
        f"{space.path}: on --split cold_items, {space.model} scores new items only with some of "
        f"its searched values ({unable} cannot); fix the value that reads item text (e.g. "
        f"item_text: true) in a copy of the file and pass its folder as --space-dir"
    )


def cold_space(space: SearchSpace) -> tuple[SearchSpace, list[str]]:
    """``space`` narrowed, on a cold-item split, to the choices that score new items from their
    content, and what was narrowed: a ``choice``/``grid`` parameter some of whose values cannot
    (two-tower's ``item_text: [false, true]``) keeps the values that can, and the defaults trial
    takes the first of them. A space whose every corner can, or none can, is ``space``.
    """
    spec = get_spec(space.model)
    fixed = space.fixed_values()
    params, defaults, narrowed = dict(space.params), dict(space.defaults), []
    for name, param in space.params.items():
        if param.dist not in ("choice", "grid"):
            continue
        values = param.args[0]
        able = [v for v in values if spec.scores_cold_items(spec.make_config({**fixed, name: v}))]
        if not able or len(able) == len(values):
            continue
        if len(able) == 1:  # a fixed value now: not searched, so not a default to enqueue
            params[name] = dataclasses.replace(param, dist=None, args=(), value=able[0])
            defaults.pop(name, None)
        else:
            params[name] = dataclasses.replace(param, args=(tuple(able),))
            if defaults.get(name, able[0]) not in able:
                defaults[name] = able[0]
        narrowed.append(f"{name} {able[0] if len(able) == 1 else able}")
    if not narrowed:
        return space, []
    return dataclasses.replace(space, params=params, defaults=defaults), narrowed


def cold_searched(cfg: SweepConfig, spaces: dict[str, SearchSpace]) -> dict[str, SearchSpace]:
    """The spaces a sweep searches: on a cold-item split only those of models that score items
    from their content (the others are not trained for nothing: their leaderboard row says
    :data:`CANNOT_SCORE_COLD`); every space otherwise.

    Raises:
        RecsysError: a cold-item split and no model that can score a new item.
    """
    if not is_cold(cfg):
        return spaces
    from recsys.tuning import console

    narrowed = {}
    for model, space in spaces.items():
        narrowed[model], what = cold_space(space)
        if what:
            console.say(
                f"{model}: on --split cold_items, {', '.join(what)} (the values that score new "
                "items from their text)"
            )
    able = {m: s for m, s in narrowed.items() if scores_cold_items(s)}
    if not able:
        text = sorted(m for m, sp in MODELS.items() if sp.scores_cold_items(sp.config_cls()))
        raise RecsysError(
            f"--split cold_items: none of {', '.join(spaces)} can score an item without training "
            f"interactions; add a model that reads item text: {', '.join(text)}"
        )
    return able


# Above this, a sampled evaluation costs more than it saves: rank against every item instead.
MAX_SAMPLED_NEGATIVES = 10_000


def check_report_ks(cfg: SweepConfig) -> None:
    """``--report-ks``: positive integers, at most :data:`MAX_REPORT_KS` with the target's."""
    ks = cfg.report_ks
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise RecsysError(
            f"--report-ks takes comma-separated positive integers, e.g. 5,10,20; got "
            f"{','.join(map(str, ks)) or 'nothing'}"
        )
    every = report_ks(cfg.metric, ks)
    if len(every) > MAX_REPORT_KS:
        raise RecsysError(
            f"--report-ks {','.join(map(str, ks))}: {len(every)} cut-offs with the target's "
            f"({cfg.metric}); report at most {MAX_REPORT_KS}, e.g. 5,10,20,50"
        )


def check_fits_data(cfg: SweepConfig, n_items: int, n_val: int, n_test: int) -> None:
    """The checks that need the split: the target's and the reported cut-offs and the sampled
    negatives within the catalogue, held-out pairs."""
    _, k = parse_metric(cfg.metric)
    if k > n_items:
        raise RecsysError(
            f"--metric {cfg.metric}: k={k} is above the catalogue's {n_items} items, so every "
            f"item would count; use a k of at most {n_items}, e.g. ndcg@10"
        )
    above = [k for k in cfg.report_ks if k > n_items]
    if above:
        raise RecsysError(
            f"--report-ks {','.join(map(str, cfg.report_ks))}: {above[0]} is above the "
            f"catalogue's {n_items} items, so every item would count; report cut-offs of at most "
            f"{n_items}"
        )
    if cfg.sampled_negatives >= n_items:
        raise RecsysError(
            f"--sampled-negatives {cfg.sampled_negatives}: each test item is ranked among "
            f"itself and that many other items, more than the catalogue's {n_items} hold; use at "
            f"most {n_items - 1}, or 0 to rank against every item only"
        )
    for split, n in (("validation", n_val), ("test", n_test)):
        if n == 0:
            raise RecsysError(
                f"the split has no {split} pairs; a sweep needs train, validation and test: "
                f"give each a share (e.g. --ratios 0.8,0.1,0.1) or lower the k-core bounds"
            )


def check_cold_fits(cfg: SweepConfig, n_val_items: int, n_test_items: int) -> None:
    """A cold-item split ranks among its cold items: every cut-off must be below their number
    in validation and in test, or every item would count."""
    k = max(report_ks(cfg.metric, cfg.report_ks))
    for split, n in (("validation", n_val_items), ("test", n_test_items)):
        if k >= n:
            raise RecsysError(
                f"--split cold_items ranks {split} among its {n} cold items, and the cut-off "
                f"{k} (--metric / --report-ks) would count nearly every one; raise --cold-share "
                f"or use cut-offs below {n}"
            )


def _check_counts(cfg: SweepConfig) -> None:
    for flag, value, low in (
        ("--num-samples", cfg.num_samples, 1),
        ("--max-epochs", cfg.max_epochs, 1),
        ("--max-concurrent-trials", cfg.max_concurrent_trials, 1),
        ("--max-failures", cfg.max_failures, 0),
        ("--seeds", cfg.seeds, 1),
        ("--sampled-negatives", cfg.sampled_negatives, 0),
        ("--cold-user-threshold", cfg.cold_user_threshold, 0),
    ):
        if value is not None and (isinstance(value, bool) or value < low):
            kind = "a positive integer" if low else "0 or more"
            raise RecsysError(f"{flag} must be {kind}, got {value}")
    if cfg.sampled_negatives > MAX_SAMPLED_NEGATIVES:
        raise RecsysError(
            f"--sampled-negatives must be at most {MAX_SAMPLED_NEGATIVES}, got "
            f"{cfg.sampled_negatives}; the sampled protocol ranks among few items (NCF's is 99), "
            f"and the full ranking is reported anyway"
        )
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise RecsysError(f"--seed must be an integer >= 0, got {cfg.seed!r}")
    _check_shares(cfg)


# Ray schedules resources in steps of 1e-4; below a hundredth a share packs no real trial.
MIN_SHARE = 0.01


def _check_shares(cfg: SweepConfig) -> None:
    """CPU and GPU shares a Ray scheduler can place (the cluster itself is checked later)."""
    for flag, value, zero_ok in (
        ("--cpus-per-trial", cfg.cpus_per_trial, False),
        ("--gpus-per-trial", cfg.gpus_per_trial, True),
    ):
        if value is None or (zero_ok and value == 0):
            continue
        if not math.isfinite(value) or value < MIN_SHARE:
            least = "0 (none) or at least" if zero_ok else "at least"
            raise RecsysError(
                f"{flag} must be {least} {MIN_SHARE:g}, got {value:g}; e.g. {flag} 0.25 packs "
                f"four trials on one"
            )


MAX_NAME = 100  # with the storage folder's "-<sweep id>", well under a file system's 255 bytes


def check_name(name: str | None) -> None:
    """A sweep's name becomes a folder name: no path in it."""
    if name is None:
        return
    if len(name) > MAX_NAME:
        raise RecsysError(
            f"--name is {len(name)} characters long; a sweep's name becomes a folder name: "
            f"use at most {MAX_NAME}"
        )
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        raise RecsysError(
            f"--name {name!r} must be a plain folder name (letters, digits, '-', '_', '.'), not "
            f"a path; to write elsewhere, pass --results-dir"
        )


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RecsysError(f"unknown {flag} {value!r}; choose one of {', '.join(choices)}")


def check_search_packages(search: str) -> None:
    """``--search``'s packages are installed (an optional searcher comes as an extra)."""
    import importlib.util

    modules, extra = SEARCH_NEEDS.get(search, ((), ""))
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise RecsysError(
                f"--search {search} needs the {module} package: pip install "
                f"'recsys-tune[{extra}]', or use --search random"
            )


_UNITS = {"s": 1, "m": 60, "h": 3600}
MIN_TIME_BUDGET_S = 1.0


def parse_duration(text: str) -> float:
    """``--time-budget``: ``90s``, ``10m``, ``1.5h`` or plain seconds (``600``) -> seconds.

    Raises:
        RecsysError: not a positive number with an optional unit s, m or h.
    """
    word = text.strip().lower()
    unit = _UNITS.get(word[-1:], None) if word else None
    number = word[:-1] if unit is not None else word
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = math.nan
    if not number or not math.isfinite(seconds) or seconds <= 0:
        raise RecsysError(
            f"--time-budget takes a positive duration with a unit s, m or h, e.g. 90s, 10m, "
            f"1h (plain numbers are seconds); got {text!r}"
        )
    return seconds


def check_time_budget(seconds: float | None) -> None:
    """A time budget a sweep can spend: at least :data:`MIN_TIME_BUDGET_S`, finite."""
    if seconds is None:
        return
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise RecsysError(f"--time-budget must be a duration in seconds, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < MIN_TIME_BUDGET_S:
        raise RecsysError(
            f"--time-budget must be at least {MIN_TIME_BUDGET_S:g} s, got {seconds:g} s; e.g. "
            f"--time-budget 10m"
        )


def format_duration(seconds: float) -> str:
    """Seconds as ``--time-budget`` would take them back: ``600`` -> ``10m``."""
    for unit in ("h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _check_data_options(cfg: SweepConfig) -> None:
    from recsys.data import predefined
    from recsys.data.loaders import check_options
    from recsys.data.prepare import check_low_ratings
    from recsys.data.split import STRATEGIES, check_ratios

    prep = prep_config(cfg.prep)
    _check_choice("--split", prep.split, STRATEGIES)
    _check_cold(cfg, prep)
    check_low_ratings(prep.low_ratings)
    for fold in fold_configs(cfg):  # split files exist, are readable (every fold's)
        predefined.check_config(fold, cfg.dataset, cfg.data_dir)
    if prep.ratios is not None:
        check_ratios(prep.ratios)
        if min(prep.ratios[1:]) <= 0:
            raise RecsysError(
                f"--ratios {','.join(f'{r:g}' for r in prep.ratios)}: a sweep needs validation "
                f"(to choose) and test (to report) pairs; give both a share, e.g. 0.8,0.1,0.1"
            )
    if prep.seed < 0:
        raise RecsysError(f"--split-seed must be an integer >= 0, got {prep.seed}")
    if prep.threshold is not None and not math.isfinite(prep.threshold):
        raise RecsysError(f"--threshold must be a number, got {prep.threshold}")
    for flag, value in (
        ("--min-user-interactions", prep.min_user_interactions),
        ("--min-item-interactions", prep.min_item_interactions),
    ):
        if value < 1:
            raise RecsysError(f"{flag} must be 1 (no filtering) or more, got {value}")
    if not cfg.dataset_options:  # a split passed in directly has no loader to ask
        return
    check_options(cfg.dataset, cfg.dataset_options)


def fold_configs(cfg: SweepConfig) -> list[Any]:
    """The ``PrepConfig`` of each split the sweep reads: one, or with ``--folds K`` each fold's
    (``recsys.data.folds``), fold 1 first (the search's).

    Raises:
        RecsysError: ``--folds`` beside ``--fold`` or ``--seeds``.
    """
    prep = prep_config(cfg.prep)
    if cfg.folds is None:
        return [prep]
    if prep.fold is not None:
        raise RecsysError(
            f"--fold picks one split and --folds {cfg.folds} runs folds 1..{cfg.folds}; drop --fold"
        )
    if cfg.seeds > 1:
        raise RecsysError(
            "--folds and --seeds both train each best config again after the search; give one: "
            "--folds K for the spread over splits, --seeds N for the spread over seeds"
        )
    from recsys.data.folds import fold_config

    k = cfg.folds
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise RecsysError(f"--folds must be an integer of at least 2, got {k!r}")
    return [fold_config(prep, k, f) for f in range(1, k + 1)]


def _check_cold(cfg: SweepConfig, prep: Any) -> None:
    """The cold-item split's flags: ``--cold-share`` for it only, a valid share, and no flag
    that does not apply to it."""
    from recsys.data.split import check_cold_share

    if prep.split != "cold_items":
        if prep.cold_share is not None:
            raise RecsysError(
                f"--cold-share is for --split cold_items, not --split {prep.split}; drop it or "
                "add --split cold_items"
            )
        return
    if prep.cold_share is not None:
        check_cold_share(prep.cold_share)
    for flag, given in (("--ratios", prep.ratios is not None), ("--by-time", prep.by_time)):
        if given:
            raise RecsysError(
                f"{flag} does not apply to --split cold_items, which holds out whole items "
                "(--cold-share of them); drop it"
            )
    if cfg.sampled_negatives:
        raise RecsysError(
            "--sampled-negatives does not apply to --split cold_items, whose test already ranks "
            "among the few cold test items (and among every item); drop it"
        )


def prep_config(prep: dict[str, Any]) -> Any:
    """The split parameters of a sweep: ``recsys.data.PrepConfig`` overridden by ``prep``."""
    from recsys.data import PrepConfig

    known = {f.name for f in dataclasses.fields(PrepConfig)}
    unknown = sorted(set(prep) - known)
    if unknown:
        raise RecsysError(f"unknown split parameter(s) {unknown}; known: {sorted(known)}")
    values = dict(prep)
    if values.get("ratios") is not None:
        values["ratios"] = tuple(values["ratios"])
    return PrepConfig(**values)


def load_spaces(cfg: SweepConfig) -> dict[str, SearchSpace]:
    """Checks the model names and loads every model's search space."""
    if not cfg.models:
        raise RecsysError("--models is empty; name at least one model")
    dupes = sorted({m for m in cfg.models if cfg.models.count(m) > 1})
    if dupes:
        raise RecsysError(f"--models names {dupes[0]!r} twice; name each model once")
    for name in cfg.models:
        if name not in MODELS:
            raise RecsysError(
                f"unknown model {name!r}; choose from: {', '.join(sorted(MODELS))}, or a group: "
                f"{', '.join(MODEL_GROUPS)}"
            )
    specs = {m: get_spec(m) for m in cfg.models}
    return {m: load_space(m, cfg.space_dir, specs[m].config_cls) for m in cfg.models}


def parse_compare(text: str) -> tuple[str, ...]:
    """``--compare``: comma-separated pairs ``a:b`` (each a model of the sweep), or ``all``.

    Raises:
        RecsysError: anything else, e.g. a pair without its colon.
    """
    words = tuple(w.strip() for w in text.split(",") if w.strip())
    if words == ("all",):
        return words
    example = "e.g. --compare lightgcn:lightgcn_text,ease:itemknn, or --compare all"
    if not words:
        raise RecsysError(f"--compare names no pair; {example}")
    for word in words:
        parts = word.split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise RecsysError(f"--compare takes pairs a:b of two models, got {word!r}; {example}")
    return words


def comparison_pairs(cfg: SweepConfig) -> list[tuple[str, str]]:
    """The pairs of models ``--compare`` asks for, in its order (``all``: every pair of the
    sweep's models, in ``--models`` order).

    Raises:
        RecsysError: a name not in the sweep, a model paired with itself, a pair twice.
    """
    if tuple(cfg.compare) == ("all",):
        models = cfg.models
        return [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    pairs: list[tuple[str, str]] = []
    for word in cfg.compare:
        a, _, b = (w.strip() for w in word.partition(":"))
        for name in (a, b):
            if name not in cfg.models:
                raise RecsysError(
                    f"--compare {word}: {name!r} is not a model of this sweep; compare two of "
                    f"--models ({', '.join(cfg.models)})"
                )
        if a == b:
            raise RecsysError(f"--compare {word} pairs {a!r} with itself; name two models")
        if (a, b) in pairs or (b, a) in pairs:
            raise RecsysError(f"--compare names the pair {a}:{b} twice; name each pair once")
        pairs.append((a, b))
    return pairs


def model_budget(space: SearchSpace, cfg: SweepConfig) -> Budget:
    """The space's budget with the command-line overrides; one epoch for closed-form models;
    its ``num_samples`` is the model's number of trials (see ``SearchSpace.trials``: grid
    points times samples)."""
    budget = space.budget
    if cfg.smoke:
        budget = budget.override(max_epochs=min(2, budget.max_epochs), num_samples=2)
        budget = dataclasses.replace(budget, grace_period=1, eval_every=1)
    budget = budget.override(max_epochs=cfg.max_epochs, num_samples=cfg.num_samples)
    if not get_spec(space.model).trainable:
        budget = Budget(1, 1, budget.reduction_factor, 1, budget.num_samples)
    # Nothing searched: every trial would be the same; a grid: num_samples per grid point.
    return dataclasses.replace(budget, num_samples=space.trials(budget.num_samples))


def _corners(space: SearchSpace) -> Iterator[tuple[str, dict[str, Any]]]:
    """The space's fixed values, then each searched parameter's choices and range bounds with
    the others fixed: ``(what, values)``. Linear in the space's size, unlike every combination."""
    fixed = space.fixed_values()
    yield "its fixed values", fixed
    for name, param in space.params.items():
        if not param.fixed:
            for value in param.args[0] if param.dist in ("choice", "grid") else param.args[:2]:
                yield f"{name}={value!r}", {**fixed, name: value}


def check_space_values(space: SearchSpace) -> None:
    """Every fixed value, choice and range bound of ``space`` is one the model's config accepts,
    so that no trial fails on a value the file could have been told about.

    Raises:
        RecsysError: the file, the parameter and the model's own message.
    """
    spec = get_spec(space.model)
    for what, values in _corners(space):
        try:
            spec.make_config(values)
        except RecsysError as error:
            raise RecsysError(
                f"{space.path}: {space.model} rejects {what}: {error}; fix the value in the file"
            ) from None


def needs_item_embeddings(space: SearchSpace) -> bool:
    """Whether any trial of ``space`` may build a model that reads item embeddings: the model's
    ``needs_item_embeddings`` asked about each of the space's corners (``check_space_values``
    has made sure the model accepts them all)."""
    spec = get_spec(space.model)
    return any(spec.needs_item_embeddings(spec.make_config(v)) for _, v in _corners(space))


def needs_item_entities(space: SearchSpace) -> bool:
    """Whether any trial of ``space`` may build a model whose graph holds the items' entities
    (the model's ``needs_item_entities`` at each of the space's corners)."""
    spec = get_spec(space.model)
    return any(spec.needs_item_entities(spec.make_config(v)) for _, v in _corners(space))

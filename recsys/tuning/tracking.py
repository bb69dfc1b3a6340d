"""MLflow: one parent run per sweep, one nested run per trial, one "best" run per model.

Every run is created from the driver (trial runs by the Tune callback in
:mod:`recsys.tuning.trial_runs`), so workers never need to reach the tracking store, which on a
cluster may be a local file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.errors import RecsysError
from recsys.io import check_writable, redact
from recsys.metrics import metric_key
from recsys.tuning.config import SweepConfig, prep_config
from recsys.tuning.results import best_config_yaml

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.leaderboard import Leaderboard
    from recsys.tuning.outcome import ModelOutcome
    from recsys.tuning.resources import TrialResources
    from recsys.tuning.scoring import Scored
    from recsys.tuning.space import Budget

TAG_SWEEP = "recsys.sweep"
TAG_ROLE = "recsys.role"  # "sweep", "trial", "best", "seed" or "fold" (under its best run)
TAG_MODEL = "recsys.model"
TAG_TRIAL = "recsys.trial_id"
TAG_STATUS = "recsys.status"  # trials: "completed", "stopped_early" or "error"
TAG_NODE = "recsys.node_id"  # trials: the Ray node the trial last (re)started on
TAG_SEED = "recsys.seed"  # seed runs: the seed
TAG_FOLD = "recsys.fold"  # fold runs (--folds): the fold
TAG_DEFAULTS = "recsys.defaults"  # trials: "true" on a model's defaults trial (ASHA spares it)
# Trials: the earlier best run whose config the trial re-runs (--warm-start); the sweep's run:
# what it borrowed, in words.
TAG_WARM = "recsys.warm_start"


# Stores MLflow reaches through SQLAlchemy or its own clients: no check here beyond the scheme.
_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql", "databricks", "databricks-uc")
STORE_TIMEOUT_S = 5.0


# A database URI's SQLAlchemy driver -> (its module, what installs it).
_DRIVERS = {
    "postgresql": ("psycopg2", "pip install psycopg2-binary, or use postgresql+psycopg://"),
    "postgresql+psycopg2": ("psycopg2", "pip install psycopg2-binary"),
    "postgresql+psycopg": ("psycopg", "pip install 'recsys-tune[postgres]'"),
    "mysql": ("MySQLdb", "pip install mysqlclient, or use mysql+pymysql://"),
    "mysql+pymysql": ("pymysql", "pip install pymysql"),
    "mssql+pyodbc": ("pyodbc", "pip install pyodbc"),
}


def check_store(tracking_uri: str, timeout: float = STORE_TIMEOUT_S) -> None:
    """Raises, without writing anything, unless ``tracking_uri`` names a store this sweep can use:
    a sqlite database in a writable folder, a database whose driver is installed, or a tracking
    server that answers its health check within ``timeout`` seconds."""
    scheme, _, rest = tracking_uri.partition("://")
    if not rest or scheme == "file":  # MLflow 3 refuses its file store (maintenance mode)
        raise RecsysError(
            f"--tracking-uri {redact(tracking_uri)}: MLflow no longer writes to a folder (its "
            f"file store is in maintenance mode); use a database, e.g. "
            f"sqlite:///{Path(rest or tracking_uri).expanduser().resolve()}.db, or a server"
        )
    if scheme == "sqlite":
        _check_sqlite(tracking_uri)
    elif scheme in ("http", "https"):
        _check_server(tracking_uri, timeout)
    elif scheme.split("+")[0] not in _DATABASE_SCHEMES:
        raise RecsysError(
            f"--tracking-uri {redact(tracking_uri)}: unknown scheme {scheme!r}; use "
            f"sqlite:///mlflow.db, http://HOST:PORT of an MLflow server, or a database URI"
        )
    elif scheme in _DRIVERS:
        module, install = _DRIVERS[scheme]
        if importlib.util.find_spec(module) is None:
            raise RecsysError(
                f"--tracking-uri {redact(tracking_uri)}: its database driver {module} is not "
                f"installed; {install}"
            )


def _check_sqlite(tracking_uri: str) -> None:
    """A sqlite store: a database file (or none yet) in a folder that can be written."""
    path = Path(_sqlite_path(tracking_uri))
    if path.is_dir():
        raise RecsysError(
            f"--tracking-uri {tracking_uri}: {path} is a folder; name a database file in it, "
            f"e.g. sqlite:///{path / 'mlflow.db'}"
        )
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise RecsysError(
                    f"--tracking-uri {tracking_uri}: {path} is not a sqlite database; name "
                    f"another file (a new one is created)"
                )
    check_writable(path.parent, "--tracking-uri")


def _sqlite_path(tracking_uri: str) -> str:
    return tracking_uri.removeprefix("sqlite:///") or "."


def _check_server(tracking_uri: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        problem = f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        problem = str(getattr(error, "reason", error))
    raise RecsysError(
        f"--tracking-uri {redact(tracking_uri)}: no MLflow server answers ({problem}); start one "
        f"(mlflow server --host 127.0.0.1 --port PORT) or pass another --tracking-uri"
    )


def open_store(tracking_uri: str) -> None:
    """Creates the store's schema if it is new, one process at a time.

    Two sweeps starting at once on a new sqlite file would both run MLflow's schema migration
    and break the database for good; a lock beside nothing of the user's (in the temporary
    folder, keyed by the database's path) serialises the first connection. The database file's
    identity is remembered, for :func:`store_problem`.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    import hashlib

    from filelock import FileLock

    # MLflow logs each failed statement of a broken database with its traceback; the sweep
    # says what broke in one line (store_problem) instead.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    db = str(Path(_sqlite_path(tracking_uri)).resolve())
    key = hashlib.sha256(db.encode()).hexdigest()[:16]
    with FileLock(Path(tempfile.gettempdir()) / f"recsys-tune-mlflow-{key}.lock", timeout=300):
        client(tracking_uri).search_experiments(max_results=1)
    _OPENED[db] = _identity(Path(db))


_OPENED: dict[str, tuple[int, int]] = {}  # sqlite path -> (device, inode) when opened


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def store_problem(tracking_uri: str) -> str | None:
    """Why a local sqlite store this process opened (:func:`open_store`) can no longer be
    written, or None.

    A sqlite store has no server that could come back: a database file deleted, replaced or
    made unreadable while a sweep runs is broken for good, where a tracking server or database
    that does not answer may answer again (``trial_runs.unreachable``). Other stores: None.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    import sqlite3

    path = Path(_sqlite_path(tracking_uri)).resolve()
    opened = _OPENED.get(str(path))
    if opened is None:  # not opened by this process (open_store): nothing to compare with
        return None
    if not path.exists():
        return f"its database file {path} was deleted"
    try:
        if _identity(path) != opened:
            return f"its database file {path} was replaced by another file"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.execute("SELECT run_uuid FROM runs LIMIT 1").fetchall()
    except (OSError, sqlite3.Error) as error:
        return f"its database file {path} is no longer an MLflow database ({error})"
    if not os.access(path, os.W_OK):
        return f"its database file {path} cannot be written"
    return None


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def experiment_id(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created when missing (its artifacts beside a sqlite store:
    :func:`artifact_location`)."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=artifact_location(tracking_uri))


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlartifacts/`` beside a sqlite database
    (MLflow's default, ``./mlruns``, is the folder the sweep happened to start in); the store's
    own default for a server or another database (None)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    folder = Path(_sqlite_path(tracking_uri)).expanduser().resolve().parent
    return (folder / "mlartifacts").as_uri()


def ui_command(tracking_uri: str) -> str:
    """The ``mlflow ui`` command that opens ``tracking_uri``, with an absolute path."""
    uri = tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    elif "://" not in uri:
        uri = str(Path(uri).resolve())
    return f"mlflow ui --backend-store-uri {redact(uri)}"


def metric_batch(metrics: Mapping[str, Any], step: int) -> list:
    """MLflow ``Metric``s for the finite numeric entries of ``metrics``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    out = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            out.append(Metric(key, float(value), now, step))
    return out


def param_batch(params: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(str(k), str(v)[:6000]) for k, v in params.items()]


def git_commit() -> str:
    """The commit of the checkout the package runs from, or ``"unknown"``."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("recsys-tune", "torch", "ray", "mlflow", "numpy", "pandas", "optuna"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance_tags(data: SplitData, command: str) -> dict[str, str]:
    """The parent run's tags: where the code, the data and the command line came from."""
    return {
        "git_commit": git_commit(),
        "dataset": data.name,
        "dataset_fingerprint": data.fingerprint,
        "command": command or " ".join(sys.argv),
        **{f"version.{k}": v for k, v in versions().items()},
    }


def sweep_params(
    cfg: SweepConfig, resources: TrialResources, budgets: Mapping[str, Budget]
) -> dict[str, Any]:
    """The parent run's params: what was searched, on which split, with which budgets."""
    return {
        "dataset": cfg.dataset,
        "models": ",".join(cfg.models),
        "metric": cfg.metric,
        "report_ks": ",".join(map(str, cfg.report_ks)),
        "sampled_negatives": cfg.sampled_negatives,
        "cold_user_threshold": cfg.cold_user_threshold,
        "compare": ",".join(cfg.compare) or "none",
        "search": cfg.search,
        "scheduler": cfg.scheduler,
        "root_seed": cfg.seed,
        **({"folds": cfg.folds} if cfg.folds else {}),
        "time_budget_s": cfg.time_budget_s,
        "warm_start": cfg.warm_start,
        **{f"split.{k}": v for k, v in dataclasses.asdict(prep_config(cfg.prep)).items()},
        **{f"dataset.{k}": v for k, v in cfg.dataset_options.items()},
        "cpus_per_trial": resources.cpus,
        "gpus_per_trial": resources.gpus,
        **{f"budget.{m}": json.dumps(dataclasses.asdict(b)) for m, b in budgets.items()},
    }


def start_parent_run(
    tracking_uri: str,
    experiment: str,
    sweep: str,
    *,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    run_id: str | None = None,
) -> str:
    """Creates the sweep's parent run, or marks the existing ``run_id`` running again (resume)."""
    c = client(tracking_uri)
    if run_id is not None:
        c.update_run(run_id, status="RUNNING")
        return run_id
    run = c.create_run(
        experiment_id(tracking_uri, experiment),
        run_name=sweep,
        tags={TAG_SWEEP: sweep, TAG_ROLE: "sweep", **tags},
    )
    c.log_batch(run.info.run_id, params=param_batch(params))
    return run.info.run_id


def find_child_runs(
    tracking_uri: str, parent_run_id: str, role: str, model: str | None = None
) -> dict:
    """Nested runs of ``parent_run_id`` with ``role`` (and ``model``, if given), keyed by their
    trial id."""
    c = client(tracking_uri)
    parent = c.get_run(parent_run_id)
    wanted = f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{TAG_ROLE}` = '{role}'"
    if model is not None:
        wanted += f" and tags.`{TAG_MODEL}` = '{model}'"
    runs = c.search_runs([parent.info.experiment_id], filter_string=wanted, max_results=10_000)
    return {r.data.tags.get(TAG_TRIAL, r.info.run_id): r for r in runs}


def log_best_run(
    tracking_uri: str, parent_run_id: str, best: Scored, files: Mapping[str, Path]
) -> str:
    """Logs the "best" run of a model under the sweep's run; returns its id.

    Params are the best config and its seed; metrics its validation and test scores and the
    search's cost; artifacts ``config.yaml``, the checkpoint and ``files`` (artifact folder ->
    file: the recommendations, the learning-curve plot). A run left by an interrupted sweep
    is filled, not duplicated.
    """
    outcome = best.outcome
    metrics = {metric_key("val", k): v for k, v in outcome.val.items()}
    metrics.update({metric_key("test", k): v for k, v in outcome.test.items()})
    metrics.update(
        best_epoch=outcome.best_epoch,
        trials=outcome.trials,
        epochs=outcome.epochs,
        wall_seconds=outcome.wall_seconds,
        seconds_per_epoch=outcome.seconds_per_epoch,
    )
    existing = find_child_runs(tracking_uri, parent_run_id, "best", outcome.model)
    c = client(tracking_uri)
    if existing:
        run_id = next(iter(existing.values())).info.run_id
    else:
        run_id = child_run(c, parent_run_id, "best", outcome.model, outcome.trial_id)
        c.log_batch(run_id, params=param_batch({**outcome.config, "seed": outcome.seed}))
    c.log_batch(run_id, metrics=metric_batch(metrics, 0))
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(best_config_yaml(outcome))
        c.log_artifact(run_id, str(config_path))
    with best.checkpoint.as_directory() as folder:
        c.log_artifacts(run_id, str(folder), artifact_path="checkpoint")
    for folder, path in files.items():
        c.log_artifact(run_id, str(path), artifact_path=folder)
    c.set_terminated(run_id, status="FINISHED")
    return run_id


def child_run(
    c: Any,
    parent_run_id: str,
    role: str,
    model: str,
    trial_id: str,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """A new run nested under ``parent_run_id`` (the sweep's run, or a best run for its seed
    runs), tagged with its role, model and trial."""
    parent = c.get_run(parent_run_id)
    default_name = f"{model}/{trial_id}" if role == "trial" else f"{role}/{model}"
    run = c.create_run(
        parent.info.experiment_id,
        run_name=run_name or default_name,
        tags={
            "mlflow.parentRunId": parent_run_id,
            TAG_ROLE: role,
            TAG_MODEL: model,
            TAG_TRIAL: trial_id,
            TAG_SWEEP: parent.data.tags.get(TAG_SWEEP, ""),
            **(tags or {}),
        },
    )
    return run.info.run_id


def log_skipped_run(tracking_uri: str, parent_run_id: str, outcome: ModelOutcome) -> str:
    """A run under the sweep's for a model it did not search (role ``skipped``), its reason
    in ``recsys.status`` (``cannot score cold items``); one per model, kept on resume."""
    existing = find_child_runs(tracking_uri, parent_run_id, "skipped", outcome.model)
    if existing:
        return next(iter(existing.values())).info.run_id
    c = client(tracking_uri)
    tags = {TAG_STATUS: outcome.skipped or ""}
    run_id = child_run(c, parent_run_id, "skipped", outcome.model, "", tags=tags)
    c.set_terminated(run_id, status="FINISHED")
    return run_id


def log_seed_runs(tracking_uri: str, outcome: ModelOutcome) -> list[str]:
    """With ``--seeds N > 1``, one run per seed nested under the model's best run: the seed as a
    param, its test metrics; with ``--folds K``, one run per fold (role ``fold``, the fold and
    the seed as params, that fold's test metrics); a run an interrupted sweep left is filled,
    not duplicated. Returns their ids, in ``outcome.seeds`` (``folds``) order (none with one
    seed and no folds)."""
    folds = len(outcome.folds) > 1
    runs = outcome.folds if folds else outcome.seeds
    if len(runs) <= 1 or outcome.best_run_id is None:
        return []
    role, tag = ("fold", TAG_FOLD) if folds else ("seed", TAG_SEED)
    c = client(tracking_uri)
    best = c.get_run(outcome.best_run_id)
    existing = {
        r.data.tags.get(tag): r.info.run_id
        for r in c.search_runs(
            [best.info.experiment_id],
            filter_string=(
                f"tags.mlflow.parentRunId = '{outcome.best_run_id}' and "
                f"tags.`{TAG_ROLE}` = '{role}'"
            ),
            max_results=10_000,
        )
    }
    tests = outcome.fold_tests if folds else outcome.seed_tests
    ids = []
    for i, (label, test) in enumerate(zip(runs, tests, strict=True)):
        run_id = existing.get(str(label))
        if run_id is None:
            run_id = child_run(
                c,
                outcome.best_run_id,
                role,
                outcome.model,
                outcome.trial_id,
                run_name=f"{outcome.model}/{role}-{label if folds else i + 1}",
                tags={tag: str(label)},
            )
            params = {"seed": outcome.seed if folds else label, "epochs": outcome.best_epoch}
            c.log_batch(
                run_id, params=param_batch({**params, **({"fold": label} if folds else {})})
            )
        metrics = {metric_key("test", k): v for k, v in test.items()}
        c.log_batch(run_id, metrics=metric_batch(metrics, 0))
        c.set_terminated(run_id, status="FINISHED")
        ids.append(run_id)
    return ids


def log_statistics(tracking_uri: str, board: Leaderboard) -> None:
    """Each best run gets its leaderboard statistics as metrics: the test metrics' intervals
    (``<metric>_ci_low`` / ``_ci_high``) and spread across seeds (``_std``), the beyond-accuracy
    and sampled metrics' too, the seeds (with ``--folds``: the folds, the target's
    ``_fold_min`` / ``_fold_max``; ``_std`` is across folds), the paired tests against the best
    model (``p_wilcoxon``, ``p_ttest``, ``tied_with_best`` 1/0), and with the sampled protocol the
    model's place in both orders (``rank_full``, ``rank_sampled``)."""
    c = client(tracking_uri)
    places = {r.model: i for i, r in enumerate(board.sampled_order(), 1)}
    full = {r.model: i for i, r in enumerate((r for r in board.rows if r.has_scores), 1)}
    for row in board.rows:
        o = row.outcome
        if not o.best_run_id:
            continue
        metrics: dict[str, Any] = {}
        if row.model in places:
            metrics["rank_full"], metrics["rank_sampled"] = full[row.model], places[row.model]
        for name in (*board.metrics, *board.beyond, *board.sampled, *board.all_items):
            key = metric_key("test", name)
            if key in row.intervals:
                metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = row.intervals[key]
            metrics[f"{key}_std"] = o.test_std.get(name, float("nan"))
        if board.tested:
            metrics["p_wilcoxon"], metrics["p_ttest"] = row.p_wilcoxon, row.p_ttest
        metrics["seeds"] = len(o.seeds) if o.error is None else 0
        if board.folds:  # the fold-to-fold spread: _std above, and the target's range
            metrics.update(board.fold_spread(o))
        if row.tied_with_best is not None:
            metrics["tied_with_best"] = int(row.tied_with_best)
        c.log_batch(run_id=o.best_run_id, metrics=metric_batch(metrics, 0))


# How a sweep ended -> the MLflow status of its parent run (and of trial runs left open).
_RUN_STATUS = {
    "finished": "FINISHED",
    "trials_lost": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
    "time_budget": "FINISHED",  # its results are written, of the trials the budget let run
}


def end_sweep(tracking_uri: str, parent_run_id: str, status: str) -> None:
    """Ends the sweep's parent run, tagged ``recsys.status`` with how the sweep ended; trial and
    best runs still RUNNING (an interruption stops trials without telling the callback) end
    with the parent's status."""
    c = client(tracking_uri)
    run_status = _RUN_STATUS[status]
    parent = c.get_run(parent_run_id)
    open_runs = c.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"
        ),
        max_results=10_000,
    )
    for run in open_runs:
        c.set_terminated(run.info.run_id, status=run_status)
    c.set_tag(parent_run_id, TAG_STATUS, status)
    c.set_terminated(parent_run_id, status=run_status)

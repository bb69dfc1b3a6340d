"""MLflow beyond the runs: each best checkpoint as a logged pyfunc model, the leaderboard's best
registered as ``recsys-tune-<dataset>@champion``, and what the MLflow UI shows a new user.

The model format itself (artifacts, request and answer tables) is :mod:`recsys.serving`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys.tuning import tracking

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.config import SweepConfig
    from recsys.tuning.leaderboard import Leaderboard
    from recsys.tuning.scoring import Scored

MODEL_NAME = "model"  # the logged model's name within its best run
CHAMPION = "champion"
LEADERBOARD_TABLE = "leaderboard.json"
# MLflow 3.x opens an experiment of this kind on its runs (not on the GenAI traces overview).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
NOTE = "mlflow.note.content"  # the description the UI shows on experiments and runs
TAG_BEST_RUN = "recsys.best_run_id"  # on a registered version: the best run it came from


def registered_name(dataset: str) -> str:
    """The registry name of a dataset's champion: ``recsys-tune-<dataset>``."""
    return f"recsys-tune-{dataset}"


_PROGRESS_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def _store(tracking_uri: str) -> Iterator[None]:
    """MLflow's fluent API (``start_run``, ``log_model``, ``register_model``) pointed at
    ``tracking_uri`` for the block; the process's own settings (and environment) are put back
    afterwards, since everything else here passes its URI explicitly."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", _PROGRESS_BARS)
    environment = {k: os.environ.get(k) for k in keys}
    registry_before = registry_utils._registry_uri
    # log_model validates its input example by downloading the model: no progress bars in
    # the sweep's console for that, nor its INFO line per model.
    os.environ[_PROGRESS_BARS] = "false"
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(max(level, logging.WARNING))
    try:
        with tracking_utils._use_tracking_uri(tracking_uri):
            mlflow.set_registry_uri(tracking_uri)
            yield
    finally:
        pyfunc_log.setLevel(level)
        registry_utils._registry_uri = registry_before
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def describe(tracking_uri: str, parent_run_id: str, cfg: SweepConfig, data: SplitData) -> None:
    """Tags the sweep's experiment as a model-training one and describes it and the sweep's
    parent run (``mlflow.note.content``), so that the UI opens on the runs and says how to read
    them."""
    c = tracking.client(tracking_uri)
    parent = c.get_run(parent_run_id)
    experiment = parent.info.experiment_id
    c.set_experiment_tag(experiment, *EXPERIMENT_KIND)
    c.set_experiment_tag(experiment, NOTE, _experiment_note(cfg.dataset))
    c.set_tag(parent_run_id, NOTE, _sweep_note(cfg, data))


def _experiment_note(dataset: str) -> str:
    return (
        f"Hyperparameter sweeps of recommender models on **{dataset}** (recsys-tune). In the "
        "UI, pick **Model training** (top left) to see the runs.\n\n"
        "- Each sweep is one top-level run; expand it for its nested runs.\n"
        "- `trial` runs (tag `recsys.role = trial`): one per tried config, validation metrics "
        "per epoch.\n"
        "- `best/<model>` runs (`recsys.role = best`): each model's best checkpoint scored on "
        "the held-out test split (`test_*` metrics), its config, recommendations and logged "
        "model. Filter with `tags.recsys.role = 'best'` and compare them.\n"
        f"- The leaderboard's best model is registered as `{registered_name(dataset)}` with "
        f"the alias `@{CHAMPION}`."
    )


def _sweep_note(cfg: SweepConfig, data: SplitData) -> str:
    summary = ", ".join(f"{k} {v}" for k, v in data.summary.items() if np.isscalar(v))
    return (
        f"Sweep of {', '.join(cfg.models)} on **{data.name}** ({summary}).\n\n"
        f"Split: {json.dumps(cfg.prep) if cfg.prep else 'the default'}; target: validation "
        f"{cfg.metric}; {cfg.search} search, {cfg.scheduler} scheduler, root seed {cfg.seed}.\n\n"
        f"The leaderboard (`{LEADERBOARD_TABLE}` in this run's artifacts) ranks the models by "
        f"test {cfg.metric}; each `best/<model>` run holds that model's test metrics and its "
        "logged model; trial runs hold the search's curves."
    )


def log_model(tracking_uri: str, run_id: str, best: Scored, data: SplitData) -> str:
    """Logs a model's best checkpoint as a pyfunc model of its best run; returns its URI.

    A model already logged from that run (a resumed sweep) is reused, not logged again.
    """
    import mlflow

    from recsys import serving

    existing = logged_model_uri(tracking_uri, run_id)
    if existing is not None:
        return existing
    outcome = best.outcome
    card = serving.ModelCard(
        model=outcome.model,
        config=outcome.config,
        seed=outcome.seed,
        epoch=outcome.best_epoch,
        dataset=data.name,
        fingerprint=data.fingerprint,
    )
    with tempfile.TemporaryDirectory() as tmp, _store(tracking_uri):
        artifacts = serving.save_artifacts(Path(tmp), card, best.trainer.model, data)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(Path(serving.__file__).with_name("serving_model.py")),
                artifacts=artifacts,
                signature=signature(data),
                input_example=input_example(data),
                pip_requirements=requirements(),
                model_config={
                    "device": "auto",
                    "max_users": serving.DEFAULT_MAX_USERS,
                    # Top-k of dot-product models through a FAISS index (recsys.ann).
                    "ann_min_items": serving.DEFAULT_ANN.min_items,
                    "ann_nprobe": serving.DEFAULT_ANN.nprobe,
                    "ann_max_seen": serving.DEFAULT_ANN.max_seen,
                },
                tags={tracking.TAG_MODEL: outcome.model},
            )
    return info.model_uri


def logged_model_uri(tracking_uri: str, run_id: str) -> str | None:
    """The URI (``models:/<model_id>``) of the model logged from ``run_id``, if any."""
    import mlflow

    experiment = tracking.client(tracking_uri).get_run(run_id).info.experiment_id
    with _store(tracking_uri):
        found = mlflow.search_logged_models(
            experiment_ids=[experiment],
            filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'",
            output_format="list",
        )
    ready = [m for m in found if str(m.status).endswith("READY")]
    return f"models:/{ready[0].model_id}" if ready else None


def signature(data: SplitData):
    """Request: ``user_id`` (the dataset's raw id type), optional ``k``; answer: one row per
    recommended item (see :mod:`recsys.serving`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    user, item = _id_type(data.user_ids), _id_type(data.item_ids)
    # k of any type: as a long, MLflow would cast 2.5 to 2 before predict sees it (and a double
    # refuses ints); predict checks it is a whole number in 1..n_items.
    inputs = Schema([ColSpec(user, "user_id"), ColSpec(AnyType(), "k", required=False)])
    outputs = Schema(
        [
            ColSpec(user, "user_id"),
            ColSpec(item, "item_id"),
            ColSpec("long", "rank"),
            ColSpec("float", "score"),
            ColSpec("string", "source"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _id_type(ids: np.ndarray) -> str:
    return "long" if pd.api.types.infer_dtype(ids, skipna=True) == "integer" else "string"


def input_example(data: SplitData) -> pd.DataFrame:
    """Two known users, five items each."""
    users = data.user_ids[: min(2, data.n_users)]
    if _id_type(data.user_ids) == "long":
        users = users.astype(np.int64)
    return pd.DataFrame({"user_id": users, "k": np.full(len(users), 5, dtype=np.int64)})


def requirements() -> list[str]:
    """What loading the model needs (pinned to this environment): the project, torch, MLflow,
    pandas, pyarrow; not Ray."""
    from importlib import metadata

    pins = []
    for package in ("recsys-tune", "torch", "mlflow", "numpy", "pandas", "pyarrow"):
        try:
            version = metadata.version(package).split("+")[0]
            pins.append(f"{package}=={version}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def publish(
    tracking_uri: str,
    parent_run_id: str,
    dataset: str,
    board: Leaderboard,
) -> str | None:
    """After the leaderboard: logs it on the sweep's run as an MLflow table and registers its
    best model (:meth:`Leaderboard.best_model`) as ``recsys-tune-<dataset>@champion``; returns
    that model's URI (None when no model has a result)."""
    log_leaderboard(tracking_uri, parent_run_id, board.to_frame())
    best = board.best_model()
    run_id = best.outcome.best_run_id if best is not None else None
    if run_id is None:
        return None
    uri = logged_model_uri(tracking_uri, run_id)
    if uri is not None:
        register_champion(tracking_uri, registered_name(dataset), uri, run_id)
    return uri


def log_leaderboard(tracking_uri: str, parent_run_id: str, board: pd.DataFrame) -> None:
    """The leaderboard as an MLflow table of the sweep's run (shown by the UI as is). A resumed
    sweep's new leaderboard replaces the old one instead of being appended to it."""
    c = tracking.client(tracking_uri)
    table = board.fillna({"error": ""})
    if LEADERBOARD_TABLE not in {a.path for a in c.list_artifacts(parent_run_id)}:
        c.log_table(parent_run_id, data=table, artifact_file=LEADERBOARD_TABLE)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / LEADERBOARD_TABLE
        table.to_json(path, orient="split", index=False)
        c.log_artifact(parent_run_id, str(path))


def register_champion(tracking_uri: str, name: str, model_uri: str, run_id: str) -> str:
    """Registers ``model_uri`` under ``name`` and points the ``champion`` alias at it; returns
    the version. A champion that is that model already stays as it is."""
    import mlflow
    from mlflow.exceptions import MlflowException

    c = tracking.client(tracking_uri)
    try:
        current = c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no such model or alias yet
        current = None
    if current is not None and _id(model_uri) in (
        getattr(current, "model_id", None),
        _id(current.source),
    ):
        return current.version
    with _store(tracking_uri):
        version = mlflow.register_model(model_uri, name, tags={TAG_BEST_RUN: run_id})
    c.set_registered_model_alias(name, CHAMPION, version.version)
    c.update_registered_model(
        name,
        description=(
            f"The best model of the latest recsys-tune sweep on this dataset; @{CHAMPION} is "
            "the leaderboard's first row. Input: a table with user_id (raw ids) and optionally "
            "k (default 10); output: user_id, item_id, rank, score, source."
        ),
    )
    return version.version


def _id(model_uri: str) -> str:
    return model_uri.removeprefix("models:/")

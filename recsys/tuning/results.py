"""Everything a sweep writes to its results directory.

Results directory contract (``results/<sweep>/`` by default; every file written atomically):

- ``leaderboard.csv`` / ``leaderboard.md``: one row per model with columns ``model``,
  ``val_<m>_at_<k>`` and ``test_<m>_at_<k>`` for ``m`` in recall, ndcg, precision, hit and
  ``k`` in 10, 20 (validation and test metrics of the best checkpoint, full ranking; the names
  are ``recsys.metrics.metric_key``'s, as in MLflow), ``epochs`` (epochs trained over all
  trials: the search's cost), ``trials``, ``trials_stopped`` (stopped early by ASHA),
  ``trials_failed`` (ended in an error after their restarts: their results are lost),
  ``wall_seconds`` (the model's search), ``seconds_per_epoch`` (mean training time of one
  epoch), ``best_epoch`` (the best checkpoint's epoch), ``best_trial`` and ``error`` (why a
  model has no scores: every trial failed; empty otherwise); sorted by the target test metric,
  best first, models without scores last.
- ``best_configs.yaml``: per model, the best config, its seed and the best epoch.
- ``split.parquet``: ``user_id``, ``item_id`` (raw ids), ``split`` (train/val/test).
- ``recommendations/<model>.parquet``: top-100 per test user: ``user_id``, ``item_id`` (raw ids),
  ``rank`` (1 = best), ``score``; training and validation items excluded.
- ``curves/<model>.png``: validation target vs epoch for every trial (a cross marks a trial
  ASHA stopped early); ``curves/<model>.csv`` the same numbers.
- ``test_metrics.png``: test metrics by model (bar chart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import yaml

from recsys.io import atomic_path, write_text_atomic
from recsys.metrics import metric_key
from recsys.tuning.best import ModelOutcome
from recsys.tuning.plots import CURVE_COLUMNS, plot_curves, plot_test_bars

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.models.base import Recommender

LEADERBOARD_METRICS = ("recall", "ndcg", "precision", "hit")
LEADERBOARD_KS = (10, 20)
TOP_N = 100


def leaderboard_metrics() -> list[str]:
    """The evaluator's names of the leaderboard's metrics: ``recall@10``, ``ndcg@10``, ..."""
    return [f"{m}@{k}" for k in LEADERBOARD_KS for m in LEADERBOARD_METRICS]


def metric_columns(split: str) -> list[str]:
    return [metric_key(split, m) for m in leaderboard_metrics()]


def leaderboard_row(outcome: ModelOutcome) -> dict[str, Any]:
    row: dict[str, Any] = {"model": outcome.model}
    for split, values in (("val", outcome.val), ("test", outcome.test)):
        for name in leaderboard_metrics():
            row[metric_key(split, name)] = float(values.get(name, float("nan")))
    row.update(
        epochs=outcome.epochs,
        trials=outcome.trials,
        trials_stopped=outcome.trials_stopped,
        trials_failed=outcome.trials_failed,
        wall_seconds=round(outcome.wall_seconds, 2),
        seconds_per_epoch=round(outcome.seconds_per_epoch, 4),
        best_epoch=outcome.best_epoch,
        best_trial=outcome.trial_id,
        error=outcome.error or "",
    )
    return row


def leaderboard(outcomes: Sequence[ModelOutcome], metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per model, best target test metric first."""
    frame = pd.DataFrame([leaderboard_row(o) for o in outcomes])
    sort = metric_key("test", metric)
    if sort in frame:
        frame = frame.sort_values(sort, ascending=False, kind="stable")
    return frame.reset_index(drop=True)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (4 significant decimals for floats)."""

    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            if math.isnan(v):
                return "nan"
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "|".join("---" for _ in frame.columns) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def recommendations(model: Recommender, data: SplitData, k: int = TOP_N) -> pd.DataFrame:
    """Top-``k`` items for every test user, training and validation items excluded.

    Returns:
        Columns ``user_id``, ``item_id`` (raw ids), ``rank`` (1 = best), ``score``.
    """
    from recsys.evaluate import recommend as top_k

    assert data.test is not None, "recommendations are for the test users"
    users = torch.from_numpy(np.unique(data.test.users))
    items, scores = top_k(model, data, users, k=k, exclude_splits=("train", "val"))
    items, scores = items.numpy(), scores.numpy()
    width = items.shape[1]
    valid = items >= 0  # a user with fewer than k unseen items gets a shorter list
    rows = np.repeat(users.numpy(), width).reshape(-1, width)[valid]
    ranks = np.tile(np.arange(1, width + 1, dtype=np.int32), (len(users), 1))[valid]
    return pd.DataFrame(
        {
            "user_id": data.user_ids[rows],
            "item_id": data.item_ids[items[valid]],
            "rank": ranks,
            "score": scores[valid].astype(np.float32),
        }
    )


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def write_model_outputs(
    results_dir: Path, outcome: ModelOutcome, model: Recommender, data: SplitData, metric: str
) -> dict[str, Path]:
    """One model's recommendations and learning curves; returns their paths by kind."""
    results_dir = Path(results_dir)
    rec = write_parquet(
        recommendations(model, data), results_dir / "recommendations" / f"{outcome.model}.parquet"
    )
    curve_png = results_dir / "curves" / f"{outcome.model}.png"
    plot_curves(outcome.curves, outcome.model, f"validation {metric}", curve_png)
    frame = pd.DataFrame(outcome.curves, columns=CURVE_COLUMNS)
    write_text_atomic(results_dir / "curves" / f"{outcome.model}.csv", frame.to_csv(index=False))
    return {"recommendations": rec, "curve": curve_png}


def best_config_yaml(outcome: ModelOutcome) -> str:
    """One model's best config, as its best MLflow run holds it (``config.yaml``)."""
    return yaml.safe_dump(
        {
            "model": outcome.model,
            "seed": outcome.seed,
            "best_epoch": outcome.best_epoch,
            "config": outcome.config,
        },
        sort_keys=False,
    )


def write_results(
    results_dir: Path, data: SplitData, outcomes: Sequence[ModelOutcome], metric: str
) -> pd.DataFrame:
    """The sweep-wide files of the results directory (see the module docstring)."""
    results_dir = Path(results_dir)
    board = leaderboard(outcomes, metric)
    write_text_atomic(results_dir / "leaderboard.csv", board.to_csv(index=False))
    write_text_atomic(results_dir / "leaderboard.md", markdown_table(board))
    configs = {
        o.model: {
            "config": o.config,
            "seed": o.seed,
            "best_epoch": o.best_epoch,
            "trial_id": o.trial_id,
        }
        for o in outcomes
        if o.error is None
    }
    write_text_atomic(results_dir / "best_configs.yaml", yaml.safe_dump(configs, sort_keys=False))
    data.to_parquet(results_dir / "split.parquet")
    if len(board):
        plot_test_bars(board, metric_columns("test"), results_dir / "test_metrics.png")
    return board

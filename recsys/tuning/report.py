"""After the search: each model's best checkpoint on the test split, and the results directory.

Results directory contract (``results/<sweep>/`` by default; every file written atomically):

- ``leaderboard.csv`` / ``leaderboard.md``: one row per model with columns ``model``,
  ``val_<m>@<k>`` and ``test_<m>@<k>`` for ``m`` in recall, ndcg, precision, hit and ``k`` in
  10, 20 (validation and test metrics of the best checkpoint, full ranking), ``epochs`` (epochs
  trained over all trials: the search's cost), ``trials``, ``wall_seconds`` (the model's search),
  ``seconds_per_epoch`` (mean training time of one epoch), ``best_epoch`` (the best checkpoint's
  epoch) and ``best_trial``; sorted by the target test metric, best first.
- ``best_configs.yaml``: per model, the best config, its seed and the best epoch.
- ``split.parquet``: ``user_id``, ``item_id`` (raw ids), ``split`` (train/val/test).
- ``recommendations/<model>.parquet``: top-100 per test user: ``user_id``, ``item_id`` (raw ids),
  ``rank`` (1 = best), ``score``; training and validation items excluded.
- ``curves/<model>.png``: validation target vs epoch for every trial (a cross marks a trial
  ASHA stopped early); ``curves/<model>.csv`` the same numbers.
- ``test_metrics.png``: test metrics by model (bar chart).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import yaml

from recsys.io import atomic_path, write_text_atomic
from recsys.tuning.trainable import PROGRESS_FILE, STATE_FILE, result_key

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.models.base import Recommender

LEADERBOARD_METRICS = ("recall", "ndcg", "precision", "hit")
LEADERBOARD_KS = (10, 20)
TOP_N = 100


def metric_columns(split: str) -> list[str]:
    return [f"{split}_{m}@{k}" for k in LEADERBOARD_KS for m in LEADERBOARD_METRICS]


@dataclass
class ModelOutcome:
    """What the search and the final evaluation found for one model."""

    model: str
    trial_id: str
    config: dict[str, Any]
    seed: int
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    trials: int
    epochs: int
    wall_seconds: float
    seconds_per_epoch: float
    curves: list[dict[str, Any]] = field(default_factory=list)
    best_run_id: str | None = None

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"model": self.model}
        for split, values in (("val", self.val), ("test", self.test)):
            for col in metric_columns(split):
                row[col] = float(values.get(col.split("_", 1)[1], float("nan")))
        row.update(
            epochs=self.epochs,
            trials=self.trials,
            wall_seconds=round(self.wall_seconds, 2),
            seconds_per_epoch=round(self.seconds_per_epoch, 4),
            best_epoch=self.best_epoch,
            best_trial=self.trial_id,
        )
        return row

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=float)

    @classmethod
    def from_json(cls, text: str) -> ModelOutcome:
        return cls(**json.loads(text))


def trial_curves(result_grid: Any, key: str, max_epochs: int) -> list[dict[str, Any]]:
    """Every reported ``(trial, epoch, value)`` of a search, and whether the trial stopped early."""
    rows = []
    for result in result_grid:
        frame = result.metrics_dataframe
        if frame is None or key not in frame or "epoch" not in frame:
            continue
        frame = frame.dropna(subset=[key]).drop_duplicates("epoch", keep="last")
        last = int(frame["epoch"].max()) if len(frame) else 0
        trial_id = str((result.metrics or {}).get("trial_id", result.path))
        for epoch, value in zip(frame["epoch"], frame[key], strict=True):
            rows.append(
                {
                    "trial_id": trial_id,
                    "epoch": int(epoch),
                    "value": float(value),
                    "stopped_early": bool(last < max_epochs and result.error is None),
                }
            )
    return rows


def best_checkpoint(result_grid: Any, key: str) -> tuple[Any, Any, dict[str, Any]]:
    """The best checkpoint over all trials and epochs by ``key`` (higher is better).

    Returns:
        ``(result, checkpoint, metrics)``: the trial's result, its best checkpoint, and the
        metrics reported with that checkpoint.
    """
    best = None
    for result in result_grid:
        for checkpoint, metrics in result.best_checkpoints or []:
            value = metrics.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if best is None or value > best[2][key]:
                best = (result, checkpoint, metrics)
    if best is None:
        raise RuntimeError(f"no trial reported {key!r} with a checkpoint")
    return best


def load_trainer(
    model: str,
    config: Mapping[str, Any],
    data: SplitData,
    checkpoint_dir: Path,
    seed: int,
    device: Any = None,
) -> Any:
    """A Trainer on ``data`` with the checkpoint's state loaded."""
    from recsys.train import Trainer

    trainer = Trainer(model, dict(config), data, device=device, seed=seed)
    trainer.load(Path(checkpoint_dir) / STATE_FILE)
    return trainer


def checkpoint_epoch(checkpoint_dir: Path) -> int:
    return int(json.loads((Path(checkpoint_dir) / PROGRESS_FILE).read_text())["epoch"])


def recommend(model: Recommender, data: SplitData, k: int = TOP_N) -> pd.DataFrame:
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


def leaderboard(outcomes: Sequence[ModelOutcome], metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per model, best target test metric first."""
    frame = pd.DataFrame([o.row() for o in outcomes])
    sort = f"test_{metric}"
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


def _savefig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(curves: Sequence[Mapping[str, Any]], model: str, metric: str, path: Path) -> None:
    """Validation ``metric`` vs epoch, one line per trial; a cross ends an early-stopped trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    frame = pd.DataFrame(list(curves), columns=["trial_id", "epoch", "value", "stopped_early"])
    for _, trial in frame.groupby("trial_id", sort=True):
        trial = trial.sort_values("epoch")
        (line,) = ax.plot(trial["epoch"], trial["value"], marker=".", linewidth=1)
        if bool(trial["stopped_early"].iloc[-1]):
            ax.plot(trial["epoch"].iloc[-1], trial["value"].iloc[-1], "x", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{model}: {frame['trial_id'].nunique()} trials (x: stopped early by ASHA)")
    ax.grid(alpha=0.3)
    _savefig(fig, path)


def plot_test_bars(board: pd.DataFrame, path: Path) -> None:
    """Grouped bars: test metrics at 10 and 20, one group per metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in metric_columns("test") if c in board]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cols)), 4))
    width = 0.8 / max(1, len(board))
    x = np.arange(len(cols))
    for j, (_, row) in enumerate(board.iterrows()):
        ax.bar(x + j * width, [row[c] for c in cols], width, label=row["model"])
    ax.set_xticks(x + 0.4 - width / 2, [c.removeprefix("test_") for c in cols], rotation=30)
    ax.set_ylabel("test")
    ax.legend(fontsize=7, ncols=2)
    ax.grid(axis="y", alpha=0.3)
    _savefig(fig, path)


def write_model_outputs(
    results_dir: Path, outcome: ModelOutcome, recommendations: pd.DataFrame, metric: str
) -> dict[str, Path]:
    """Recommendations and learning curve of one model; returns their paths."""
    results_dir = Path(results_dir)
    rec = results_dir / "recommendations" / f"{outcome.model}.parquet"
    write_parquet(recommendations, rec)
    curve_png = results_dir / "curves" / f"{outcome.model}.png"
    plot_curves(outcome.curves, outcome.model, metric, curve_png)
    frame = pd.DataFrame(outcome.curves, columns=["trial_id", "epoch", "value", "stopped_early"])
    write_text_atomic(results_dir / "curves" / f"{outcome.model}.csv", frame.to_csv(index=False))
    return {"recommendations": rec, "curve": curve_png}


def best_config_yaml(outcome: ModelOutcome) -> str:
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
    }
    write_text_atomic(results_dir / "best_configs.yaml", yaml.safe_dump(configs, sort_keys=False))
    data.to_parquet(results_dir / "split.parquet")
    if len(board):
        plot_test_bars(board, results_dir / "test_metrics.png")
    return board


def val_key(metric: str) -> str:
    return result_key("val", metric)

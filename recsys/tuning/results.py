"""Everything a sweep writes to its results directory.

Results directory contract (``results/<sweep>/`` by default; every file written atomically):

- ``leaderboard.csv``: one row per model with columns ``model``, ``val_<m>_at_<k>`` and
  ``test_<m>_at_<k>`` for ``m`` in recall, ndcg, precision, hit and ``k`` in 10, 20
  (validation metrics of the best checkpoint; test metrics averaged over the ``--seeds`` runs
  of its config, the best checkpoint's alone with one seed; full ranking; the names are
  ``recsys.metrics.metric_key``'s, as in MLflow); per test metric ``<test metric>_ci_low`` /
  ``_ci_high`` (95% bootstrap interval over test users) and ``_std`` (across seeds; empty with
  one seed); ``seeds``; for the target metric, ``p_wilcoxon`` and ``p_ttest`` (paired against
  the leaderboard's best model over the same users, Holm-corrected across models; empty on the
  best row) and ``tied_with_best`` (neither corrected test below 0.05; true on the best row);
  ``epochs`` (epochs trained over all trials: the search's cost), ``trials``,
  ``trials_finished`` (trained their whole budget), ``trials_stopped`` (stopped early by ASHA),
  ``trials_failed`` (ended in an error after their restarts: their results are lost),
  ``wall_seconds`` (the model's search), ``seconds_per_epoch`` (mean training time of one
  epoch), ``best_epoch`` (the best checkpoint's epoch), ``best_trial``, ``best_run_id`` (its
  MLflow run) and ``error`` (why a
  model has no scores: every trial failed; empty otherwise); sorted by the target test metric,
  best first, models without scores last.
- ``leaderboard.md``: the same ranking for reading: the target metric with its interval,
  spread and p-values, a few other metrics and the trial counts; then every test metric with
  its interval.
- ``per_user/<model>.parquet``: every test user's metrics for each seed run: ``user_id`` (raw
  id), ``seed``, ``test_<m>_at_<k>`` for the leaderboard's metrics; what the intervals and
  tests are computed from.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import yaml

from recsys.io import atomic_path, write_text_atomic
from recsys.metrics import metric_key, parse_metric
from recsys.tuning.best import ModelOutcome
from recsys.tuning.plots import CURVE_COLUMNS, plot_curves, plot_test_bars

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.evaluate import UserMetrics
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
    for name in leaderboard_metrics():
        key = metric_key("test", name)
        row[f"{key}_std"] = float(outcome.test_std.get(name, float("nan")))
    row.update(
        seeds=len(outcome.seeds) if outcome.error is None else 0,
        epochs=outcome.epochs,
        trials=outcome.trials,
        trials_finished=outcome.trials_finished,
        trials_stopped=outcome.trials_stopped,
        trials_failed=outcome.trials_failed,
        wall_seconds=round(outcome.wall_seconds, 2),
        seconds_per_epoch=round(outcome.seconds_per_epoch, 4),
        best_epoch=outcome.best_epoch,
        best_trial=outcome.trial_id,
        best_run_id=outcome.best_run_id or "",
        error=outcome.error or "",
    )
    return row


def leaderboard(
    outcomes: Sequence[ModelOutcome],
    metric: str = "ndcg@10",
    per_user: Mapping[str, pd.DataFrame] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per model, best target test metric first, with the statistics of
    :func:`statistics` when ``per_user`` (model -> its ``per_user`` frame) is given."""
    frame = pd.DataFrame([leaderboard_row(o) for o in outcomes])
    sort = metric_key("test", metric)
    if sort in frame:
        frame = frame.sort_values(sort, ascending=False, kind="stable")
    frame = frame.reset_index(drop=True)
    if per_user:
        stats = statistics(per_user, list(frame["model"]), metric, seed)
        frame = frame.merge(stats, on="model", how="left")
    return frame[_ordered(frame.columns)]


def _ordered(columns: Sequence[str]) -> list[str]:
    """Each test metric followed by its interval and spread, then everything else."""
    out: list[str] = []
    for c in columns:
        if c in out or c.endswith(("_ci_low", "_ci_high", "_std")):
            continue
        out.append(c)
        out += [f"{c}{s}" for s in ("_ci_low", "_ci_high", "_std") if f"{c}{s}" in columns]
    return out


def statistics(
    per_user: Mapping[str, pd.DataFrame], ranking: Sequence[str], metric: str, seed: int = 0
) -> pd.DataFrame:
    """Bootstrap intervals of every test metric and paired tests against the best model.

    A user's value is the mean over the model's seed runs. Models are compared on the users
    every one of them was scored on.

    Args:
        per_user: model -> its per-user test metrics (:func:`per_user_frame`).
        ranking: models, best first (the leaderboard's order); the first with per-user
            metrics is the best.
        metric: the target metric, the one tested.
        seed: the bootstrap's seed.

    Returns:
        One row per model of ``per_user``: ``model``, ``<test metric>_ci_low`` /
        ``_ci_high``, ``p_wilcoxon``, ``p_ttest`` (Holm-corrected), ``tied_with_best``.
    """
    from recsys.stats import against_best, bootstrap_ci

    columns = [c for c in metric_columns("test") if all(c in f for f in per_user.values())]
    users = {m: f.groupby("user_id")[columns].mean() for m, f in per_user.items()}
    common = sorted(set.intersection(*(set(u.index) for u in users.values())), key=str)
    rows = []
    for model, values in users.items():
        bounds = bootstrap_ci(values.loc[common].to_numpy(), seed=seed)
        row: dict[str, Any] = {"model": model}
        for column, (low, high) in zip(columns, bounds, strict=True):
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = float(low), float(high)
        rows.append(row)
    out = pd.DataFrame(rows)
    target = metric_key("test", metric)
    ranked = [m for m in ranking if m in users]
    if not ranked or target not in columns:
        return out
    best = ranked[0]
    tests = against_best({m: users[m].loc[common, target].to_numpy() for m in ranked}, best)
    out["p_wilcoxon"] = out["model"].map(lambda m: tests[m].wilcoxon_p_holm if m in tests else None)
    out["p_ttest"] = out["model"].map(lambda m: tests[m].ttest_p_holm if m in tests else None)
    out["tied_with_best"] = out["model"].map(lambda m: m == best or tests[m].tied)
    return out


def per_user_frame(runs: Sequence[tuple[int, UserMetrics]], data: SplitData) -> pd.DataFrame:
    """Every test user's leaderboard metrics for each seed run: ``user_id`` (raw), ``seed``,
    ``test_<m>_at_<k>``."""
    frames = []
    for seed, scores in runs:
        frame = {"user_id": data.user_ids[scores.users], "seed": np.full(len(scores.users), seed)}
        for name in leaderboard_metrics():
            if name in scores.values:
                frame[metric_key("test", name)] = scores.values[name].astype(np.float32)
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def read_per_user(results_dir: Path, outcomes: Sequence[ModelOutcome]) -> dict[str, pd.DataFrame]:
    """The per-user test metrics of every model with scores, as written by
    :func:`write_model_outputs`."""
    out = {}
    for o in outcomes:
        path = Path(results_dir) / "per_user" / f"{o.model}.parquet"
        if o.error is None and path.is_file():
            out[o.model] = pd.read_parquet(path)
    return out


def markdown_board(board: pd.DataFrame, metric: str = "ndcg@10") -> str:
    """The leaderboard for reading: the target metric with its interval, spread and tests."""
    target = metric_key("test", metric)
    view = pd.DataFrame({"model": board["model"]})

    def pm(column: str) -> pd.Series:
        return board.get(column, pd.Series(np.nan, index=board.index))

    low, high, std = pm(f"{target}_ci_low"), pm(f"{target}_ci_high"), pm(f"{target}_std")
    view[f"test {metric}"] = [_num(v) for v in pm(target)]
    view["95% CI"] = [
        f"[{_num(a)}, {_num(b)}]" if not math.isnan(a) else ""
        for a, b in zip(low, high, strict=True)
    ]
    view["std (seeds)"] = [
        f"{_num(d)} ({n})" if not math.isnan(d) else f"- ({n})"
        for d, n in zip(std, board.get("seeds", pd.Series(1, index=board.index)), strict=True)
    ]
    view["p Wilcoxon"] = [_p(v) for v in pm("p_wilcoxon")]
    view["p t-test"] = [_p(v) for v in pm("p_ttest")]
    tied = board.get("tied_with_best", pd.Series(None, index=board.index))
    view["tied with best"] = [_tie(i, t) for i, t in enumerate(tied)]
    for other in (f"recall@{parse_metric(metric)[1]}", "ndcg@20"):
        key = metric_key("test", other)
        if key in board and key != target:
            view[f"test {other}"] = [_num(v) for v in board[key]]
    view[f"val {metric}"] = [_num(v) for v in pm(metric_key("val", metric))]
    view["trials finished / stopped / failed"] = [
        f"{a} / {b} / {c}"
        for a, b, c in zip(
            board["trials_finished"], board["trials_stopped"], board["trials_failed"], strict=True
        )
    ]
    view["epochs"] = board["epochs"]
    errors = board.get("error", pd.Series("", index=board.index)).fillna("").astype(str)
    if errors.str.len().any():
        view["error"] = errors
    return markdown_table(view)


def markdown_intervals(board: pd.DataFrame) -> str:
    """Every test metric of every model as ``mean [95% CI]`` (``leaderboard.md``'s second
    table)."""
    view = pd.DataFrame({"model": board["model"]})
    for column in metric_columns("test"):
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if column not in board or low not in board:
            continue
        view[column.removeprefix("test_").replace("_at_", "@")] = [
            f"{_num(v)} [{_num(a)}, {_num(b)}]" if not math.isnan(v) else ""
            for v, a, b in zip(board[column], board[low], board[high], strict=True)
        ]
    return markdown_table(view)


def _tie(position: int, tied: Any) -> str:
    if not isinstance(tied, bool | np.bool_):
        return ""  # no scores, or no tests
    return "best" if position == 0 and tied else ("yes" if tied else "no")


def _num(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _p(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.2g}" if v >= 1e-4 else "<1e-4"


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
    results_dir: Path,
    outcome: ModelOutcome,
    model: Recommender,
    data: SplitData,
    metric: str,
    per_user: Sequence[tuple[int, UserMetrics]] = (),
) -> dict[str, Path]:
    """One model's recommendations, per-user test metrics and learning curves; returns their
    paths by kind."""
    results_dir = Path(results_dir)
    users = write_parquet(
        per_user_frame(per_user, data), results_dir / "per_user" / f"{outcome.model}.parquet"
    )
    rec = write_parquet(
        recommendations(model, data), results_dir / "recommendations" / f"{outcome.model}.parquet"
    )
    curve_png = results_dir / "curves" / f"{outcome.model}.png"
    plot_curves(outcome.curves, outcome.model, f"validation {metric}", curve_png)
    frame = pd.DataFrame(outcome.curves, columns=CURVE_COLUMNS)
    write_text_atomic(results_dir / "curves" / f"{outcome.model}.csv", frame.to_csv(index=False))
    return {"recommendations": rec, "curve": curve_png, "per_user": users}


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
    results_dir: Path,
    data: SplitData,
    outcomes: Sequence[ModelOutcome],
    metric: str,
    seed: int = 0,
) -> pd.DataFrame:
    """The sweep-wide files of the results directory (see the module docstring); ``seed`` is
    the bootstrap's."""
    results_dir = Path(results_dir)
    board = leaderboard(outcomes, metric, read_per_user(results_dir, outcomes), seed)
    write_text_atomic(results_dir / "leaderboard.csv", board.to_csv(index=False))
    write_text_atomic(
        results_dir / "leaderboard.md",
        markdown_board(board, metric)
        + "\nEvery test metric, mean [95% bootstrap interval over users]:\n\n"
        + markdown_intervals(board),
    )
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

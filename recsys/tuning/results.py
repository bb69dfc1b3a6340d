"""Everything a sweep writes to its results directory.

Results directory contract (``results/<sweep>/`` by default; every file written atomically):

- ``leaderboard.csv``: one row per model with columns ``model``, ``val_<m>_at_<k>`` and
  ``test_<m>_at_<k>`` for ``m`` in recall, ndcg, precision, hit and ``k`` in the reported
  cut-offs (``--report-ks``, default 10, 20, and the target's), and the target metric when it is
  another
  (validation metrics of the best checkpoint; test metrics averaged over the ``--seeds`` runs
  of its config, the best checkpoint's alone with one seed; full ranking; the names are
  ``recsys.metrics.metric_key``'s, as in MLflow); per test metric ``<test metric>_ci_low`` /
  ``_ci_high`` (95% bootstrap interval over test users) and ``_std`` (across seeds; empty with
  one seed); then, on test only, the beyond-accuracy metrics ``test_<b>_at_<k>`` at each
  reported cut-off for ``b`` in coverage, gini, novelty, arp (``recsys.beyond_accuracy``: of
  the test users' top-k lists, training and validation items excluded; novelty and ARP with
  their intervals, being per user; each with ``_std``); ``seeds``; for the target metric,
  ``p_wilcoxon`` and ``p_ttest`` (paired against the leaderboard's best model over the same
  users, Holm-corrected across models; empty on the best row) and ``tied_with_best``
  (neither corrected test below 0.05; true on the best row);
  ``epochs`` (epochs trained over all trials: the search's cost), ``trials``,
  ``trials_finished`` (trained their whole budget), ``trials_stopped`` (stopped early by ASHA),
  ``trials_failed`` (ended in an error after their restarts: their results are lost),
  ``wall_seconds`` (the model's search), ``seconds_per_epoch`` (mean training time of one
  epoch), ``best_epoch`` (the best checkpoint's epoch), ``best_trial``, ``best_run_id`` (its
  MLflow run) and ``error`` (why a
  model has no scores: every trial failed; empty otherwise); sorted by the target test metric,
  best first, models without scores last. On a cold-item split (``--split cold_items``) the
  ``val_*`` and ``test_*`` metrics rank among the split's own cold items, ``test_all_<m>_at_<k>``
  (with intervals and spread) among every item, and a ``status`` column says ``scored``,
  ``failed`` or ``cannot score cold items`` (a model that was not searched: no numbers).
- ``leaderboard.md``: the same ranking for reading: the target metric with its interval,
  spread and p-values, a few other metrics and the trial counts; then every test metric with
  its interval; then the beyond-accuracy metrics.
- ``leaderboard_sampled.csv`` / ``.md`` (only with ``--sampled-negatives N``): the sampled
  protocol (``recsys.sampled``: each test item ranked among N sampled items its user never
  interacted with): per model ``rank_sampled`` (by sampled NDCG at the target's cut-off),
  ``rank_full`` (its full-ranking place), the full-ranking target, ``test_sampled_hit_at_<k>`` and
  ``test_sampled_ndcg_at_<k>`` with their intervals and spread; the ``.md`` says how many model
  pairs the two orders rank the other way round.
- ``leaderboard_folds.csv`` (only with ``--folds K``): one row per model and fold: ``model``,
  ``fold``, each test metric on that fold's test (``recsys.tuning.folds``). ``leaderboard.csv``'s
  test metrics are then the mean over the folds, ``_std`` the spread across folds, intervals
  and tests are over (fold, user) pairs; it adds ``folds`` and the target's ``_fold_min`` /
  ``_fold_max``; ``leaderboard.md`` ends with the target per fold, its std and range.
- ``per_user/<model>.parquet``: every test user's metrics for each seed run: ``user_id`` (raw
  id), ``seed``, ``fold`` (with ``--folds``), ``test_<m>_at_<k>`` for the leaderboard's
  per-user metrics (the ranking metrics, novelty and ARP, the sampled metrics;
  ``test_<b>_<m>_at_<k>`` for ``b`` in head,
  torso, tail and ``m`` in recall, ndcg, against the user's test items in that bucket of
  training popularity, empty where it has none: ``recsys.buckets``); what the intervals, tests
  and breakdowns are computed from.
- ``leaderboard_buckets.csv`` / ``.md``: each model's target metrics by user activity (cold
  users, quartiles of training interactions) and by item popularity bucket (head / torso /
  tail), with the users per bucket and bootstrap intervals (``recsys.tuning.breakdown``).
- ``compare.csv`` / ``.md`` (only with ``--compare``): pairs of models on the same users: the
  mean difference with its bootstrap interval, Wilcoxon and paired t-test, Holm-corrected
  across the pairs.
- ``best_configs.yaml``: per model, the best config, its seed and the best epoch.
- ``split.parquet``: ``user_id``, ``item_id`` (raw ids), ``split`` (train/val/test); on a
  cold-item split also ``cold_item`` (the pair's item is one of the held-out items).
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
from recsys.metrics import (
    ALL_ITEMS,
    PER_USER_BEYOND,
    REPORT_KS,
    all_items_metrics,
    beyond_metrics,
    metric_key,
    parse_metric,
    report_ks,
    reported_metrics,
    sampled_metrics,
    sampled_target,
)
from recsys.tuning.leaderboard import Leaderboard, order_agreement
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.plots import CURVE_COLUMNS, plot_curves, plot_test_bars

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.evaluate import UserMetrics
    from recsys.models.base import Recommender

TOP_N = 100
COLD_NOTE = (
    "Cold-item split: the validation and test items were held out with every interaction they "
    "have, so no model trained on them. Validation and test rank among their own cold items "
    "(the cold-start protocol); `(all items)` and the `test_all_*` columns rank test among "
    "every item. Models that cannot score an item without interactions were not searched.\n\n"
)
BREAKDOWN_POINTER = (
    "\nBy user activity (cold users: few training interactions) and by item popularity (head / "
    "torso / tail of training popularity): leaderboard_buckets.md (.csv). Any two models "
    "compared with paired tests (--compare a:b, or all): compare.md (.csv).\n"
)


def per_user_names(
    metric: str = "ndcg@10", ks: Sequence[int] = REPORT_KS, negatives: int = 0, cold: bool = False
) -> list[str]:
    """The per-user metrics a leaderboard's statistics read: what it shows, less the metrics
    of the whole catalogue (coverage, Gini), which have no per-user values; on a cold-item
    split (``cold``) the ranking among every item too; and the item buckets' (``head_recall@10``
    ...: ``recsys.buckets``), which its breakdowns read."""
    from recsys.buckets import bucket_names

    beyond = [n for n in beyond_metrics(metric, ks) if n.split("@")[0] in PER_USER_BEYOND]
    sampled = sampled_metrics(metric, ks) if negatives else []
    among_all = all_items_metrics(metric, ks) if cold else []
    buckets = bucket_names(report_ks(metric, ks))
    return [*reported_metrics(metric, ks), *beyond, *sampled, *among_all, *buckets]


def per_user_frame(
    runs: Sequence[tuple[int, UserMetrics]], data: SplitData, names: Sequence[str]
) -> pd.DataFrame:
    """Every test user's metrics ``names`` (:func:`per_user_names`; those it has) for each seed
    run: ``user_id`` (raw), ``seed``, with ``--folds`` ``fold`` (runs ``(seed, metrics, fold)``),
    ``test_<m>_at_<k>``."""
    frames = []
    for seed, scores, *fold in runs:
        frame = {"user_id": data.user_ids[scores.users], "seed": np.full(len(scores.users), seed)}
        if fold:
            frame["fold"] = np.full(len(scores.users), fold[0], dtype=np.int64)
        for name in names:
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
        if o.has_scores and path.is_file():
            out[o.model] = pd.read_parquet(path)
    return out


def markdown_board(leaderboard: Leaderboard) -> str:
    """The leaderboard for reading: the target metric with its interval, spread and tests."""
    board, metric = leaderboard.to_frame(), leaderboard.metric
    if not len(board):
        return ""
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
    spread = "folds" if leaderboard.folds else "seeds"
    view[f"std ({spread})"] = [
        f"{_num(d)} ({n})" if not math.isnan(d) else f"- ({n})"
        for d, n in zip(std, board.get(spread, pd.Series(1, index=board.index)), strict=True)
    ]
    view["p Wilcoxon"] = [_p(v) for v in pm("p_wilcoxon")]
    view["p t-test"] = [_p(v) for v in pm("p_ttest")]
    tied = board.get("tied_with_best", pd.Series(None, index=board.index))
    view["tied with best"] = [_tie(i, t) for i, t in enumerate(tied)]
    for other in (f"recall@{parse_metric(metric)[1]}", "ndcg@20"):
        key = metric_key("test", other)
        if key in board and key != target:
            view[f"test {other}"] = [_num(v) for v in board[key]]
    if leaderboard.all_items:  # a cold-item split: its target among every item too
        among_all = pm(metric_key("test", ALL_ITEMS + metric))
        view[f"test {metric} (all items)"] = [_num(v) for v in among_all]
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
    if "status" in board:
        view["status"] = board["status"]
    return markdown_table(view)


def markdown_folds(leaderboard: Leaderboard) -> str:
    """``--folds``: the target on each fold's test per model, its mean, standard deviation and
    range across folds, the last two also as a share of the mean (``leaderboard.md``'s fold
    table and the console's)."""
    frame = leaderboard.to_folds_frame()
    if not len(frame):
        return ""
    target = metric_key("test", leaderboard.metric)
    table = frame.pivot(index="model", columns="fold", values=target)
    table = table.loc[[m for m in frame["model"].unique()]]
    view = pd.DataFrame({"model": table.index})
    for fold in table.columns:
        view[f"fold {fold}"] = [_num(v) for v in table[fold]]
    mean, std = table.mean(axis=1), table.std(axis=1, ddof=1)
    spread = table.max(axis=1) - table.min(axis=1)
    view["mean"] = [_num(v) for v in mean]
    view["std"] = [_num(v) for v in std]
    view["std / mean"] = [_share(d, m) for d, m in zip(std, mean, strict=True)]
    view["max - min"] = [_num(v) for v in spread]
    view["(max - min) / mean"] = [_share(d, m) for d, m in zip(spread, mean, strict=True)]
    return (
        f"Test {leaderboard.metric} on each fold (the search ran on fold 1's validation; each "
        "best config trained again on every other fold):\n\n" + markdown_table(view)
    )


def _share(value: float, mean: float) -> str:
    if math.isnan(value) or math.isnan(mean) or mean == 0:
        return ""
    return f"{100 * value / mean:.1f}%"


def markdown_intervals(leaderboard: Leaderboard) -> str:
    """Every test metric of every model as ``mean [95% CI]`` (``leaderboard.md``'s second
    table)."""
    board = leaderboard.to_frame()
    if not len(board):
        return ""
    view = pd.DataFrame({"model": board["model"]})
    for column in (metric_key("test", m) for m in leaderboard.metrics):
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if column not in board or low not in board:
            continue
        view[column.removeprefix("test_").replace("_at_", "@")] = [
            f"{_num(v)} [{_num(a)}, {_num(b)}]" if not math.isnan(v) else ""
            for v, a, b in zip(board[column], board[low], board[high], strict=True)
        ]
    return markdown_table(view)


def markdown_beyond(leaderboard: Leaderboard) -> str:
    """The beyond-accuracy metrics of every model on test (``leaderboard.md``'s third table)."""
    board = leaderboard.to_frame()
    if not len(board):
        return ""
    view = pd.DataFrame({"model": board["model"]})
    for name in leaderboard.beyond:
        column = metric_key("test", name)
        if column in board:
            view[name] = [_num(v) for v in board[column]]
    return markdown_table(view)


def markdown_sampled(leaderboard: Leaderboard) -> str:
    """``leaderboard_sampled.md``: the sampled order beside the full-ranking one."""
    frame = leaderboard.to_sampled_frame()
    if not len(frame):
        return ""
    view = pd.DataFrame(
        {
            "model": frame["model"],
            "rank (sampled)": frame["rank_sampled"],
            "rank (full)": frame["rank_full"],
            f"full {leaderboard.metric}": [
                _num(v) for v in frame[metric_key("test", leaderboard.metric)]
            ],
        }
    )
    nan = pd.Series(np.nan, index=frame.index)
    for name in leaderboard.sampled:
        column = metric_key("test", name)
        low, high = frame.get(f"{column}_ci_low", nan), frame.get(f"{column}_ci_high", nan)
        view[name] = [
            f"{_num(v)} [{_num(a)}, {_num(b)}]" if not math.isnan(a) else _num(v)
            for v, a, b in zip(frame[column], low, high, strict=True)
        ]
    full_order = list(frame.sort_values("rank_full")["model"])
    discordant, pairs = order_agreement(full_order, list(frame["model"]))
    tau = f"{1 - 2 * discordant / pairs:.2f}" if pairs else "-"
    return (
        f"Sampled evaluation: each test item ranked among itself and {leaderboard.negatives} "
        "items sampled uniformly from those its user never interacted with (the same samples "
        "for every model); a user's value is the mean over its test items, then the mean over "
        f"users. Ordered by test {sampled_target(leaderboard.metric)}; mean [95% bootstrap "
        "interval over users].\n\n"
        + markdown_table(view)
        + f"\nThe sampled and the full-ranking orders disagree on {discordant} of {pairs} model "
        f"pairs (Kendall's tau {tau}). Sampled metrics can order models differently from the "
        "full ranking (Krichene and Rendle, KDD 2020); the full ranking (leaderboard.md) is "
        "the sweep's result.\n"
    )


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
    names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """One model's recommendations, per-user test metrics (``names``, default
    :func:`per_user_names` of ``metric``) and learning curves; returns their paths by kind."""
    results_dir = Path(results_dir)
    users = write_parquet(
        per_user_frame(per_user, data, per_user_names(metric) if names is None else names),
        results_dir / "per_user" / f"{outcome.model}.parquet",
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
    ks: Sequence[int] = REPORT_KS,
    negatives: int = 0,
) -> Leaderboard:
    """The sweep-wide files of the results directory (see the module docstring); ``seed`` is
    the bootstrap's, ``ks`` the reported cut-offs, ``negatives`` the sampled protocol's (0: not
    run). Returns the leaderboard they show."""
    results_dir = Path(results_dir)
    per_user = read_per_user(results_dir, outcomes)
    cold = data.cold_items is not None
    board = Leaderboard.build(outcomes, metric, per_user, seed, ks, negatives, cold)
    frame = board.to_frame()
    write_text_atomic(results_dir / "leaderboard.csv", frame.to_csv(index=False))
    write_text_atomic(
        results_dir / "leaderboard.md",
        (COLD_NOTE if cold else "")
        + markdown_board(board)
        + "\nEvery test metric, mean [95% bootstrap interval over users]:\n\n"
        + markdown_intervals(board)
        + "\nBeyond accuracy, of the test users' top-k lists (training and validation items "
        "excluded): coverage (share of the catalogue recommended), Gini of the recommendation "
        "counts (0 = even), novelty (mean self-information in bits), ARP (mean training "
        "popularity):\n\n"
        + markdown_beyond(board)
        + (f"\n{markdown_folds(board)}" if board.folds else "")
        + BREAKDOWN_POINTER,
    )
    if board.folds:
        write_text_atomic(
            results_dir / "leaderboard_folds.csv", board.to_folds_frame().to_csv(index=False)
        )
    if board.sampled:
        write_text_atomic(
            results_dir / "leaderboard_sampled.csv", board.to_sampled_frame().to_csv(index=False)
        )
        write_text_atomic(results_dir / "leaderboard_sampled.md", markdown_sampled(board))
    configs = {
        o.model: {
            "config": o.config,
            "seed": o.seed,
            "best_epoch": o.best_epoch,
            "trial_id": o.trial_id,
        }
        for o in outcomes
        if o.has_scores
    }
    write_text_atomic(results_dir / "best_configs.yaml", yaml.safe_dump(configs, sort_keys=False))
    data.to_parquet(results_dir / "split.parquet")
    if len(board):
        columns = [metric_key("test", m) for m in board.metrics]
        plot_test_bars(frame, columns, results_dir / "test_metrics.png")
    return board

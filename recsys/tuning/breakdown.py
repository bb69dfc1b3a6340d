"""The leaderboard's breakdowns, from the per-user test metrics and the training data (nothing
retrained): each model's target metrics by user activity and by item popularity bucket, and any
pairs of models compared user by user.

- **By user activity**: the test users grouped by their training interactions
  (``recsys.buckets.activity_buckets``: ``cold`` below ``--cold-user-threshold``, then up to four
  quartile buckets of the others); per bucket and model, the mean of the target metrics (the
  target, and recall and NDCG at its cut-off) with its 95% bootstrap interval over the bucket's
  users, and the number of users.
- **By item popularity**: per bucket of training popularity (head / torso / tail:
  ``recsys.buckets.popularity_buckets``), recall and NDCG at the target's cut-off against each
  user's test items in the bucket (computed by the evaluator, where the lists are), over the
  users with at least one such item.
- **Comparisons** (``--compare a:b,c:d`` or ``all``): per pair and target metric, both means,
  the mean difference a - b with the percentile-bootstrap interval of the per-user differences,
  the Wilcoxon signed-rank and paired t-tests, each Holm-corrected across the pairs asked (for
  each metric apart).

As the leaderboard's statistics do, a user's value is the mean over the model's seed runs, and
models are compared on the users every model with per-user metrics was scored on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.buckets import (
    COLD_USER_THRESHOLD,
    POPULARITY_BUCKETS,
    activity_buckets,
    assign,
    popularity_buckets,
)
from recsys.io import write_text_atomic
from recsys.metrics import METRICS, metric_key, parse_metric
from recsys.stats import ALPHA, bootstrap_ci, pairwise
from recsys.tuning.results import markdown_table, read_per_user

if TYPE_CHECKING:
    from recsys.data.dataset import SplitData
    from recsys.tuning.leaderboard import Leaderboard
    from recsys.tuning.state import SweepState

_NAN = float("nan")
FILES = ("leaderboard_buckets.csv", "leaderboard_buckets.md", "compare.csv", "compare.md")


@dataclass(frozen=True)
class BucketRow:
    """One model's ``metric`` in one bucket: ``kind`` ``activity`` or ``popularity``,
    ``bucket`` its name (``cold``, ``q1``.. / ``head``, ``torso``, ``tail``), ``label`` what it
    holds, ``users`` the users it averages over, ``mean`` and its 95% bootstrap interval."""

    kind: str
    bucket: str
    label: str
    model: str
    metric: str
    users: int
    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """Model ``a`` against ``b`` on ``metric`` over the same ``users``: both means, the mean
    difference a - b with its 95% bootstrap interval, and both tests, raw and Holm-corrected
    across the pairs compared."""

    a: str
    b: str
    metric: str
    users: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_wilcoxon: float
    p_ttest: float
    p_wilcoxon_holm: float
    p_ttest_holm: float

    @property
    def differ(self) -> bool:
        """Whether a corrected test tells the two apart at :data:`recsys.stats.ALPHA`."""
        return self.p_wilcoxon_holm < ALPHA or self.p_ttest_holm < ALPHA


@dataclass(frozen=True)
class Breakdown:
    """A sweep's bucket rows (activity first, then popularity; models in leaderboard order)
    and comparisons (in the order asked)."""

    metric: str
    threshold: int
    buckets: tuple[BucketRow, ...] = ()
    comparisons: tuple[Comparison, ...] = ()

    def buckets_frame(self) -> pd.DataFrame:
        """``leaderboard_buckets.csv``: one row per (kind, bucket, model, metric)."""
        return _frame(self.buckets, BucketRow)

    def compare_frame(self) -> pd.DataFrame:
        """``compare.csv``: one row per (pair, metric), with ``differ``."""
        frame = _frame(self.comparisons, Comparison)
        frame["differ"] = [c.differ for c in self.comparisons]
        return frame


def _frame(rows: Sequence[Any], cls: type) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(cls)])


def target_metrics(metric: str) -> list[str]:
    """The target (when it is a per-user metric), then NDCG and recall at its cut-off."""
    name, k = parse_metric(metric)
    out = [metric] if name in METRICS else []
    return out + [m for m in (f"ndcg@{k}", f"recall@{k}") if m not in out]


def user_values(
    per_user: Mapping[str, pd.DataFrame], ranking: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Model -> (users x metric keys) per-user means over seeds (with ``--folds``, over the
    folds), on the users every model was scored on, sorted; models in ``ranking`` order (those
    with per-user metrics)."""
    models = [m for m in ranking if m in per_user]
    runs = ["seed", "fold"]
    means = {
        m: per_user[m].drop(columns=runs, errors="ignore").groupby("user_id").mean() for m in models
    }
    if not means:
        return {}
    common = sorted(set.intersection(*(set(v.index) for v in means.values())), key=str)
    return {m: v.loc[common] for m, v in means.items()}


def _rows(
    what: tuple[str, str, str, str], metrics: Sequence[str], x: np.ndarray, seed: int
) -> list[BucketRow]:
    """The rows of ``what`` (kind, bucket, label, model) for each of ``metrics`` from the
    (users, metrics) values ``x``, over the users with every value (one bootstrap for all)."""
    x = x[~np.isnan(x).any(axis=1)]
    if not len(x):
        return [BucketRow(*what, m, 0, _NAN, _NAN, _NAN) for m in metrics]
    bounds = bootstrap_ci(x, seed=seed)
    return [
        BucketRow(*what, m, len(x), float(mean), float(low), float(high))
        for m, mean, (low, high) in zip(metrics, x.mean(axis=0), bounds, strict=True)
    ]


def activity_rows(
    values: Mapping[str, pd.DataFrame],
    counts: pd.Series,
    metrics: Sequence[str],
    threshold: int = COLD_USER_THRESHOLD,
    seed: int = 0,
) -> list[BucketRow]:
    """Each model's ``metrics`` per user-activity bucket.

    Args:
        values: :func:`user_values`.
        counts: training interactions per raw user id.
        metrics: the evaluator's names (``ndcg@10``); those a model lacks are left out.
        threshold: users below it are cold; ``seed`` the bootstrap's.
    """
    if not values:
        return []
    users = next(iter(values.values())).index
    n = counts.reindex(users).fillna(0).to_numpy(dtype=np.int64)
    buckets = activity_buckets(n, threshold)
    where = assign(n, buckets)
    rows = []
    for j, bucket in enumerate(buckets):
        label = f"{bucket.label} training interactions"
        for model, frame in values.items():
            shown = [m for m in metrics if metric_key("test", m) in frame]
            if shown:
                x = frame[[metric_key("test", m) for m in shown]].to_numpy(np.float64)
                rows += _rows(("activity", bucket.name, label, model), shown, x[where == j], seed)
    return rows


def popularity_rows(
    values: Mapping[str, pd.DataFrame], labels: Mapping[str, str], k: int, seed: int = 0
) -> list[BucketRow]:
    """Each model's recall and NDCG at ``k`` per item-popularity bucket (``labels``: bucket ->
    what it holds), over the users with test items in the bucket."""
    rows = []
    for bucket in POPULARITY_BUCKETS:
        for model, frame in values.items():
            keys = {m: metric_key("test", f"{bucket}_{m}") for m in (f"ndcg@{k}", f"recall@{k}")}
            shown = [m for m, key in keys.items() if key in frame]
            if shown:
                x = frame[[keys[m] for m in shown]].to_numpy(np.float64)
                rows += _rows(("popularity", bucket, labels[bucket], model), shown, x, seed)
    return rows


def popularity_labels(data: SplitData) -> dict[str, str]:
    """Bucket -> its items and their share of the training interactions."""
    from recsys.evaluate import training_popularity

    popularity = training_popularity(data)
    total = max(int(popularity.sum()), 1)
    out = {}
    for name, mask in popularity_buckets(popularity).items():
        share = int(popularity[mask].sum()) / total
        out[name] = f"{int(mask.sum())} items, {share:.1%} of training interactions"
    return out


def comparisons(
    values: Mapping[str, pd.DataFrame],
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    seed: int = 0,
) -> list[Comparison]:
    """Each pair on each metric (pairs with a model without per-user metrics get NaNs and stay
    out of the Holm correction)."""
    out = []
    for metric in metrics:
        key = metric_key("test", metric)
        have = [(a, b) for a, b in pairs if key in values.get(a, ()) and key in values.get(b, ())]
        x = {m: values[m][key].to_numpy(np.float64) for pair in have for m in pair}
        tests = pairwise(x, have) if have else {}
        for a, b in pairs:
            test = tests.get((a, b))
            if test is None:
                out.append(Comparison(a, b, metric, 0, *[_NAN] * 9))
                continue
            low, high = (float(v) for v in bootstrap_ci(x[a] - x[b], seed=seed))
            means = (float(x[a].mean()), float(x[b].mean()))
            out.append(
                Comparison(
                    a,
                    b,
                    metric,
                    len(x[a]),
                    *means,
                    test.mean_difference,
                    low,
                    high,
                    test.wilcoxon_p,
                    test.ttest_p,
                    test.wilcoxon_p_holm,
                    test.ttest_p_holm,
                )  # fmt: skip
            )
    return out


def build(
    board: Leaderboard,
    per_user: Mapping[str, pd.DataFrame],
    data: SplitData,
    threshold: int = COLD_USER_THRESHOLD,
    pairs: Sequence[tuple[str, str]] = (),
    seed: int = 0,
) -> Breakdown:
    """The breakdowns of ``board``'s models from their per-user frames (model -> its
    ``per_user`` parquet's frame) and ``data``'s training pairs; ``seed`` the bootstrap's."""
    values = user_values(per_user, [r.model for r in board.rows])
    metrics = target_metrics(board.metric)
    counts = pd.Series(np.bincount(data.train.users, minlength=data.n_users), data.user_ids)
    k = parse_metric(board.metric)[1]
    rows = [
        *activity_rows(values, counts, metrics, threshold, seed),
        *popularity_rows(values, popularity_labels(data), k, seed),
    ]
    compared = comparisons(values, pairs, metrics, seed)
    return Breakdown(board.metric, threshold, tuple(rows), tuple(compared))


def _num(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.4f}"


def _p(v: float) -> str:
    return "" if math.isnan(v) else (f"{v:.2g}" if v >= 1e-4 else "<1e-4")


def _interval(mean: float, low: float, high: float) -> str:
    return "" if math.isnan(mean) else f"{mean:.4f} [{low:.4f}, {high:.4f}]"


_KIND_TEXT = {
    "activity": (
        "By user activity: the test users by their number of training interactions; cold: "
        "fewer than {threshold}, then quartiles of the others."
    ),
    "popularity": (
        "By item popularity: head = the most popular items making the first 20% of the "
        "training interactions, tail = the least popular making at most 20%, torso the rest "
        "(Abdollahpouri et al., RecSys 2020). Recall and NDCG of each user's full-ranking list "
        "against its test items in the bucket, over the users with at least one."
    ),
}


def markdown_buckets(breakdown: Breakdown) -> str:
    """``leaderboard_buckets.md``: per kind and metric, a table of models by buckets, each cell
    ``mean [95% bootstrap interval over the bucket's users]``."""
    frame = breakdown.buckets_frame()
    parts = []
    for kind in ("activity", "popularity"):
        rows = frame[frame["kind"] == kind]
        if not len(rows):
            continue
        parts.append(_KIND_TEXT[kind].format(threshold=breakdown.threshold) + "\n")
        for metric in dict.fromkeys(rows["metric"]):
            of = rows[rows["metric"] == metric]
            view = pd.DataFrame({"model": list(dict.fromkeys(of["model"]))})
            for bucket in dict.fromkeys(of["bucket"]):
                cells = of[of["bucket"] == bucket].set_index("model")
                first = cells.iloc[0]
                header = f"{bucket} ({first['label']}; {first['users']} users)"
                view[header] = [
                    _interval(*cells.loc[m, ["mean", "ci_low", "ci_high"]])
                    if m in cells.index
                    else ""
                    for m in view["model"]
                ]
            parts.append(f"test {metric}:\n\n" + markdown_table(view))
    return "\n".join(parts)


def markdown_compare(breakdown: Breakdown) -> str:
    """``compare.md``: one line per pair and metric."""
    if not breakdown.comparisons:
        return ""
    pairs = len({(c.a, c.b) for c in breakdown.comparisons})
    view = pd.DataFrame(
        {
            "a": [c.a for c in breakdown.comparisons],
            "b": [c.b for c in breakdown.comparisons],
            "metric": [f"test {c.metric}" for c in breakdown.comparisons],
            "users": [c.users for c in breakdown.comparisons],
            "mean a": [_num(c.mean_a) for c in breakdown.comparisons],
            "mean b": [_num(c.mean_b) for c in breakdown.comparisons],
            "a - b [95% CI]": [
                _interval(c.difference, c.ci_low, c.ci_high) for c in breakdown.comparisons
            ],
            "p Wilcoxon (Holm)": [_p(c.p_wilcoxon_holm) for c in breakdown.comparisons],
            "p t-test (Holm)": [_p(c.p_ttest_holm) for c in breakdown.comparisons],
            "differ": [
                "" if math.isnan(c.difference) else ("yes" if c.differ else "no")
                for c in breakdown.comparisons
            ],
        }
    )
    return (
        "Pairs of models on the same test users: the mean difference a - b with its 95% "
        "bootstrap interval (users resampled), the Wilcoxon signed-rank and paired t-tests "
        f"(two-sided), each Holm-corrected across the {pairs} pair(s) for each metric; differ: "
        f"a corrected p-value below {ALPHA}.\n\n" + markdown_table(view)
    )


def write(results_dir: Path, breakdown: Breakdown) -> list[Path]:
    """The breakdown's files in ``results_dir`` (``compare.*`` only with comparisons);
    returns their paths."""
    results_dir = Path(results_dir)
    texts = {
        "leaderboard_buckets.csv": breakdown.buckets_frame().to_csv(index=False),
        "leaderboard_buckets.md": markdown_buckets(breakdown),
    }
    if breakdown.comparisons:
        texts["compare.csv"] = breakdown.compare_frame().to_csv(index=False)
        texts["compare.md"] = markdown_compare(breakdown)
    for name, text in texts.items():
        write_text_atomic(results_dir / name, text)
    return [results_dir / name for name in texts]


def summary_lines(breakdown: Breakdown) -> list[str]:
    """The comparisons on the target, for the console."""
    out = []
    for c in breakdown.comparisons:
        if c.metric != breakdown.metric or math.isnan(c.difference):
            continue
        difference = _interval(c.difference, c.ci_low, c.ci_high)
        out.append(
            f"compare:  {c.a} - {c.b} on test {c.metric}: {difference} over {c.users} users; "
            f"Holm p Wilcoxon {_p(c.p_wilcoxon_holm)}, t-test {_p(c.p_ttest_holm)}: "
            f"{'differ' if c.differ else 'not told apart'}"
        )
    return out


def log(
    tracking_uri: str,
    parent_run_id: str,
    board: Leaderboard,
    breakdown: Breakdown,
    paths: Sequence[Path],
) -> None:
    """The files as artifacts of the sweep's run (``breakdown/``), the comparisons as its
    metrics (``compare/<a>-vs-<b>/<key>_diff``, ``_ci_low``, ``_ci_high``, ``_p_wilcoxon``,
    ``_p_ttest``: Holm-corrected), and each bucket row as a metric of its model's best run
    (``test_<bucket>_<m>_at_<k>`` with ``_ci_low``, ``_ci_high``, ``_users``)."""
    from recsys.tuning import tracking

    c = tracking.client(tracking_uri)
    for path in paths:
        c.log_artifact(parent_run_id, str(path), artifact_path="breakdown")
    pairs: dict[str, float] = {}
    for cmp in breakdown.comparisons:
        prefix = f"compare/{cmp.a}-vs-{cmp.b}/{metric_key('test', cmp.metric)}"
        pairs.update({f"{prefix}_diff": cmp.difference, f"{prefix}_ci_low": cmp.ci_low})
        pairs.update({f"{prefix}_ci_high": cmp.ci_high, f"{prefix}_p_ttest": cmp.p_ttest_holm})
        pairs[f"{prefix}_p_wilcoxon"] = cmp.p_wilcoxon_holm
    if pairs:
        c.log_batch(parent_run_id, metrics=tracking.metric_batch(pairs, 0))
    for row in board.rows:
        if not row.outcome.best_run_id:
            continue
        metrics: dict[str, float] = {}
        for b in (b for b in breakdown.buckets if b.model == row.model):
            name = f"{b.bucket}_{b.metric}"
            key = metric_key("test", name)
            if name not in row.outcome.test:  # the item buckets' means are logged already
                metrics[key] = b.mean
            metrics.update({f"{key}_ci_low": b.ci_low, f"{key}_ci_high": b.ci_high})
            metrics[f"{key}_users"] = b.users
        if metrics:
            c.log_batch(row.outcome.best_run_id, metrics=tracking.metric_batch(metrics, 0))


def report(state: SweepState, data: SplitData, board: Leaderboard, seed: int) -> Breakdown:
    """The sweep's breakdowns: built, written to its results directory, said on the console
    and logged to MLflow (unless its store broke)."""
    from recsys.tuning import console
    from recsys.tuning.config import comparison_pairs
    from recsys.tuning.finalize import tracked_step

    cfg = state.config
    per_user = read_per_user(state.results_dir, [r.outcome for r in board.rows])
    pairs = comparison_pairs(cfg)
    breakdown = build(board, per_user, data, cfg.cold_user_threshold, pairs, seed)
    paths = write(state.results_dir, breakdown)
    console.say(*summary_lines(breakdown))
    uri, parent = state.tracking_uri, state.parent_run_id
    tracked_step(state, lambda: log(uri, parent, board, breakdown, paths))
    return breakdown

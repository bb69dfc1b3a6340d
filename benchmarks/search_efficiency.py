"""Time to quality: how fast each searcher finds a good configuration, over repeated searches.

For each searcher (``--searchers``, any of ``--search``'s kinds) and each search seed
(``--repeats``), one sweep of ``--models`` on MovieLens-100K with the shipped spaces (or
``--num-samples`` / ``--max-epochs`` to shrink them alike for every searcher), ASHA as in a
default sweep. From each model's trials (Tune's per-report timestamps):

- anytime curves: the best validation NDCG@10 found so far against the search's wall time and
  against the epochs trained so far, their median and spread over the repeats
  (``search_efficiency.png``);
- the test NDCG@10 of the config each search chose;
- the search's wall time over one full-budget trial's (the defaults trial trains the whole
  budget: ASHA's own yardstick is under 2x);
- the time to reach within 1% of the best validation NDCG@10 any run found for that model.

Then (``--warm``, on by default) one more sweep of the first searcher with ``--warm-start``,
borrowing from every sweep above (they share the tracking store, the data and the split): the
time it takes to reach the best validation NDCG@10 of that searcher's first sweep, against the
first sweep's own search time (the target: under a quarter).

    python benchmarks/search_efficiency.py [--searchers random,optuna,gp,cmaes,bohb] [--repeats 5]
        [--models lightgcn,lightgcn_hardneg,hybrid_vae,ease] [--num-samples N] [--max-epochs N]
        [--no-warm] [--out results/search_efficiency]

Every model of a sweep gets the same searcher (a searcher chosen per model would bias the
comparison of models), and each repeat of a searcher is a whole sweep with its own seed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsys.metrics import metric_key  # noqa: E402
from recsys.tuning.config import SweepConfig  # noqa: E402
from recsys.tuning.results import markdown_table  # noqa: E402
from recsys.tuning.sweep import run_sweep  # noqa: E402
from recsys.tuning.trainable import DEFAULTS_KEY  # noqa: E402

TARGET = "ndcg@10"
MODELS = ("lightgcn", "lightgcn_hardneg", "hybrid_vae", "ease")


def reports(storage: str) -> pd.DataFrame:
    """Every report of every trial of a finished sweep: model, trial, epoch, value, seconds
    since the search's first trial started, and whether it is its model's defaults trial."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(f"{storage.rstrip('/')}/search")
    configs = analysis.get_all_configs()
    key = metric_key("val", TARGET)
    frames = []
    for path, frame in analysis.trial_dataframes.items():
        if frame is None or key not in frame or not len(frame):
            continue
        config = configs[path]
        frames.append(
            pd.DataFrame(
                {
                    "model": config["model"],
                    "trial": path,
                    "epoch": frame["epoch"].to_numpy(),
                    "value": frame[key].to_numpy(),
                    "timestamp": frame["timestamp"].to_numpy(dtype=float),
                    "trial_seconds": frame["time_total_s"].to_numpy(dtype=float),
                    "defaults": bool(config.get(DEFAULTS_KEY, False)),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    start = (out["timestamp"] - out["trial_seconds"]).groupby(out["model"]).transform("min")
    out["seconds"] = out["timestamp"] - start
    return out.dropna(subset=["value"])


def anytime(model_reports: pd.DataFrame) -> pd.DataFrame:
    """The best value found so far after each report, against seconds and epochs trained."""
    r = model_reports.sort_values("seconds", kind="stable").copy()
    gaps = r.groupby("trial")["epoch"].diff().fillna(r["epoch"])
    r["epochs"] = gaps.cumsum()
    r["best"] = r["value"].cummax()
    return r[["seconds", "epochs", "best"]].reset_index(drop=True)


def summary(runs: pd.DataFrame, curves: dict) -> pd.DataFrame:
    """Per (model, searcher): the means and spreads over repeats of the figures above."""
    rows = []
    for (model, searcher), group in runs.groupby(["model", "searcher"], sort=False):
        best_known = runs.loc[runs["model"] == model, "best_val"].max()
        reach = []
        for repeat in group["repeat"]:
            curve = curves[(model, searcher, repeat)]
            hit = curve.loc[curve["best"] >= 0.99 * best_known, "seconds"]
            reach.append(float(hit.iloc[0]) if len(hit) else np.nan)
        rows.append(
            {
                "model": model,
                "searcher": searcher,
                "repeats": len(group),
                "best val (mean)": group["best_val"].mean(),
                "best val (std)": group["best_val"].std(ddof=0),
                "chosen test (mean)": group["test"].mean(),
                "search s (mean)": group["search_seconds"].mean(),
                "search / full trial": (group["search_seconds"] / group["full_trial"]).mean(),
                "s to within 1% (median)": _median(reach),
                "reached within 1%": f"{int(np.isfinite(reach).sum())}/{len(reach)}",
            }
        )
    return pd.DataFrame(rows)


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else float("nan")


def plot(curves: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({m for m, _, _ in curves})
    searchers = sorted({s for _, s, _ in curves})
    fig, axes = plt.subplots(2, len(models), figsize=(4 * len(models), 6.5), squeeze=False)
    for col, model in enumerate(models):
        for searcher in searchers:
            runs = [c for (m, s, _), c in curves.items() if m == model and s == searcher]
            for row, x in enumerate(("seconds", "epochs")):
                grid = np.linspace(0, max(c[x].max() for c in runs), 200)
                ys = np.array([_step(c[x].to_numpy(), c["best"].to_numpy(), grid) for c in runs])
                ax = axes[row][col]
                ax.plot(grid, np.nanmedian(ys, 0), label=searcher)
                ax.fill_between(grid, np.nanmin(ys, 0), np.nanmax(ys, 0), alpha=0.2)
                ax.set_xlabel("search wall time (s)" if x == "seconds" else "epochs trained")
        axes[0][col].set_title(model)
        axes[0][col].set_ylabel(f"best val {TARGET} so far")
        axes[1][col].set_ylabel(f"best val {TARGET} so far")
    axes[0][0].legend()
    fig.tight_layout()
    path = out / "search_efficiency.png"
    fig.savefig(path, dpi=110)
    return path


def _step(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A running best read at ``grid`` points (NaN before its first report)."""
    at = np.searchsorted(x, grid, side="right") - 1
    return np.where(at >= 0, y[at.clip(0)], np.nan)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--searchers", default="random,optuna,gp,cmaes,bohb")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--num-samples", type=int, default=None)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--no-warm", dest="warm", action="store_false")
    p.add_argument("--out", default="results/search_efficiency")
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    searchers = a.searchers.split(",")
    runs, curves = [], {}
    for searcher in searchers:
        for repeat in range(a.repeats):
            result, table = _sweep(a, out, searcher, 1000 + repeat, f"{searcher}-{repeat}")
            for outcome in result.outcomes:
                mine = table[table["model"] == outcome.model]
                curves[(outcome.model, searcher, repeat)] = anytime(mine)
                full = mine.loc[mine["defaults"], "trial_seconds"].max()
                runs.append(
                    {
                        "model": outcome.model,
                        "searcher": searcher,
                        "repeat": repeat,
                        "best_val": outcome.val.get(TARGET, np.nan),
                        "test": outcome.test.get(TARGET, np.nan),
                        "search_seconds": float(mine["seconds"].max()),
                        "full_trial": float(full),
                    }
                )
    frame = pd.DataFrame(runs)
    frame.to_csv(out / "runs.csv", index=False)
    table = summary(frame, curves)
    table.to_csv(out / "summary.csv", index=False)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{datetime.date.today()}; searchers {a.searchers}, {a.repeats} repeats, "
        f"num_samples {a.num_samples or 'space'}, max_epochs {a.max_epochs or 'space'}"
    )
    print(markdown_table(table.round(4)), end="")
    print(f"plot: {plot(curves, out)}")
    if a.warm:
        warm = warm_start(a, out, searchers[0], frame)
        warm.to_csv(out / "warm_start.csv", index=False)
        print(markdown_table(warm.round(4)), end="")


def _sweep(a: argparse.Namespace, out: Path, searcher: str, seed: int, name: str, warm=False):
    """One sweep of ``--models`` with ``searcher``; its result and every report of its trials."""
    cfg = SweepConfig(
        dataset="ml-100k",
        models=tuple(a.models.split(",")),
        search=searcher,
        seed=seed,
        num_samples=a.num_samples,
        max_epochs=a.max_epochs,
        warm_start=warm,
        tracking_uri=f"sqlite:///{out}/mlflow.db",
        experiment="search-efficiency",
        storage_path=str(out / "ray"),
        results_dir=str(out / name),
        name=name,
        verbose=0,
        command="benchmarks/search_efficiency.py",
    )
    result = run_sweep(cfg)
    print(f"{name}: {result.search_seconds:.0f} s of search", flush=True)
    return result, reports(result.state.storage)


def warm_start(a: argparse.Namespace, out: Path, searcher: str, runs: pd.DataFrame) -> pd.DataFrame:
    """A ``--warm-start`` sweep of ``searcher`` after all the others: per model, the seconds
    until it reaches the best validation value of ``searcher``'s first sweep, over that
    sweep's search seconds."""
    _, table = _sweep(a, out, searcher, 2000, f"{searcher}-warm", warm=True)
    rows = []
    first = runs[(runs["searcher"] == searcher) & (runs["repeat"] == 0)]
    for row in first.itertuples():
        curve = anytime(table[table["model"] == row.model])
        hit = curve.loc[curve["best"] >= row.best_val - 1e-12, "seconds"]
        reach = float(hit.iloc[0]) if len(hit) else np.nan
        rows.append(
            {
                "model": row.model,
                "first sweep best val": row.best_val,
                "first sweep search s": row.search_seconds,
                "warm sweep best val": float(curve["best"].max()),
                "warm s to first's best": reach,
                "warm / first": reach / row.search_seconds,
            }
        )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()

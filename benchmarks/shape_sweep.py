"""A sweep of a seed project's data shape end to end, as a user runs it: ``launch/sweep.py`` in a
process of its own on a synthetic shape, with the shape's spaces (``searchspaces/<shape>/``).

Prints the command, its exit status and wall time, the driver's peak RSS, the leaderboard, and
from the sweep's MLflow store, per model: its trials, the epochs they trained, the epoch at which
its best trial's validation NDCG@10 peaked against the last it reached (a peak at the last
epoch means the budget stopped it still learning), and the memory plan's estimate against each
trial's measured peak RSS.

    python benchmarks/shape_sweep.py ml-1m      # LightGCN, DNS LightGCN, HybridVAE, EASE,
                                                # ItemKNN, Popularity on the ML-1M shape
    python benchmarks/shape_sweep.py goodbooks  # the closed-form baselines, GoodBooks shape
        [--time-budget 40m] [--workdir DIR] [-- more sweep flags, e.g. --no-reuse-actors]

With actors reused (the default), a trial's peak RSS starts from what its actor kept of the
trials before it; ``-- --no-reuse-actors`` gives each trial a fresh process, so its peak is its
own and the estimate's error is the plan's alone.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEPS = {
    "ml-1m": "lightgcn,lightgcn_hardneg,hybrid_vae,ease,itemknn,popularity",
    "goodbooks": "popularity,itemknn,ease,rp3beta,gfcf",
}
VAL = "val_ndcg_at_10"


def command(shape: str, folder: Path, time_budget: str, extra: list[str]) -> list[str]:
    return [
        sys.executable, str(REPO / "launch" / "sweep.py"),
        "--dataset", "synthetic", "--dataset-option", f"shape={shape}",
        "--models", SWEEPS[shape], "--space-dir", str(REPO / "searchspaces" / shape),
        "--time-budget", time_budget,
        "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--storage-path", str(folder / "ray"),
        "--results-dir", str(folder / "results"), "--name", f"{shape}-shape", "--quiet",
        *extra,
    ]  # fmt: skip


def trial_rows(tracking_uri: str) -> list[dict]:
    """Per trial run of the store: its model, epochs, best validation epoch and memory."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`recsys.role` = 'trial'"
    )
    rows = []
    for _, run in runs.iterrows():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.run_id, VAL))
        if not history:
            continue
        best_epoch, best = max(history, key=lambda point: point[1])
        rows.append({
            "model": run["tags.recsys.model"],
            "best": best,
            "best_epoch": best_epoch,
            "last_epoch": history[-1][0],
            "estimate": run.get("metrics.mem_estimate_bytes", float("nan")),
            "peak": run.get("metrics.peak_rss_bytes", float("nan")),
        })  # fmt: skip
    return rows


def print_models(rows: list[dict]) -> None:
    print(f"{'model':<18} {'trials':>6} {'epochs':>6} {'best val':>8} {'peak at':>8} "
          f"{'of':>4} {'peak RSS GiB':>12} {'estimate error':>16}")  # fmt: skip
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        top = max(mine, key=lambda r: r["best"])
        errors = [r["estimate"] / r["peak"] - 1 for r in mine if r["peak"] > 0]
        spread = f"{min(errors):+.0%} to {max(errors):+.0%}" if errors else "-"
        print(f"{model:<18} {len(mine):>6} {sum(r['last_epoch'] for r in mine):>6} "
              f"{top['best']:>8.4f} {top['best_epoch']:>8} {top['last_epoch']:>4} "
              f"{max(r['peak'] for r in mine) / 2**30:>12.2f} {spread:>16}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shape", choices=sorted(SWEEPS))
    p.add_argument("--time-budget", default="40m", help="the sweep's --time-budget")
    p.add_argument("--workdir", help="where the sweep writes (default: a new temporary folder)")
    a, flags = p.parse_known_args()  # after --: more flags for launch/sweep.py
    if flags[:1] == ["--"]:
        flags = flags[1:]
    folder = Path(a.workdir or tempfile.mkdtemp(prefix=f"recsys-{a.shape}-"))
    folder.mkdir(parents=True, exist_ok=True)
    argv = command(a.shape, folder, a.time_budget, flags)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, {datetime.date.today()}")
    print("$ " + " ".join(argv[1:]), flush=True)
    started = time.time()
    code = subprocess.run(argv, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode
    wall = time.time() - started
    driver = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    print(f"exit status {code}; wall {wall / 60:.1f} min; driver peak RSS {driver:.2f} GiB")
    board = folder / "results" / "leaderboard.md"
    if board.is_file():
        print(board.read_text())
    print_models(trial_rows(f"sqlite:///{folder}/mlflow.db"))
    print(f"results in {folder}")


if __name__ == "__main__":
    main()

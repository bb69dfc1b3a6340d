"""Hyperparameter sweep: every model's search with Ray Tune + ASHA, MLflow tracking, test scores.

With no arguments: MovieLens-100K, the default split, the main models and the baselines, a local
Ray instance and a local MLflow store (``sqlite:///mlflow.db``). On a cluster::

    ray job submit --address http://HEAD:8265 --working-dir . -- python launch/sweep.py ...
"""

from __future__ import annotations

import argparse
import os
import sys

from recsys.errors import RecsysError
from recsys.tuning.sweep import (
    DEFAULT_MODELS,
    SEARCHES,
    SweepConfig,
    SweepInterrupted,
    format_summary,
    run_sweep,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2, like a RecsysError
        self.exit(2, f"error: {message}\n")


def parse_args(argv: list[str] | None = None) -> SweepConfig:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help="dataset name (default ml-100k)")
    p.add_argument("--data-dir", help="folder of the dataset's source files")
    p.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated model names (search-space file stems)",
    )
    p.add_argument("--num-samples", type=int, help="trials per model (default: space file)")
    p.add_argument("--max-epochs", type=int, help="ASHA's max_t (default: space file)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; 0.25 packs 4 per GPU")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
    p.add_argument("--metric", default="ndcg@10", help="validation target (default ndcg@10)")
    p.add_argument("--search", default="random", choices=SEARCHES, help="search algorithm")
    p.add_argument("--scheduler", default="asha", choices=("asha", "fifo"))
    p.add_argument("--seed", type=int, default=0, help="root seed (trial seeds derive from it)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--experiment", help="MLflow experiment (default recsys-tune-<dataset>)")
    p.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS, else local)")
    p.add_argument("--storage-path", help="Ray Tune storage (default ./ray_results)")
    p.add_argument("--name", help="sweep name (default <dataset>-<timestamp>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted sweep (named by --name or --results-dir, "
        "else the latest under results/)",
    )
    p.add_argument("--results-dir", help="results directory (default results/<name>)")
    p.add_argument("--space-dir", help="folder of the search-space files (default searchspaces/)")
    p.add_argument("--max-concurrent-trials", type=int, help="trials running at once")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for a first look")
    p.add_argument("--quiet", action="store_true", help="no progress table")
    a = p.parse_args(argv)
    return SweepConfig(
        dataset=a.dataset,
        data_dir=a.data_dir,
        models=tuple(m.strip() for m in a.models.split(",") if m.strip()),
        num_samples=a.num_samples,
        max_epochs=a.max_epochs,
        gpus_per_trial=a.gpus_per_trial,
        cpus_per_trial=a.cpus_per_trial,
        metric=a.metric,
        search=a.search,
        scheduler=a.scheduler,
        seed=a.seed,
        tracking_uri=a.tracking_uri,
        experiment=a.experiment,
        address=a.address,
        storage_path=a.storage_path,
        name=a.name,
        resume=a.resume,
        results_dir=a.results_dir,
        space_dir=a.space_dir,
        max_concurrent_trials=a.max_concurrent_trials,
        smoke=a.smoke,
        verbose=0 if a.quiet else 1,
        command=" ".join(["python", "launch/sweep.py", *(sys.argv[1:] if argv is None else argv)]),
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        result = run_sweep(parse_args(argv))
    except SweepInterrupted as error:
        print(f"error: {error}", file=sys.stderr)
        return 130
    except RecsysError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

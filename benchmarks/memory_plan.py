"""Prints, per trial of a sweep, the memory plan's estimates beside what the trial measured
(peak RSS, peak GPU allocations, seconds per epoch, CPU seconds), from its MLflow trial runs.

python benchmarks/memory_plan.py --tracking-uri sqlite:////tmp/sweep/mlflow.db
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    args = parser.parse_args()
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="metrics.mem_estimate_bytes > 0"
    )
    print(f"{'run':<28} {'RSS est GiB':>11} {'RSS peak GiB':>12} {'error':>7} "
          f"{'GPU est GiB':>11} {'GPU peak GiB':>12} {'s/epoch est':>11} {'s/epoch':>8} "
          f"{'CPU s':>7}")  # fmt: skip
    for _, run in runs.iterrows():
        est, peak = run["metrics.mem_estimate_bytes"], run["metrics.peak_rss_bytes"]
        gpu_est = run.get("metrics.gpu_estimate_bytes", 0.0) or 0.0
        gpu_peak = run.get("metrics.peak_gpu_bytes", 0.0) or 0.0
        print(f"{run['tags.mlflow.runName']:<28} {est / 2**30:>11.2f} {peak / 2**30:>12.2f} "
              f"{est / peak - 1:>+7.0%} {gpu_est / 2**30:>11.2f} {gpu_peak / 2**30:>12.2f} "
              f"{run['metrics.epoch_seconds_estimate']:>11.3g} "
              f"{run['metrics.epoch_seconds']:>8.3g} "
              f"{run['metrics.cpu_seconds']:>7.1f}")  # fmt: skip


if __name__ == "__main__":
    main()

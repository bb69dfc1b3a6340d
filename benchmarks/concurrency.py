"""Peak concurrent trials: three models' searches at once on a local Ray cluster of 16 CPUs.

BPR-MF, LightGCN and Mult-VAE on MovieLens-100K, 8 trials each (ASHA, up to 6 epochs), one CPU
per trial, no cap. Ray is told the machine has 16 CPUs whatever it has, so the figure is the
scheduler's, not the machine's: with 24 trials and room for 16, about 16 run at once, trials of
all three models among them. Prints the peak, the models running at the peak, and how long
that many ran.

    python benchmarks/concurrency.py [--cpus 16] [--trials 8]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _sweep_bench import bench_config, workdir  # noqa: E402
from ray.tune import Callback  # noqa: E402

# Each space holds its model's defaults (every search's first trial).
SPACES = {
    "bpr_mf": "dim: {choice: [16, 64]}\n  lr: {loguniform: [1.0e-3, 1.0e-2]}",
    "lightgcn": "dim: {choice: [16, 64]}\n  lr: {loguniform: [1.0e-3, 1.0e-2]}\n  batch_size: 2048",
    "mult_vae": "hidden: {choice: [64, 600]}\n  lr: {loguniform: [1.0e-4, 1.0e-3]}",
}


class Concurrency(Callback):
    """The trials running at each moment: the peak, who ran at it and for how long."""

    def __init__(self) -> None:
        self.running: dict[str, str] = {}
        self.peak = 0
        self.peak_models: set[str] = set()
        self.at_peak_since: float | None = None
        self.seconds_at_peak = 0.0

    def _changed(self) -> None:
        now, n = time.time(), len(self.running)
        if self.at_peak_since is not None and n != self.peak:
            self.seconds_at_peak += now - self.at_peak_since
            self.at_peak_since = None
        if n > self.peak:
            self.peak, self.seconds_at_peak = n, 0.0
        if n == self.peak and self.at_peak_since is None:
            self.at_peak_since = now
            self.peak_models |= set(self.running.values())

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running[trial.trial_id] = trial.config["model"]
        self._changed()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        self._changed()

    on_trial_error = on_trial_complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=16, help="CPUs the local cluster declares")
    parser.add_argument("--trials", type=int, default=8, help="trials per model")
    args = parser.parse_args()

    import ray

    from recsys.tuning.sweep import run_sweep

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    folder = workdir()
    spaces = folder / "spaces"
    spaces.mkdir()
    for model, params in SPACES.items():
        (spaces / f"{model}.yaml").write_text(
            "budget: {max_epochs: 6, grace_period: 2, reduction_factor: 2, eval_every: 1, "
            f"num_samples: {args.trials}}}\nparams:\n  {params}\n"
        )
    cfg = bench_config(
        folder,
        num_samples=args.trials,
        max_epochs=6,
        name="concurrency",
        models=tuple(SPACES),
        space_dir=str(spaces),
        cpus_per_trial=1,
    )
    seen = Concurrency()
    started = time.time()
    result = run_sweep(cfg, callbacks=[seen])
    print(f"cluster:               {args.cpus} CPUs declared, {os.cpu_count()} on this machine")
    print(f"trials:                {len(SPACES)} models x {args.trials}, 1 CPU each")
    print(f"peak concurrent:       {seen.peak} trials (room for {args.cpus})")
    print(f"models at the peak:    {', '.join(sorted(seen.peak_models))}")
    print(f"seconds at the peak:   {seen.seconds_at_peak:.1f}")
    print(f"sweep wall:            {time.time() - started:.1f} s")
    print(f"sweep status:          {result.state.status}")


if __name__ == "__main__":
    main()

"""End-to-end sweeps on tiny synthetic data: Ray Tune, ASHA, checkpoints, MLflow, results.

All tests share one local Ray session (2 CPUs). The test-only ``curve`` model (see
``sweep_fakes``) has a known validation curve, so ASHA's decisions and the best config are known.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sweep_fakes
import yaml
from conftest import block_split
from model_checks import with_random_text
from ray.tune import Callback

from recsys import cli
from recsys.data.dataset import Pairs
from recsys.errors import RecsysError
from recsys.tuning import registry, tracking
from recsys.tuning.config import SweepConfig, prep_config
from recsys.tuning.space import default_space_dir
from recsys.tuning.sweep import SweepInterrupted, run_sweep
from recsys.tuning.trainable import TrialSettings, train_trial

REPO = Path(__file__).resolve().parents[1]
REAL_SPACE_HEAD = (
    b"budget: {max_epochs: 2, grace_period: 1, reduction_factor: 2, eval_every: 1, "
    b"num_samples: 2}\nparams:\n  lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
)
CLOSED_FORM_HEAD = (
    b"budget: {max_epochs: 1, grace_period: 1, reduction_factor: 2, eval_every: 1, "
    b"num_samples: 2}\nparams:\n"
)
TESTS = Path(__file__).resolve().parent
SPLIT_FILES = ["--train-file", "u1.base", "--test-file", "u1.test"]  # relative: none exists


def _space_dir(tmp_path: Path, curve: str = sweep_fakes.CURVE_SPACE) -> Path:
    folder = tmp_path / "spaces"
    folder.mkdir(exist_ok=True)
    shutil.copy(default_space_dir() / "popularity.yaml", folder)
    (folder / "curve.yaml").write_text(curve)
    return folder


def _config(tmp_path: Path, **overrides) -> SweepConfig:
    base = dict(
        dataset="blocks",
        models=("popularity", "curve"),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        storage_path=str(tmp_path / "ray"),
        results_dir=str(tmp_path / "results"),
        seed=3,
        verbose=0,
        command="pytest",
    )
    base.update(overrides)
    if "space_dir" not in base:
        base["space_dir"] = str(_space_dir(tmp_path))
    return SweepConfig(**base)


def _runs(uri: str, parent: str, role: str, model: str) -> list:
    return list(tracking.find_child_runs(uri, parent, role, model).values())


def _history(uri: str, run, key: str) -> list[tuple[int, float]]:
    client = tracking.client(uri)
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


@pytest.mark.slow
def test_sweep_end_to_end(ray_session, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    import ray
    from ray import tune

    handed = []
    real_with_parameters = tune.with_parameters

    def spy(trainable, **kwargs):
        handed.append(kwargs["data"])
        return real_with_parameters(trainable, **kwargs)

    monkeypatch.setattr(tune, "with_parameters", spy)
    data = block_split()
    cfg = _config(tmp_path, seeds=2)
    result = run_sweep(cfg, data=data)

    assert capfd.readouterr().out == ""  # --quiet (verbose=0): the sweep prints nothing

    # The data goes into the object store once, and the test split never reaches a trial.
    assert len(handed) == 1  # one search for both models
    assert ray.get(handed[0]).test is None

    # Leaderboard and results directory.
    out = tmp_path / "results"
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board["model"]) == ["curve", "popularity"]
    for split in ("val", "test"):
        for m in ("recall", "ndcg", "precision", "hit"):
            for k in (10, 20):
                assert f"{split}_{m}_at_{k}" in board  # MLflow's names too
    for col in ("epochs", "trials", "wall_seconds", "seconds_per_epoch", "best_run_id"):
        assert col in board
    curve = board.set_index("model").loc["curve"]
    assert curve["trials"] == 3
    assert curve["val_ndcg_at_10"] == pytest.approx(1.0)  # quality 3.0 reaches rank 1 by epoch 4
    assert curve["trials_finished"] + curve["trials_stopped"] + curve["trials_failed"] == 3
    # Statistics: curve puts half of the users' test items first, the others past 10.
    assert list(board["model"]) == ["curve", "popularity"]
    assert curve["seeds"] == 2 and curve["test_ndcg_at_10_std"] == 0.0  # the same curve per seed
    assert curve["test_ndcg_at_10"] == 0.5
    assert curve["test_ndcg_at_10_ci_low"] < 0.5 < curve["test_ndcg_at_10_ci_high"]
    assert curve["test_recall_at_20_ci_low"] == curve["test_recall_at_20_ci_high"] == 1.0
    pop = board.set_index("model").loc["popularity"]
    assert pop["test_ndcg_at_10_ci_low"] < pop["test_ndcg_at_10"] < pop["test_ndcg_at_10_ci_high"]
    assert 0 < pop["p_wilcoxon"] < 0.05 and 0 < pop["p_ttest"] < 0.05
    assert bool(curve["tied_with_best"]) and not bool(pop["tied_with_best"])
    assert pd.isna(curve["p_wilcoxon"])
    md = (out / "leaderboard.md").read_text()
    assert md.startswith("| model | test ndcg@10 | 95% CI |") and "| curve |" in md
    assert "| curve | 0.5000 [" in md.split("Every test metric")[1]  # recall@10 with its interval
    per_user = pd.read_parquet(out / "per_user" / "curve.parquet")
    assert {"user_id", "seed", "test_ndcg_at_10", "test_recall_at_20"} <= set(per_user.columns)
    assert per_user["seed"].nunique() == 2
    assert set(per_user["user_id"]) == set(data.user_ids[data.test.users])
    assert set(per_user["test_ndcg_at_10"]) == {0.0, 1.0}
    configs = yaml.safe_load((out / "best_configs.yaml").read_text())
    assert configs["curve"]["config"]["quality"] == 3.0
    assert configs["popularity"]["config"] == {}
    split = pd.read_parquet(out / "split.parquet")
    assert set(split["split"]) == {"train", "val", "test"} and len(split) == 40 * 10
    recs = pd.read_parquet(out / "recommendations" / "curve.parquet")
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert recs.groupby("user_id")["rank"].min().eq(1).all()
    seen = split[split["split"] != "test"]
    overlap = recs.merge(seen, on=["user_id", "item_id"])
    assert overlap.empty  # training and validation items excluded
    assert set(recs["user_id"]) == set(split.loc[split["split"] == "test", "user_id"])
    for png in ("curves/curve.png", "curves/popularity.png", "test_metrics.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    summary = cli.format_summary(result)
    assert "| curve |" in summary
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db" in summary

    # MLflow: parent, nested trial runs with per-epoch metrics, best runs with test metrics.
    uri = result.state.tracking_uri
    client = tracking.client(uri)
    parent = client.get_run(result.state.parent_run_id)
    assert parent.info.status == "FINISHED"
    for tag in ("git_commit", "dataset_fingerprint", "command", "version.ray", "version.torch"):
        assert tag in parent.data.tags
    assert parent.data.tags["dataset_fingerprint"] == "blocks"
    trials = _runs(uri, parent.info.run_id, "trial", "curve")
    assert len(trials) == 3
    for run in trials:
        quality = float(run.data.params["quality"])
        assert "seed" in run.data.params
        history = _history(uri, run, "val_ndcg_at_10")
        steps = [s for s, _ in history]
        assert steps == list(range(1, len(steps) + 1))  # one value per epoch, epoch as step
        for epoch, value in history:
            assert value == pytest.approx(sweep_fakes.curve_ndcg10(quality, epoch))
        assert run.data.tags[tracking.TAG_STATUS] in ("completed", "stopped_early")
    assert len(_runs(uri, parent.info.run_id, "trial", "popularity")) == 1
    best = {m: _runs(uri, parent.info.run_id, "best", m) for m in ("curve", "popularity")}
    assert all(len(runs) == 1 for runs in best.values())
    keys = [set(k for k in r[0].data.metrics if k.startswith("test_")) for r in best.values()]
    assert keys[0] == keys[1] and "test_ndcg_at_10" in keys[0]
    best_curve = best["curve"][0]
    assert best_curve.data.params["quality"] == "3.0"
    artifacts = {a.path for a in client.list_artifacts(best_curve.info.run_id)}
    # Artifacts beside the sqlite store, not in ./mlruns of wherever the sweep was started.
    assert best_curve.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert not (tmp_path / "mlruns").exists()
    assert {"config.yaml", "checkpoint", "recommendations", "plots", "per_user"} <= artifacts
    for key in ("test_ndcg_at_10_ci_low", "test_ndcg_at_10_ci_high", "test_ndcg_at_10_std"):
        assert key in best_curve.data.metrics
    best_pop = best["popularity"][0].data.metrics
    assert best_pop["tied_with_best"] == 0 and 0 < best_pop["p_wilcoxon"] < 0.05
    seed_runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{best_curve.info.run_id}'",
    )
    assert len(seed_runs) == 2
    assert {r.data.tags[tracking.TAG_ROLE] for r in seed_runs} == {"seed"}
    assert all(r.data.metrics["test_ndcg_at_10"] == 0.5 for r in seed_runs)


@pytest.mark.slow
def test_asha_stops_trials_that_fall_behind(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = sweep_fakes.CURVE_SPACE.replace("num_samples: 3", "num_samples: 6").replace(
        "[0.5, 1.0, 1.5, 3.0]", "[1.0, 4.0]"
    )
    # One trial at a time: ASHA's decisions are deterministic.
    cfg = _config(
        tmp_path,
        models=("curve",),
        space_dir=str(_space_dir(tmp_path, space)),
        max_concurrent_trials=1,
    )
    result = run_sweep(cfg, data=block_split())
    runs = _runs(result.state.tracking_uri, result.state.parent_run_id, "trial", "curve")
    order = sorted(runs, key=lambda r: r.info.start_time)
    qualities = [float(r.data.params["quality"]) for r in order]
    last_epoch = [int(r.data.tags["recsys.final_epoch"]) for r in order]
    # The first trial is the defaults (quality 1.0), which ASHA never stops.
    assert qualities[0] == 1.0 and last_epoch[0] == 8
    tags = [r.data.tags.get(tracking.TAG_DEFAULTS) for r in order]
    assert tags == ["true"] + [None] * (len(order) - 1)
    # Setup check: the seeded sampler produced a slow trial after a fast one.
    assert 4.0 in qualities, qualities
    first_fast = qualities.index(4.0)
    assert 1.0 in qualities[first_fast + 1 :], qualities
    for i, (quality, epoch) in enumerate(zip(qualities, last_epoch, strict=True)):
        if quality == 4.0:
            assert epoch == 8  # never below the rung's cutoff
        elif i > first_fast:
            assert epoch == 1  # NDCG 0 at epoch 1 is below a fast trial's 0.32: stopped
            assert order[i].data.tags[tracking.TAG_STATUS] == "stopped_early"
    assert result.outcomes[0].epochs == sum(last_epoch)


@pytest.mark.slow
def test_crashed_trial_resumes_from_its_checkpoint(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crash = tmp_path / "crash-once"
    crash.touch()
    space = sweep_fakes.CURVE_SPACE.replace(
        "  quality: {choice: [0.5, 1.0, 1.5, 3.0]}",
        f"  quality: 3.0\n  crash_file: {crash}\n  crash_at: 3",
    )
    cfg = _config(
        tmp_path, models=("curve",), space_dir=str(_space_dir(tmp_path, space)), max_failures=1
    )
    result = run_sweep(cfg, data=block_split())
    assert not crash.exists()  # the crash happened
    (run,) = _runs(result.state.tracking_uri, result.state.parent_run_id, "trial", "curve")
    assert [s for s, _ in _history(result.state.tracking_uri, run, "epoch")] == list(range(1, 9))
    resumed = dict(_history(result.state.tracking_uri, run, "resumed_from_epoch"))
    assert resumed[1] == 0 and resumed[3] == 2  # restarted after epoch 2's checkpoint
    assert run.data.tags[tracking.TAG_STATUS] == "completed"
    assert result.outcomes[0].val["ndcg@10"] == pytest.approx(1.0)


class InterruptAfter(Callback):
    """Interrupts the sweep (as Ctrl+C would) at the n-th trial completion, n read from ``flag``.

    Also logs every trial start to ``log``. File-based, because Tune pickles callbacks with the
    experiment and restores them on resume.
    """

    def __init__(self, flag: Path, log: Path) -> None:
        self.flag, self.log = flag, log

    def on_trial_start(self, iteration, trials, trial, **info):
        with open(self.log, "a") as f:
            f.write(trial.trial_id + "\n")

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self.flag.exists():
            return
        left = int(self.flag.read_text()) - 1
        self.flag.write_text(str(left))
        if left == 0:
            self.flag.unlink()
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop, like SIGINT


class RunningTrials(Callback):
    """Records the most trials running at once, and the models among them."""

    def __init__(self) -> None:
        self.running: dict[str, str] = {}
        self.peak = 0
        self.models_together: set[str] = set()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running[trial.trial_id] = trial.config["model"]
        self.peak = max(self.peak, len(self.running))
        if len(set(self.running.values())) > len(self.models_together):
            self.models_together = set(self.running.values())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)

    on_trial_error = on_trial_complete


@pytest.mark.slow
@pytest.mark.parametrize("cap", [None, 1])
def test_models_search_at_the_same_time_up_to_the_cap(ray_session, tmp_path, monkeypatch, cap):
    monkeypatch.chdir(tmp_path)
    slow = sweep_fakes.CURVE_SPACE.replace("max_epochs: 8", "max_epochs: 4") + "  sleep: 0.3\n"
    folder = _space_dir(tmp_path, slow)
    (folder / "curve_b.yaml").write_text(slow.replace("num_samples: 3", "num_samples: 2"))
    cfg = _config(
        tmp_path, models=("curve", "curve_b"), max_concurrent_trials=cap, space_dir=str(folder)
    )
    seen = RunningTrials()
    result = run_sweep(cfg, block_split(), [seen])
    board = result.leaderboard.to_frame().set_index("model")
    assert board.loc["curve", "trials"] == 3 and board.loc["curve_b", "trials"] == 2
    if cap is None:  # 2 CPUs, one per trial: both models' first trials run together
        assert seen.peak == 2 and seen.models_together == {"curve", "curve_b"}
    else:
        assert seen.peak == 1


@pytest.mark.slow
def test_resume_continues_an_interrupted_sweep(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    flag, log = tmp_path / "interrupt", tmp_path / "starts.txt"
    flag.write_text("2")  # popularity's trial, then curve's first trial
    data = block_split()
    cfg = _config(tmp_path, max_concurrent_trials=1)
    with pytest.raises(SweepInterrupted, match="--resume"):
        run_sweep(cfg, data=data, callbacks=[InterruptAfter(flag, log)])
    state = tmp_path / "results" / ".sweep"
    # No model evaluated yet; the claim and the space files the sweep started with are kept.
    assert sorted(p.name for p in state.iterdir()) == ["lock", "spaces", "sweep.json"]
    assert not (tmp_path / "results" / "leaderboard.csv").exists()
    first_run = log.read_text().split()
    # The space file edited meanwhile: the resume goes on with the one the sweep started with.
    edited = tmp_path / "spaces" / "curve.yaml"
    edited.write_text(edited.read_text().replace("max_epochs: 8", "max_epochs: 20"))
    capsys.readouterr()

    result = run_sweep(
        SweepConfig(resume=True, results_dir=str(tmp_path / "results"), verbose=1), data=data
    )
    assert f"resume: {edited} changed since the sweep started" in capsys.readouterr().out
    assert result.state.status == "finished"
    assert max(r["epoch"] for r in result.leaderboard.row("curve").outcome.curves) == 8
    assert sorted(r.model for r in result.leaderboard.rows) == ["curve", "popularity"]
    uri = result.state.tracking_uri
    assert tracking.client(uri).get_run(result.state.parent_run_id).info.status == "FINISHED"
    curve_runs = _runs(uri, result.state.parent_run_id, "trial", "curve")
    assert len(curve_runs) == 3  # no duplicated trial runs
    for run in curve_runs:
        assert run.info.status == "FINISHED"
        steps = [s for s, _ in _history(uri, run, "epoch")]
        assert steps == list(range(1, steps[-1] + 1))  # every epoch logged once
    assert len(_runs(uri, result.state.parent_run_id, "trial", "popularity")) == 1
    assert len(_runs(uri, result.state.parent_run_id, "best", "popularity")) == 1
    assert len(_runs(uri, result.state.parent_run_id, "best", "curve")) == 1
    # Finished trials (popularity's, curve's first) did not run again.
    starts = log.read_text().split()
    resumed_starts = starts[len(first_run) :]
    assert first_run[0] not in resumed_starts and first_run[1] not in resumed_starts
    assert len(set(starts)) == 4  # popularity's trial and curve's three
    # The summary's times are this run's: the search's part of it, never more than all of it.
    assert 0 < result.search_seconds <= result.wall_seconds
    first_line = cli.format_summary(result).splitlines()[0]
    assert not re.search(r"-\d", first_line), first_line

    # A finished sweep resumed: said so, nothing started (not even Ray), exit 0.
    def no_ray(address):
        raise AssertionError("Ray started")

    monkeypatch.setattr("recsys.tuning.sweep.connect", no_ray)
    code, err = _main(cli.main, ["--resume", "--results-dir", str(tmp_path / "results")])
    assert code == cli.EXIT_OK and "already finished: nothing to resume" in err, err


def test_trial_refuses_the_test_split():
    settings = {"popularity": TrialSettings(model="popularity")}
    with pytest.raises(RuntimeError, match="test split"):
        train_trial({"model": "popularity"}, data=block_split(), settings=settings)


@pytest.mark.slow
def test_impossible_resources_fail_before_anything_is_written(ray_session, tmp_path):
    main = cli.main

    results = tmp_path / "results"
    for flag in (["--gpus-per-trial", "1"], ["--cpus-per-trial", "64"]):
        code, err = _main(
            main,
            [
                "--models",
                "popularity",
                "--results-dir",
                str(results),
                "--storage-path",
                str(tmp_path / "ray"),
                "--tracking-uri",
                f"sqlite:///{tmp_path}/m.db",
                *flag,
            ],
        )
        assert code == 2 and err.startswith("error: --") and err.count("\n") == 1, err
        assert "more than any node" in err
    assert not results.exists() and not (tmp_path / "m.db").exists()
    assert not (tmp_path / "ray").exists()
    with pytest.raises(RecsysError, match="cpus-per-trial"):
        run_sweep(_config(tmp_path, cpus_per_trial=64), data=block_split())


@pytest.mark.slow
def test_checks_that_need_the_split_fail_before_anything_is_written(ray_session, tmp_path):
    for overrides, expected in (
        ({"metric": "ndcg@50"}, "k=50 is above the catalogue's 20 items"),
        ({"models": ("popularity",)}, "no validation pairs"),
    ):
        data = block_split()
        if "metric" not in overrides:
            data = dataclasses.replace(data, val=Pairs.empty())
        with pytest.raises(RecsysError, match=expected):
            run_sweep(_config(tmp_path, **overrides), data=data)
    assert not (tmp_path / "results").exists() and not (tmp_path / "mlflow.db").exists()


def _main(main, argv):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--models", "popularity,nope"], "unknown model 'nope'"),
        (["--models", "popularity", "--metric", "auc"], "bad metric 'auc'"),
        (["--models", "popularity", "--num-samples", "0"], "--num-samples must be a positive"),
        (["--models", "popularity", "--space-dir", "/nonexistent"], "no search space"),
        (["--resume", "--name", "never-ran"], "holds no interrupted sweep"),
        (["--resume", "--models", "popularity", "--seeds", "3"], "--models, --seeds cannot change"),
        (["--resume", "--dataset", "ml-1m"], "--dataset cannot change"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--dataset", "synthetic", "--dataset-option", "bogus=1"], "has no option 'bogus'"),
        (["--dataset", "synthetic", "--dataset-option", "n_users=-5"], "n_users must be a posit"),
        (["--dataset", "synthetic", "--dataset-option", "n_users=abc"], "wants int values"),
        (["--dataset", "synthetic", "--dataset-option", "n_users=2.5"], "wants int values"),
        (["--dataset", "synthetic", "--dataset-option", "temperature=0"], "must be > 0"),
        (["--dataset", "synthetic", "--dataset-option", "seed=-2"], "seed must be an integer"),
        (
            [
                "--dataset",
                "synthetic",
                "--dataset-option",
                "n_users=2",
                "--dataset-option",
                "n_items=2",
                "--dataset-option",
                "n_interactions=9",
            ],
            "exceeds n_users * n_items",
        ),  # fmt: skip
        (["--dataset", "goodbooks-10k", "--dataset-option", "to_read=maybe"], "wants bool"),
        (["--dataset-option", "n_users"], "takes KEY=VALUE"),
        (["--ratios", "0.8,0.1,0.2"], "sum to"),
        (["--ratios", "0.8,x"], "three fractions"),
        (["--ratios", "1,0,0"], "needs validation"),
        (["--min-user-interactions", "-3"], "--min-user-interactions must be 1"),
        (["--max-concurrent-trials", "-1"], "--max-concurrent-trials must be a positive"),
        (["--seeds", "0"], "--seeds must be a positive integer, got 0"),
        (["--max-failures", "-1"], "--max-failures must be 0 or more"),
        (["--name", "../../x"], "plain folder name"),
        (["--name", "a" * 300], "use at most 100"),
        (["--metric", "ndcg@\u00b2"], "bad metric"),  # a digit int() cannot read
        (["--metric", "ndcg@\u0661\u0660"], "bad metric"),  # Arabic-Indic ten
        (["--ratios", "nan,0.1,0.1"], "are invalid"),
        (["--seed", "-1"], "--seed must be an integer >= 0"),
        (["--split-seed", "-3"], "--split-seed must be an integer >= 0"),
        (["--threshold", "nan"], "--threshold must be a number"),
        (["--cpus-per-trial", "0.0001"], "--cpus-per-trial must be at least 0.01"),
        (["--cpus-per-trial", "nan"], "--cpus-per-trial must be at least 0.01"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial must be 0 (none) or at least 0.01"),
        (["--dataset-option", "n_users=[1,2"], "does not parse"),
        (["--experiment", " "], "--experiment is empty"),
        (["--tracking-uri", "file:///tmp/mlruns"], "file store is in maintenance mode"),
        (["--tracking-uri", "mlruns"], "file store is in maintenance mode"),
        (["--tracking-uri", "postgresql://u:pw@127.0.0.1:1/db"], "driver psycopg2 is not"),
        (["--name", ".."], "plain folder name"),
        (["--report-ks", "10,x"], "--report-ks takes comma-separated positive integers"),
        (["--report-ks", ""], "--report-ks takes comma-separated positive integers"),
        (["--report-ks", "10,,20"], "--report-ks takes comma-separated positive integers"),
        (["--report-ks", "0,10"], "--report-ks takes comma-separated positive integers"),
        (["--report-ks=-5"], "--report-ks takes comma-separated positive integers"),
        (["--report-ks", "2.5"], "--report-ks takes comma-separated positive integers"),
        (["--report-ks", "\u00b2"], "--report-ks takes comma-separated positive integers"),
        (["--report-ks", "1,2,3,4,5,6,7,8,9"], "report at most 8"),
        # 10, the target's, is a ninth:
        (["--report-ks", "1,2,3,4,5,6,7,8"], "9 cut-offs with the target's (ndcg@10)"),
        (["--sampled-negatives", "-1"], "--sampled-negatives must be 0 or more, got -1"),
        (["--sampled-negatives", "100000"], "--sampled-negatives must be at most 10000"),
        (["--resume", "--report-ks", "5,10"], "--report-ks cannot change"),
        (["--resume", "--sampled-negatives", "99"], "--sampled-negatives cannot change"),
        (["--dataset", "ml-10m", "--dataset-option", "max_tags=-1"], "max_tags must be"),
        (["--dataset", "ml-10m", "--dataset-option", "max_tags=many"], "wants int values"),
        (["--split", "files"], "--split files needs --train-file and --test-file"),
        (["--split", "files", "--train-file", "u1.base"], "needs --test-file"),
        (["--split", "files", *SPLIT_FILES], "u1.base does not exist"),
        (["--split", "files", "--train-file", "/", "--test-file", "/"], "/ is not a file"),
        (["--split", "files", *SPLIT_FILES, "--ratios", "0.8,0.1,0.1"], "--ratios does not"),
        (["--split", "files", *SPLIT_FILES, "--val-share", "1"], "--val-share 1.0 must be a"),
        (["--split", "files", *SPLIT_FILES, "--fold", "2"], "--fold is for --split ml100k"),
        (["--train-file", "u1.base"], "--train-file is for --split files or ml100k-fold"),
        (["--split", "loo", "--fold", "1"], "--fold is for --split files or ml100k-fold"),
        (["--val-share", "0.2"], "--val-share is for --split files or ml100k-fold"),
        (["--split", "ml100k-fold", "--fold", "6"], "--fold must be one of 1, 2, 3, 4, 5"),
        (["--split", "ml100k-fold"], "the cached and RecBole copies have no folds"),
        (["--split", "ml100k-fold", "--data-dir", "/"], "/ holds no u1.base and u1.test"),
        (["--split", "ml100k-fold", "--dataset", "ml-1m"], "not 'ml-1m''s"),
        (["--split", "ml100k-fold", "--test-file", "t"], "drop --test-file"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, monkeypatch, argv, expected):
    main = cli.main

    monkeypatch.chdir(tmp_path)
    code, err = _main(main, argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--split", "kfold"], "argument --split: invalid choice: 'kfold'"),
        (["--low-ratings", "keep"], "argument --low-ratings: invalid choice: 'keep'"),
        (["--fold", "x"], "argument --fold: invalid int value: 'x'"),
        (["--val-share", "a"], "argument --val-share: invalid float value: 'a'"),
    ],
)
def test_flag_values_argparse_refuses_are_one_line_too(
    tmp_path, monkeypatch, capsys, argv, expected
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_a_tracking_uri_stay_out_of_the_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--models", "popularity", "--tracking-uri", "http://alice:s3cret@127.0.0.1:1"]
    code, err = _main(cli.main, argv)
    assert code == 2 and "http://***@127.0.0.1:1" in err and "s3cret" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        ("popularity", b"budget:\n  max_epochs: 1 # \xe9t\xe9\n", "not UTF-8 text (byte"),
        ("lightgcn", REAL_SPACE_HEAD + b"  dim: -5\n", "rejects its fixed values: dim must be"),
        ("lightgcn", REAL_SPACE_HEAD + b"  sampler: hard\n", "sampler must be one of"),
        ("lightgcn", REAL_SPACE_HEAD + b"  p_pop: {uniform: [0.1, 1.5]}\n", "p_pop=1.5"),
        (
            "lightgcn",
            REAL_SPACE_HEAD.replace(b"1.0e-3, 1.0e-2", b"2.0e-3, 1.0e-2"),
            "the model's default 0.001 is outside loguniform [0.002, 0.01]",
        ),
        (
            "ease",
            CLOSED_FORM_HEAD + b"  l2: {uniform: [-10.0, 300.0]}\n",
            "l2 must be a number > 0",
        ),
        ("itemknn", CLOSED_FORM_HEAD + b"  k: {choice: [0, 100]}\n", "k must be an integer >= 1"),
        ("itemknn", CLOSED_FORM_HEAD + b"  shrink: -1.0\n", "shrink must be a number >= 0"),
        ("lightgcn", REAL_SPACE_HEAD + b"  dim: {grid: []}\n", "grid needs a non-empty list"),
        ("lightgcn", REAL_SPACE_HEAD + b"  dim: {grid: 64}\n", "grid needs a non-empty list"),
        ("lightgcn", REAL_SPACE_HEAD + b"  dim: {grid: [64, 64]}\n", "grid lists 64 twice"),
        ("lightgcn", REAL_SPACE_HEAD + b"  dim: {grid: [32, 128]}\n", "default 64 is outside"),
        ("lightgcn", REAL_SPACE_HEAD + b"  dim: {grid: [64, -5]}\n", "rejects dim=-5"),
    ],
)
def test_space_values_the_model_rejects_fail_before_ray(
    tmp_path, monkeypatch, model, text, expected
):
    monkeypatch.chdir(tmp_path)
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / f"{model}.yaml").write_bytes(text)
    code, err = _main(cli.main, ["--models", model, "--space-dir", str(spaces)])
    assert code == 2 and err.count("\n") == 1 and f"{model}.yaml" in err, err
    assert expected in err
    assert list(tmp_path.iterdir()) == [spaces]


def test_a_grid_under_optuna_is_refused_before_ray(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "lightgcn.yaml").write_bytes(REAL_SPACE_HEAD + b"  dim: {grid: [32, 64]}\n")
    argv = ["--models", "lightgcn", "--space-dir", str(spaces), "--search", "optuna"]
    code, err = _main(cli.main, argv)
    assert code == 2 and err.count("\n") == 1 and "lightgcn.yaml" in err, err
    assert "'dim' is a grid, which --search optuna cannot run" in err
    assert list(tmp_path.iterdir()) == [spaces]


def test_unusable_paths_stores_and_addresses_fail_fast_writing_nothing(tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    base = ["--models", "popularity", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    for argv, expected in (
        (["--results-dir", str(tmp_path / "a-file" / "r")], "--results-dir"),
        (["--storage-path", str(tmp_path / "a-file" / "s")], "--storage-path"),
        (["--storage-path", "/proc/recsys-tune"], "cannot write in /proc"),
        (["--storage-path", "~no-such-user-0"], "no such user's home folder"),
        (["--results-dir", "~no-such-user-0/r"], "no such user's home folder"),
        (["--tracking-uri", "http://127.0.0.1:1"], "no MLflow server answers"),
        (["--tracking-uri", "bogus://x"], "unknown scheme 'bogus'"),
        (["--tracking-uri", f"sqlite:///{tmp_path}/a-file/m.db"], "is a file, not a folder"),
        (["--tracking-uri", f"sqlite:///{tmp_path}"], "is a folder; name a database file"),
        (["--tracking-uri", f"sqlite:///{tmp_path}/a-file"], "is not a sqlite database"),
        (["--address", "127.0.0.1:1"], "no Ray head answers at 127.0.0.1:1"),
        (["--address", "nonsense"], "expected HOST:PORT"),
    ):
        started = time.time()
        code, err = _main(cli.main, [*base, *argv])
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert expected in err, err
        assert time.time() - started < 30
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"], argv


def test_an_error_quoting_a_huge_value_stays_one_short_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for flag in ("--dataset", "--search"):  # a RecsysError's message, argparse's
        try:
            code = cli.main(["--models", "popularity", flag, "x" * 8000 + "\nmore"])
        except SystemExit as exit:
            code = exit.code
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and len(err) <= cli.MAX_MESSAGE + 10, err
        assert err.startswith("error: ")


def test_malformed_space_file_from_the_command_line(tmp_path, monkeypatch):
    main = cli.main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "popularity.yaml").write_text("budget: [1, 2\n")
    code, err = _main(main, ["--models", "popularity", "--space-dir", str(tmp_path)])
    assert code == 2 and "popularity.yaml: malformed YAML" in err


@pytest.mark.slow
def test_cli_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch" / "sweep.py"), "--models", "popularity,nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown model 'nope'") and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        ([], 2, "usage: recsys-tune sweep"),
        (["train"], 2, "unknown command 'train'"),
        (["sweep", "--models", "nope"], 2, "unknown model 'nope'"),
    ],
)
def test_recsys_tune_command_dispatches_to_the_sweep(
    tmp_path, monkeypatch, capsys, argv, code, expected
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["recsys-tune", *argv])
    assert cli.entry() == code
    out = capsys.readouterr()
    assert expected in out.out + out.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_installed_command_prints_no_traceback(tmp_path):
    command = Path(sys.executable).parent / "recsys-tune"
    assert command.is_file(), "the package's [project.scripts] entry is not installed"
    proc = subprocess.run(
        [str(command), "sweep", "--models", "popularity,nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown model 'nope'") and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_optuna_search(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = sweep_fakes.CURVE_SPACE.replace(
        "{choice: [0.5, 1.0, 1.5, 3.0]}", "{uniform: [0.5, 3.0]}"
    )
    # Popularity has nothing to search: it gets one trial, not an error from Optuna.
    cfg = _config(tmp_path, space_dir=str(_space_dir(tmp_path, space)), search="optuna")
    result = run_sweep(cfg, data=block_split())
    assert (
        len(_runs(result.state.tracking_uri, result.state.parent_run_id, "trial", "popularity"))
        == 1
    )
    runs = _runs(result.state.tracking_uri, result.state.parent_run_id, "trial", "curve")
    first = min(runs, key=lambda r: r.info.start_time)
    assert float(first.data.params["quality"]) == 1.0  # CurveConfig's default, enqueued first
    qualities = sorted(float(r.data.params["quality"]) for r in runs)
    assert len(qualities) == 3 and all(0.5 <= q <= 3.0 for q in qualities)
    best = max(sweep_fakes.curve_ndcg10(q, 8) for q in qualities)  # curves only rise
    assert result.outcomes[1].val["ndcg@10"] == pytest.approx(best)

    # A second sweep on the same split with --warm-start (and another searcher): after the
    # defaults, the first sweep's best config runs first, tagged with the run it came from.
    best_quality = result.outcomes[1].config["quality"]
    again = dataclasses.replace(
        cfg, search="gp", warm_start=True, name="warm", results_dir=str(tmp_path / "warm")
    )
    second = run_sweep(again, data=block_split())
    assert second.state.status == "finished"
    runs = _runs(second.state.tracking_uri, second.state.parent_run_id, "trial", "curve")
    runs.sort(key=lambda r: r.info.start_time)
    assert float(runs[0].data.params["quality"]) == 1.0  # the defaults still come first
    warm = [r for r in runs if tracking.TAG_WARM in r.data.tags]
    assert [float(r.data.params["quality"]) for r in warm] == [best_quality]
    assert warm[0].data.tags[tracking.TAG_WARM] == result.outcomes[1].best_run_id


def test_cli_defaults_are_the_documented_sweep():
    cfg = cli.parse_args([])
    assert cfg.dataset == "ml-100k" and cfg.metric == "ndcg@10" and cfg.search == "random"
    assert cfg.models[:4] == ("lightgcn", "lightgcn_hardneg", "hybrid_vae", "lightgcn_text")
    assert {"popularity", "itemknn", "ease", "bpr_mf", "mult_vae"} <= set(cfg.models)
    assert cfg.address is None and cfg.tracking_uri is None and not cfg.resume
    assert cfg.prep == {} and cfg.dataset_options == {}  # PrepConfig's defaults
    cfg = cli.parse_args(["--models", "ease, itemknn", "--gpus-per-trial", "0.25", "--smoke"])
    assert cfg.models == ("ease", "itemknn") and cfg.gpus_per_trial == 0.25 and cfg.smoke


def test_report_ks_and_sampled_negatives_reach_the_config_and_fit_the_catalogue():
    from recsys.tuning.config import check_fits_data

    cfg = cli.parse_args(["--report-ks", "50, 5,20,5", "--sampled-negatives", "99"])
    assert cfg.report_ks == (5, 20, 50) and cfg.sampled_negatives == 99  # ascending, once
    assert SweepConfig.from_dict(cfg.to_dict()) == cfg  # a resume reads them back
    defaults = cli.parse_args([])
    assert defaults.report_ks == (10, 20) and defaults.sampled_negatives == 0
    check_fits_data(cfg, n_items=100, n_val=1, n_test=1)
    with pytest.raises(RecsysError, match="--report-ks 5,20,50: 50 is above the catalogue's 40"):
        check_fits_data(cfg, n_items=40, n_val=1, n_test=1)
    small = dataclasses.replace(cfg, report_ks=(5,), sampled_negatives=20)
    with pytest.raises(RecsysError, match="--sampled-negatives 20: .* use at most 19"):
        check_fits_data(small, n_items=20, n_val=1, n_test=1)
    check_fits_data(dataclasses.replace(small, sampled_negatives=19), 20, 1, 1)


def test_the_summary_says_where_the_sampled_table_is_and_how_far_the_orders_agree():

    from test_leaderboard import _sampled_board

    from recsys.tuning.endings import SweepResult

    state = sweep_fakes.summary_state(SweepConfig(sampled_negatives=99))
    board = _sampled_board()
    summary = cli.format_summary(SweepResult(state, board, [r.outcome for r in board.rows]))
    assert (
        "sampled:  99 negatives per test item: leaderboard_sampled.md; its order and the full "
        "ranking's disagree on 2 of 3 model pairs" in summary
    )


def test_cli_dataset_and_split_flags_reach_the_loader():
    cfg = cli.parse_args(
        [
            "--dataset",
            "synthetic",
            "--dataset-option",
            "n_users=300",
            "--dataset-option",
            "popularity_exponent=0.5",
            "--threshold",
            "3",
            "--split",
            "loo",
            "--split-seed",
            "7",
        ]
    )
    assert cfg.dataset_options == {"n_users": 300, "popularity_exponent": 0.5}
    prep = prep_config(cfg.prep)
    assert (prep.threshold, prep.split, prep.seed, prep.ratios) == (3.0, "loo", 7, None)
    assert prep.low_ratings == "drop" and prep.train_file is None


def test_cli_split_file_flags_reach_the_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--split", "files", "--train-file", "a.tsv", "--test-file", "b.tsv"]
    cfg = cli.parse_args([*argv, "--val-share", "0.2", "--low-ratings", "seen"])
    prep = prep_config(cfg.prep)
    # Paths are made absolute: the sweep may run from another folder.
    assert (prep.train_file, prep.test_file) == (str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv"))
    assert (prep.split, prep.val_file, prep.val_share, prep.low_ratings) == (
        "files", None, 0.2, "seen"
    )  # fmt: skip
    prep = prep_config(cli.parse_args(["--split", "ml100k-fold", "--fold", "3"]).prep)
    assert (prep.split, prep.fold) == ("ml100k-fold", 3)
    resumed = ["--resume", "--split", "files", *argv[2:]]
    with pytest.raises(RecsysError, match="--split, --test-file, --train-file cannot change"):
        cli.parse_args(resumed)


class FaultAtEpoch(Callback):
    """When a trial reports ``epoch``, once (while ``flag`` exists): interrupts the sweep as
    Ctrl+C would (``kill=False``: Tune's SIGUSR1 to this process) or kills the trial's worker
    process (``kill=True``: SIGKILL). Logs to ``log`` each trial's epoch of (re)start, and the
    trial killed. File-based: Tune pickles callbacks with the experiment and restores them."""

    def __init__(self, flag: Path, epoch: int, log: Path, kill: bool = False) -> None:
        self.flag, self.epoch, self.log, self.kill = flag, epoch, log, kill

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "resumed_from_epoch" in result:
            self._log(f"{trial.trial_id} {result['resumed_from_epoch']}")
        if result.get("epoch") != self.epoch or not self.flag.exists():
            return
        self.flag.unlink()
        if self.kill:
            self._log(f"{trial.trial_id} killed")
            os.kill(result["pid"], signal.SIGKILL)
        else:
            os.kill(os.getpid(), signal.SIGUSR1)

    def _log(self, line: str) -> None:
        with open(self.log, "a") as f:
            f.write(line + "\n")


REAL_SPACES = {
    # Long enough that the trial is still running when the interruption at epoch 6 lands.
    "lightgcn": """
budget: {max_epochs: 40, grace_period: 40, reduction_factor: 2, eval_every: 2, num_samples: 2}
params:
  dim: 8
  lr: {choice: [0.001, 0.02]}
  batch_size: 64
""",
    "hybrid_vae": """
budget: {max_epochs: 4, grace_period: 4, reduction_factor: 2, eval_every: 2, num_samples: 2}
params:
  hidden: 32
  latent: 8
  anneal_steps: 50
  lr: {choice: [0.001, 0.01]}
  batch_size: 8
""",
}


@pytest.mark.slow
def test_real_models_sweep_and_resume_from_mid_trial_checkpoints(
    ray_session, tmp_path, monkeypatch
):
    """LightGCN and HybridVAE, not test fakes: through the object store (item embeddings
    included), interrupted in the middle of a trial, resumed from a checkpoint, and the best
    checkpoint restored on the driver scores what its trial reported."""
    from recsys.train import Trainer
    from recsys.tuning.trainable import trial_seed

    monkeypatch.chdir(tmp_path)
    spaces = tmp_path / "real-spaces"
    spaces.mkdir()
    for model, text in REAL_SPACES.items():
        (spaces / f"{model}.yaml").write_text(text)
    data = with_random_text(block_split(n_groups=4, users_per_group=50, items_per_group=20))
    flag, log = tmp_path / "interrupt", tmp_path / "starts.txt"
    flag.touch()
    cfg = _config(
        tmp_path, models=("lightgcn", "hybrid_vae"), space_dir=str(spaces), max_concurrent_trials=1
    )
    with pytest.raises(SweepInterrupted):
        # Tune's saved state holds the checkpoints before the one being reported at the stop.
        run_sweep(cfg, data=data, callbacks=[FaultAtEpoch(flag, 6, log)])
    assert not flag.exists()
    result = run_sweep(
        SweepConfig(resume=True, results_dir=str(tmp_path / "results"), verbose=0), data=data
    )
    uri, parent = result.state.tracking_uri, result.state.parent_run_id

    runs = _runs(uri, parent, "trial", "lightgcn")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    starts = [line.split() for line in log.read_text().splitlines()]
    restarts = [(trial, int(epoch)) for trial, epoch in starts if int(epoch) > 0]
    assert len(restarts) == 1, starts  # the interrupted trial went on from a checkpoint
    assert restarts[0][1] in (2, 4), starts
    (run,) = [r for r in runs if r.data.tags[tracking.TAG_TRIAL] == restarts[0][0]]
    logged = dict(_history(uri, run, "val_ndcg_at_10"))
    assert sorted(logged) == list(range(2, 41, 2))  # every evaluation logged once
    # The resumed trial ends where an uninterrupted one with its seed ends (RNG states included).
    config = {"dim": 8, "lr": float(run.data.params["lr"]), "batch_size": 64}
    seed = trial_seed(cfg.seed, "lightgcn", config)
    assert int(run.data.params["seed"]) == seed
    reference = Trainer("lightgcn", config, data.without_test(), seed=seed)
    (*_, last) = reference.run(40, eval_every=2, ks=(10, 20))
    assert logged[40] == pytest.approx(last.metrics["ndcg@10"], abs=1e-6)

    for outcome in result.outcomes:
        best_runs = _runs(uri, parent, "trial", outcome.model)
        best_run = next(r for r in best_runs if r.data.tags[tracking.TAG_TRIAL] == outcome.trial_id)
        reported = dict(_history(uri, best_run, "val_ndcg_at_10"))
        assert outcome.val["ndcg@10"] == pytest.approx(reported[outcome.best_epoch], abs=1e-6)
        assert outcome.best_epoch % 2 == 0 and 0 <= outcome.test["ndcg@10"] <= 1


@pytest.mark.slow
def test_a_model_whose_every_trial_fails_is_an_error_row(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = sweep_fakes.CURVE_SPACE.replace(
        "  quality: {choice: [0.5, 1.0, 1.5, 3.0]}",
        "  quality: {choice: [1.0, 2.0]}\n  diverge_at: 1",
    ).replace("num_samples: 3", "num_samples: 2")
    cfg = _config(tmp_path, space_dir=str(_space_dir(tmp_path, space)), max_failures=1)
    result = run_sweep(cfg, data=block_split())

    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv").set_index("model")
    assert board.loc["popularity", "test_ndcg_at_10"] > 0  # the other model is reported
    assert pd.isna(board.loc["curve", "test_ndcg_at_10"])
    assert "every trial of 'curve' failed" in board.loc["curve", "error"]
    assert "diverged" in board.loc["curve", "error"] and "\n" not in board.loc["curve", "error"]
    assert board.loc["curve", "trials_failed"] == 2
    assert list(board.index) == ["popularity", "curve"]  # models without scores last
    assert result.state.status == "failed" and cli.exit_status(result) == cli.EXIT_MODEL_FAILED
    assert "FAILED:   curve has no result" in cli.format_summary(result)
    client = tracking.client(result.state.tracking_uri)
    parent = client.get_run(result.state.parent_run_id)
    assert parent.info.status == "FAILED" and parent.data.tags[tracking.TAG_STATUS] == "failed"
    runs = _runs(result.state.tracking_uri, parent.info.run_id, "trial", "curve")
    assert len(runs) == 2 and all(r.info.status == "FAILED" for r in runs)


@pytest.mark.slow
@pytest.mark.parametrize("max_failures", [2, 0])
def test_a_killed_trial_worker_restarts_from_its_checkpoint(
    ray_session, tmp_path, monkeypatch, capfd, max_failures
):
    monkeypatch.chdir(tmp_path)
    flag, log = tmp_path / "kill", tmp_path / "starts.txt"
    flag.touch()
    space = (
        sweep_fakes.CURVE_SPACE.replace("{choice: [0.5, 1.0, 1.5, 3.0]}", "{choice: [1.0, 3.0]}")
        .replace("num_samples: 3", "num_samples: 2")
        .replace("grace_period: 1", "grace_period: 8")  # no ASHA stop: every trial to epoch 8
    )
    cfg = _config(
        tmp_path,
        models=("curve",),
        space_dir=str(_space_dir(tmp_path, space)),
        max_failures=max_failures,
    )
    result = run_sweep(cfg, data=block_split(), callbacks=[FaultAtEpoch(flag, 4, log, kill=True)])
    assert not flag.exists()  # a worker was killed
    # One line for the failure, also with --quiet (verbose=0), not Ray's traceback.
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ActorDiedError" not in err.split("failed (")[0], err
    said = "restarts from epoch" if max_failures else "failed after its restarts"
    assert len([line for line in err.splitlines() if said in line]) == 1, err
    lines = [line.split() for line in log.read_text().splitlines()]
    killed = next(trial for trial, what in lines if what == "killed")
    uri, parent = result.state.tracking_uri, result.state.parent_run_id
    runs = {r.data.tags[tracking.TAG_TRIAL]: r for r in _runs(uri, parent, "trial", "curve")}
    assert len(runs) == 2  # the killed trial's run is continued, not duplicated
    run = runs[killed]
    epochs = [s for s, _ in _history(uri, run, "epoch")]
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv").set_index("model")
    if max_failures:
        restarts = [int(what) for trial, what in lines if trial == killed and what != "killed"]
        assert restarts[0] == 0 and restarts[1] in (2, 3)  # not back to epoch 0
        assert epochs == list(range(1, 9)) and run.info.status == "FINISHED"
        assert board.loc["curve", "trials_failed"] == 0 and result.state.status == "finished"
        assert cli.exit_status(result) == cli.EXIT_OK
    else:
        assert epochs == list(range(1, epochs[-1] + 1)) and epochs[-1] < 8
        assert run.info.status == "FAILED" and run.data.tags[tracking.TAG_STATUS] == "error"
        assert board.loc["curve", "trials_failed"] == 1
        assert result.state.status == "trials_lost"
        assert cli.exit_status(result) == cli.EXIT_TRIALS_LOST
        assert "LOST:     1 trials failed" in cli.format_summary(result)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["ndcg@5", "mrr@10"])
def test_a_target_beside_the_default_ranks_tests_and_crowns_by_that_target(
    ray_session, tmp_path, monkeypatch, metric
):
    """With ``--metric ndcg@5`` or ``mrr@10``: the leaderboard is ranked by it on test, its
    paired tests are on it, and the champion is its best model, though the models are listed
    worst first (popularity before curve)."""
    monkeypatch.chdir(tmp_path)
    short = sweep_fakes.CURVE_SPACE.replace("num_samples: 3", "num_samples: 1")
    cfg = _config(tmp_path, metric=metric, space_dir=str(_space_dir(tmp_path, short)))
    result = run_sweep(cfg, data=block_split())

    target = f"test_{metric.replace('@', '_at_')}"
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert list(board["model"]) == ["curve", "popularity"]
    assert board[target].is_monotonic_decreasing and board.loc[0, target] > board.loc[1, target]
    assert f"{target}_ci_low" in board and f"val_{metric.replace('@', '_at_')}" in board
    assert pd.isna(board.loc[0, "p_wilcoxon"]) and 0 < board.loc[1, "p_wilcoxon"] < 0.05
    assert bool(board.loc[0, "tied_with_best"]) and not bool(board.loc[1, "tied_with_best"])
    md = (tmp_path / "results" / "leaderboard.md").read_text()
    assert md.startswith(f"| model | test {metric} | 95% CI |")
    assert f"| curve | {board.loc[0, target]:.4f} | [" in md  # the target column is filled
    assert result.leaderboard.best_model().model == "curve"
    client = tracking.client(result.state.tracking_uri)
    champion = client.get_model_version_by_alias("recsys-tune-blocks", "champion")
    (curve_run,) = _runs(result.state.tracking_uri, result.state.parent_run_id, "best", "curve")
    assert champion.tags[registry.TAG_BEST_RUN] == curve_run.info.run_id
    assert curve_run.data.metrics[target] == board.loc[0, target]


@pytest.mark.slow
def test_trials_whose_memory_together_exceeds_the_node_run_one_after_the_other(
    ray_session, tmp_path, monkeypatch
):
    """Each trial asks Ray for its planned memory: with every trial planned at 60% of the node,
    two never run at once, though CPUs and the concurrency cap would let them."""
    import ray

    from recsys.tuning import memory

    monkeypatch.chdir(tmp_path)
    node = ray.cluster_resources()["memory"]
    monkeypatch.setattr(memory, "BASE_BYTES", int(0.6 * node))  # the driver plans the requests
    space = sweep_fakes.CURVE_SPACE.replace("params:", "params:\n  sleep: 0.2")
    cfg = _config(
        tmp_path, models=("curve",), space_dir=str(_space_dir(tmp_path, space)), scheduler="fifo"
    )
    result = run_sweep(cfg, data=block_split())
    assert result.state.status == "finished"
    runs = _runs(result.state.tracking_uri, result.state.parent_run_id, "trial", "curve")
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 500, spans  # ms; MLflow closes a run just after Tune ends it

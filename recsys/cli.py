"""The command line: flags into a ``SweepConfig``, the sweep, its summary or a one-line error.

``python launch/sweep.py [flags]`` and ``recsys-tune sweep [flags]`` run the same ``main``.
With no flags: MovieLens-100K, the default split, the main models and the baselines, a local
Ray instance and a local MLflow store (``sqlite:///mlflow.db``). On a cluster::

    ray job submit --address http://HEAD:8265 --working-dir . -- python launch/sweep.py ...
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from recsys.buckets import COLD_USER_THRESHOLD
from recsys.data.prepare import LOW_RATINGS
from recsys.data.split import STRATEGIES
from recsys.errors import (  # the exit statuses, here for scripts: recsys.cli.EXIT_*
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MODEL_FAILED,
    EXIT_OK,
    EXIT_TIME_BUDGET,
    EXIT_TRIALS_LOST,
    RecsysError,
    SweepEnded,
)
from recsys.io import redact, redact_command
from recsys.metrics import REPORT_KS

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL_FAILED",
    "EXIT_OK",
    "EXIT_TIME_BUDGET",
    "EXIT_TRIALS_LOST",
    "main",
    "parse_args",
]
from recsys.tuning.config import (
    MODEL_GROUPS,
    RESUME_MAY_CHANGE,
    SCHEDULERS,
    SEARCHES,
    SweepConfig,
    expand_models,
    format_duration,
    parse_compare,
    parse_duration,
)

if TYPE_CHECKING:
    from recsys.tuning.sweep import SweepResult


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2, like a RecsysError
        self.exit(2, f"error: {one_line(message)}\n")


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The sweep's flags; their names are the ``SweepConfig`` fields they set."""
    p = _Parser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _data_flags(p)
    _search_flags(p)
    _run_flags(p)
    return p


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="ml-100k", help="dataset name (default ml-100k)")
    p.add_argument("--data-dir", help="folder of the dataset's source files")
    p.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, repeatable (e.g. n_users=20000 for synthetic, category=... for "
        "amazon2023)",
    )
    p.add_argument("--threshold", type=float, help="ratings >= this are positives (default 4)")
    p.add_argument("--min-user-interactions", type=int, help="k-core bound on users (default 1)")
    p.add_argument("--min-item-interactions", type=int, help="k-core bound on items (default 1)")
    p.add_argument(
        "--split",
        choices=STRATEGIES,
        help="split strategy (default ratio: per user); global: a random share of all "
        "interactions; files: --train-file/--test-file; ml100k-fold: ML-100K's uN.base/uN.test; "
        "cold_items: a share of the items held out whole (new items), ranked among themselves",
    )
    p.add_argument(
        "--cold-share",
        type=float,
        help="--split cold_items: share of the items held out with all their interactions, "
        "half for validation, half for test (default 0.2)",
    )
    p.add_argument("--ratios", help="train,val,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--by-time", action="store_true", help="loo: hold out the latest items")
    p.add_argument("--split-seed", type=int, help="seed of the split (default 42)")
    p.add_argument(
        "--train-file",
        help="--split files: training interactions, tab-separated user, item[, rating[, "
        "timestamp]] (the u1.base format)",
    )
    p.add_argument("--test-file", help="--split files: test interactions (same format)")
    p.add_argument(
        "--val-file", help="--split files: validation interactions (default: --val-share)"
    )
    p.add_argument(
        "--val-share",
        type=float,
        help="--split files / ml100k-fold without --val-file: share of each user's training "
        "interactions held out for validation (default 0.1)",
    )
    p.add_argument(
        "--fold", type=int, help="--split ml100k-fold: 1..5, reads uN.base/uN.test (default 1)"
    )
    p.add_argument(
        "--low-ratings",
        choices=LOW_RATINGS,
        help="ratings below --threshold: drop them (default), or treat them as seen: no "
        "positives, but never recommended back to their user",
    )


def _search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        default="default",
        help="comma-separated model names (search-space file stems) and groups ("
        + ", ".join(MODEL_GROUPS)
        + "; 'all' is every model); default: the default group",
    )
    p.add_argument("--num-samples", type=int, help="trials per model (default: space file)")
    p.add_argument("--max-epochs", type=int, help="ASHA's max_t (default: space file)")
    p.add_argument("--metric", default="ndcg@10", help="validation target (default ndcg@10)")
    p.add_argument(
        "--report-ks",
        default=",".join(map(str, REPORT_KS)),
        help="comma-separated cut-offs reported on the leaderboard, in MLflow and in the "
        "statistics (default 10,20; the target's cut-off is always added; at most 8 in all; "
        "a resume keeps the sweep's)",
    )
    p.add_argument(
        "--sampled-negatives",
        type=int,
        default=0,
        metavar="N",
        help="also rank each test item among N items sampled from those its user never "
        "interacted with (NCF's protocol: 99), into leaderboard_sampled.csv/.md beside the "
        "full ranking (default 0: full ranking only)",
    )
    p.add_argument(
        "--search",
        default="random",
        choices=SEARCHES,
        help="each model's searcher: random, optuna (Optuna's TPE), gp (Optuna's Gaussian "
        "process), cmaes (Optuna's CMA-ES; extra recsys-tune[cmaes]), bohb (BOHB's model behind "
        "each model's ASHA; extra recsys-tune[bohb]); default random",
    )
    p.add_argument(
        "--warm-start",
        action="store_true",
        help="start from the earlier sweeps in the tracking store on the same data and split "
        "(dataset fingerprint): their best configs run first (after the defaults), and Optuna's "
        "searchers get their trials as observations",
    )
    p.add_argument(
        "--time-budget",
        metavar="DURATION",
        help="stop starting trials after this long (e.g. 90s, 10m, 1h); the trials running "
        "then stop at their last checkpoint, and every model is reported with the trials it "
        "got (the test evaluation comes after)",
    )
    p.add_argument(
        "--cold-user-threshold",
        type=int,
        default=COLD_USER_THRESHOLD,
        metavar="N",
        help="test users with fewer than N training interactions are cold: leaderboard_buckets.md "
        f"reports them apart from the quartiles of the others (default {COLD_USER_THRESHOLD}, "
        "a 5-core's bound; 0: no cold bucket)",
    )
    p.add_argument(
        "--compare",
        metavar="A:B[,C:D]",
        help="compare these pairs of the sweep's models user by user on test (mean difference "
        "with its bootstrap interval, Wilcoxon and paired t-test, Holm across the pairs) into "
        "compare.md/.csv; 'all': every pair",
    )
    p.add_argument("--scheduler", default="asha", choices=SCHEDULERS)
    p.add_argument("--seed", type=int, default=0, help="root seed (trial seeds derive from it)")
    p.add_argument("--space-dir", help="folder of the search-space files (default searchspaces/)")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for a first look")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="after the search, train each model's best config with this many seeds in all "
        "and report the mean and spread on test (default 1: the best checkpoint alone)",
    )
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation: search on fold 1's validation, train each best config "
        "again on folds 2..K and report the mean over folds and their spread (--split ratio: "
        "seeded per-user folds; ml100k-fold: u1..uK; not with --seeds or --fold)",
    )


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; 0.25 packs 4 per GPU")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
    p.add_argument("--max-concurrent-trials", type=int, help="trials running at once")
    p.add_argument(
        "--max-failures",
        type=int,
        default=2,
        help="restarts of a failed trial from its last checkpoint (default 2)",
    )
    p.add_argument(
        "--no-reuse-actors",
        action="store_true",
        help="start each trial in a Ray actor of its own (default: a finished trial's actor "
        "runs the next waiting trial that asks for the same resources, saving its start-up)",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--experiment", help="MLflow experiment (default recsys-tune-<dataset>)")
    p.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS, else local)")
    p.add_argument("--storage-path", help="Ray Tune storage (default ./ray_results)")
    p.add_argument("--name", help="sweep name (default <dataset>-<timestamp>)")
    p.add_argument("--results-dir", help="results directory (default results/<name>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted sweep (named by --name or --results-dir, "
        "else the latest under results/)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress table")


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> SweepConfig:
    """The ``SweepConfig`` of a command line (``sys.argv[1:]`` when ``argv`` is None)."""
    argv = sys.argv[1:] if argv is None else argv
    if any("\x00" in word for word in argv):  # no path or name can hold one
        raise RecsysError("an argument holds a NUL character (\\x00); remove it")
    a = parser(prog).parse_args(argv)
    if a.resume:
        _check_resume_flags(argv, prog)
    prep = {
        "threshold": a.threshold,
        "min_user_interactions": a.min_user_interactions,
        "min_item_interactions": a.min_item_interactions,
        "split": a.split,
        "ratios": _ratios(a.ratios),
        "by_time": a.by_time or None,
        "seed": a.split_seed,
        "low_ratings": a.low_ratings,
        "train_file": _absolute(a.train_file),
        "val_file": _absolute(a.val_file),
        "test_file": _absolute(a.test_file),
        "fold": a.fold,
        "val_share": a.val_share,
        "cold_share": a.cold_share,
    }
    return SweepConfig(
        dataset=a.dataset,
        data_dir=_absolute(a.data_dir),
        dataset_options=dict(_option(text) for text in a.dataset_option),
        prep={k: v for k, v in prep.items() if v is not None},
        models=expand_models(a.models),
        num_samples=a.num_samples,
        max_epochs=a.max_epochs,
        gpus_per_trial=a.gpus_per_trial,
        cpus_per_trial=a.cpus_per_trial,
        metric=a.metric,
        report_ks=_report_ks(a.report_ks),
        sampled_negatives=a.sampled_negatives,
        cold_user_threshold=a.cold_user_threshold,
        compare=() if a.compare is None else parse_compare(a.compare),
        search=a.search,
        scheduler=a.scheduler,
        seed=a.seed,
        tracking_uri=a.tracking_uri,
        experiment=a.experiment,
        address=a.address,
        storage_path=_absolute(a.storage_path),
        name=a.name,
        resume=a.resume,
        results_dir=_absolute(a.results_dir),
        space_dir=_absolute(a.space_dir),
        max_concurrent_trials=a.max_concurrent_trials,
        max_failures=a.max_failures,
        reuse_actors=not a.no_reuse_actors,
        seeds=a.seeds,
        folds=a.folds,
        time_budget_s=None if a.time_budget is None else parse_duration(a.time_budget),
        warm_start=a.warm_start,
        smoke=a.smoke,
        verbose=0 if a.quiet else 1,
        command=" ".join(["python", "launch/sweep.py", *redact_command(argv)]),
    )


MAX_MESSAGE = 400


def one_line(message: str) -> str:
    """An error message as one line of at most :data:`MAX_MESSAGE` characters (a message may
    quote a user's value, and a value may be a whole file)."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 15] + " ... (cut short)"


def _given(argv: list[str], prog: str | None) -> set[str]:
    """The flags (their ``dest``) the command line sets itself, defaults left out."""
    p = parser(prog)
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def _check_resume_flags(argv: list[str], prog: str | None) -> None:
    """A resume keeps what its sweep searched; only where and how it runs may change."""
    # --tracking-uri: the same store with its credentials, which the saved state leaves out.
    allowed = {"resume", "name", "results_dir", "quiet", "tracking_uri", *RESUME_MAY_CHANGE}
    kept = _given(argv, prog) - allowed
    if kept:
        flags = ", ".join(f"--{d.replace('_', '-')}" for d in sorted(kept))
        allowed = ", ".join(f"--{d.replace('_', '-')}" for d in RESUME_MAY_CHANGE)
        raise RecsysError(
            f"--resume goes on with what the sweep was started with, so {flags} cannot change; "
            f"drop {'it' if len(kept) == 1 else 'them'} (a resume may change {allowed}, "
            f"--quiet), or start a new sweep with another --name"
        )


def _absolute(path: str | None) -> str | None:
    """A folder flag as an absolute path (URIs such as s3://... stay as they are): the sweep
    may run from another folder (see ``main``), and its resume command must work anywhere."""
    if path is None or "://" in path:
        return path
    try:
        return str(Path(path).expanduser().resolve())
    except RuntimeError:  # "~name" of a user this machine does not have
        raise RecsysError(
            f"cannot expand {path!r}: no such user's home folder; give the folder without '~' "
            "or with the home folder written out"
        ) from None


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise RecsysError(f"--dataset-option takes KEY=VALUE, got {text!r}")
    # YAML typing: 20000 is an int, 0.5 a float, true a bool, anything else a string.
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or type(error).__name__
        raise RecsysError(
            f"--dataset-option {key.strip()}: the value {value[:40]!r} does not parse "
            f"({problem}); quote it, or give a plain number, word or true/false"
        ) from None


def _report_ks(text: str) -> tuple[int, ...]:
    """``--report-ks 20,5,10`` -> ``(5, 10, 20)``: ascending, each once."""
    words = [w.strip() for w in text.split(",")]
    if not all(w.isascii() and w.isdigit() for w in words):
        raise RecsysError(
            f"--report-ks takes comma-separated positive integers, e.g. 5,10,20; got {text!r}"
        )
    return tuple(sorted({int(w) for w in words}))


def _ratios(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise RecsysError(
            f"--ratios takes three fractions like 0.8,0.1,0.1, got {text!r}"
        ) from None


def format_summary(result: SweepResult) -> str:
    """The leaderboard and where to look next, for the end of a sweep."""
    from recsys.tuning import tracking
    from recsys.tuning.results import markdown_board

    state = result.state
    after = result.wall_seconds - result.search_seconds
    more = state.config.seeds - 1
    seeds = f", {more} more seed{'s' if more > 1 else ''} per model" if more else ""
    lines = [
        f"sweep {state.name}: {len(result.outcomes)} models in {result.wall_seconds:.0f} s "
        f"(search {result.search_seconds:.0f} s; start-up, test evaluation{seeds} and results "
        f"{after:.0f} s)",
        markdown_board(result.leaderboard).rstrip(),
    ]
    for outcome in result.failed_models:
        lines.append(f"FAILED:   {outcome.model} has no result: {outcome.error}")
    for outcome in (o for o in result.outcomes if o.skipped):
        lines.append(f"SKIPPED:  {outcome.model} was not searched: {outcome.skipped}")
    if state.time_cut:
        lines.append(time_line(result))
    if result.trials_failed:
        lost = ", ".join(f"{o.model} {o.trials_failed}" for o in result.outcomes if o.trials_failed)
        lines.append(
            f"LOST:     {result.trials_failed} trials failed after their restarts ({lost})"
        )
    if result.failed_models or result.trials_failed:
        lines.append(f"          retry the failed trials with: {state.resume_command()}")
    board = result.leaderboard
    if board.folds:
        from recsys.tuning.results import markdown_folds

        lines.append(markdown_folds(board).rstrip())
    if board.sampled:
        from recsys.tuning.leaderboard import order_agreement

        full = [r.model for r in board.rows if r.has_scores]
        discordant, pairs = order_agreement(full, [r.model for r in board.sampled_order()])
        lines.append(
            f"sampled:  {board.negatives} negatives per test item: leaderboard_sampled.md; its "
            f"order and the full ranking's disagree on {discordant} of {pairs} model pairs"
        )
    lines.append(f"results:  {state.results_dir}")
    if not state.tracked:
        lines += [
            f"MLflow:   NOT LOGGED: the store {redact(state.tracking_uri)} broke during the "
            f"sweep ({state.tracking_problem}); the results above and in {state.results_dir} "
            "are complete",
            f"          log the sweep again with: {state.resume_command()} (a new database "
            "where the old one was), or add --tracking-uri URI for another store",
        ]
        return "\n".join(lines)
    lines += [
        f"MLflow:   experiment {state.experiment!r}, parent run {state.parent_run_id}",
        f"          {tracking.ui_command(state.tracking_uri)}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Runs a sweep from a command line; returns its exit status (``EXIT_*``)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from recsys.tuning.sweep import run_sweep

    try:
        cfg = parse_args(argv, prog)
        if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
            # A Ray job's driver starts in the job's unpacked working_dir, which Ray's runtime
            # env agent may replace while trials start on this node; the driver's working
            # directory would then be gone (Tune needs one). Its folder flags are absolute.
            os.chdir(tempfile.gettempdir())
        result = run_sweep(cfg)
    except (RecsysError, SweepEnded) as error:  # each type carries its exit status
        print(f"{error.label}: {one_line(str(error))}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print("interrupted: continue with: python launch/sweep.py --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_summary(result))
    return exit_status(result)


def time_line(result: SweepResult) -> str:
    """The summary's line of a sweep its time budget cut: each model with the trials it got."""
    budget = format_duration(result.state.config.time_budget_s or 0)
    got = ", ".join(f"{o.model} {o.trials}" for o in result.outcomes)
    none = [o.model for o in result.unreached]
    unreached = f"; no trial of {', '.join(none)} reported in time" if none else ""
    return (
        f"TIME:     the time budget {budget} ended the search after {result.search_seconds:.0f} "
        f"s, before every trial had run its budget: trials run {got}{unreached}; the "
        f"leaderboard is of those; a new sweep with --warm-start goes on from them"
    )


def exit_status(result: SweepResult) -> int:
    """The exit status of a sweep that ran to its end (see ``EXIT_*``)."""
    if result.failed_models or not result.state.tracked:
        return EXIT_MODEL_FAILED
    if result.state.time_cut:
        return EXIT_TIME_BUDGET
    return EXIT_TRIALS_LOST if result.trials_failed else EXIT_OK


def entry() -> int:
    """``recsys-tune``: the installed command; ``recsys-tune sweep [flags]`` runs a sweep."""
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: recsys-tune sweep [flags]   (recsys-tune sweep --help lists the flags)")
        return 0 if argv else 2
    if argv[0] != "sweep":
        print(
            f"error: unknown command {argv[0]!r}; the command is: recsys-tune sweep [flags]",
            file=sys.stderr,
        )
        return 2
    return main(argv[1:], prog="recsys-tune sweep")

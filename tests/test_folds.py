"""--folds K (``recsys.data.folds``, ``recsys.tuning.folds``): fold layouts checked for
disjointness and coverage, the configs refused, fold runs scored and combined over folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.data import PrepConfig, load_folds
from recsys.data.folds import fold_parts
from recsys.data.interactions import Interactions, make_frame
from recsys.data.predefined import check_config
from recsys.errors import RecsysError


def _raw(n_users=12, n_items=25, seed=0) -> Interactions:
    """Users with 1..n_users positives each (user 0 has one: it cannot be tested)."""
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, n_users + 1)
    users = np.repeat(np.arange(n_users), sizes)
    items = np.concatenate([rng.choice(n_items, s, replace=False) for s in sizes])
    frame = make_frame(users, items, None, np.arange(users.size, dtype=float))
    return Interactions("toy", frame, {})


def _keys(data, part: str) -> set[tuple]:
    p = getattr(data, part)
    return set(zip(data.user_ids[p.users].tolist(), data.item_ids[p.items].tolist(), strict=True))


def test_fold_parts_deal_each_user_evenly_and_keep_single_pairs_in_train():
    users = np.array([0] * 7 + [1] + [2] * 3)
    part = fold_parts(users, 3, np.random.default_rng(0))
    assert part[7] == -1  # user 1's one pair: there is no fold that could test it
    assert sorted(np.bincount(part[:7], minlength=3).tolist()) == [2, 2, 3]
    assert sorted(part[8:].tolist()) == [0, 1, 2]
    again = fold_parts(users, 3, np.random.default_rng(0))
    assert np.array_equal(part, again)
    # Over many users of four pairs, parts differ by at most one and each part gets extras.
    many = np.repeat(np.arange(300), 4)
    parts = fold_parts(many, 3, np.random.default_rng(1)).reshape(300, 4)
    counts = np.stack([np.bincount(p, minlength=3) for p in parts])
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()
    assert set(np.argmax(counts, axis=1).tolist()) == {0, 1, 2}


def test_per_user_folds_cover_every_interaction_once_and_are_disjoint(tmp_path):
    raw = _raw()
    config = PrepConfig(threshold=None, folds=3, seed=5, val_share=0.25)
    folds = load_folds(raw, config=config, cache_dir=tmp_path)
    assert len(folds) == 3
    everything = set(zip(raw.frame["user_id"].tolist(), raw.frame["item_id"].tolist(), strict=True))
    tests = [_keys(f, "test") for f in folds]
    for i, fold in enumerate(folds):
        train, val, test = (_keys(fold, s) for s in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == everything  # nothing dropped: every test user trains
        assert fold.summary["fold"] == i + 1 and fold.summary["fold_train_only_users"] == 1
        for j in range(i):
            assert not (tests[i] & tests[j])
    # Every pair of a user with at least two is tested in exactly one fold; user 0's never.
    assert set.union(*tests) == {p for p in everything if p[0] != 0}
    assert sum(map(len, tests)) == len(everything) - 1
    # Each user's test parts differ in size by at most one.
    for user in range(1, 12):
        sizes = [sum(1 for u, _ in t if u == user) for t in tests]
        assert max(sizes) - min(sizes) <= 1
    # Deterministic for a seed (cache or not), another seed another layout.
    again = load_folds(raw, config=config, cache_dir=tmp_path, use_cache=False)
    assert [_keys(f, "test") for f in again] == tests
    assert [_keys(f, "val") for f in again] == [_keys(f, "val") for f in folds]
    other = load_folds(raw, config=PrepConfig(threshold=None, folds=3, seed=6), use_cache=False)
    assert [_keys(f, "test") for f in other] != tests
    assert len({f.fingerprint for f in folds}) == 3


def _ml100k(folder: Path, n: int = 5) -> set[tuple]:
    """A GroupLens ml-100k folder whose u1..u5 are made as GroupLens' mku.sh makes them: the
    i-th fifth of u.data is ui.test, the rest ui.base."""
    rng = np.random.default_rng(0)
    lines = [
        f"{u}\t{i}\t5\t{t}"
        for t, (u, i) in enumerate(
            (u, i) for u in range(1, 7) for i in rng.choice(20, 5, False) + 1
        )
    ]  # 30 ratings, 6 users x 5 items
    lines = [lines[j] for j in rng.permutation(len(lines))]
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    (folder / "u.item").write_text(
        "".join(f"{i}|Movie {i}|||x|{'|'.join('0' * 19)}\n" for i in range(1, 21))
    )
    step = len(lines) // 5
    for f in range(1, n + 1):
        test = lines[(f - 1) * step : f * step]
        base = lines[: (f - 1) * step] + lines[f * step :]
        (folder / f"u{f}.test").write_text("\n".join(test) + "\n")
        (folder / f"u{f}.base").write_text("\n".join(base) + "\n")
    return {tuple(map(int, line.split("\t")[:2])) for line in lines}


def test_ml100k_folds_are_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path / "home"))
    everything = _ml100k(tmp_path / "ml-100k")
    config = PrepConfig(split="ml100k-fold", folds=5, val_share=0.2)
    folds = load_folds("ml-100k", tmp_path / "ml-100k", config, cache_dir=tmp_path / "cache")
    tests = [_keys(f, "test") for f in folds]
    assert all(len(t) == 6 for t in tests)  # each ui.test's six ratings
    assert set.union(*tests) == everything and sum(map(len, tests)) == len(everything)
    for fold in folds:
        parts = [_keys(fold, s) for s in ("train", "val", "test")]
        assert sum(map(len, parts)) == len(everything) == len(set.union(*parts))
    three = load_folds("ml-100k", tmp_path / "ml-100k", PrepConfig(split="ml100k-fold", folds=3))
    assert [_keys(f, "test") for f in three] == tests[:3]


@pytest.mark.parametrize(
    "config,expected",
    [
        (PrepConfig(folds=1), "at least 2"),
        (PrepConfig(folds=True), "at least 2"),
        (PrepConfig(split="loo", folds=3), "does not apply to --split loo"),
        (PrepConfig(split="temporal", folds=3), "does not apply to --split temporal"),
        (PrepConfig(split="ml100k-fold", folds=6), "has 5 folds"),
        (PrepConfig(folds=3, ratios=(0.8, 0.1, 0.1)), "--ratios does not apply with --folds"),
        (PrepConfig(folds=3, fold=4), "one of 1..3"),
        (PrepConfig(folds=3, val_share=1.5), "--val-share"),
    ],
)
def test_fold_parameters_that_do_not_fit_are_one_line_errors(config, expected):
    with pytest.raises(RecsysError, match=expected) as error:
        check_config(config, "toy", None)
    assert "\n" not in str(error.value)


# --- the sweep's side: flags, fold runs, the leaderboard over folds -------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--folds", "1"], "--folds must be an integer of at least 2, got 1"),
        (["--folds", "3", "--seeds", "2"], "--folds and --seeds both train each best config"),
        (["--folds", "3", "--split", "loo"], "--folds does not apply to --split loo"),
        (["--folds", "3", "--split", "global"], "--folds does not apply to --split global"),
        (["--folds", "3", "--ratios", "0.8,0.1,0.1"], "--ratios does not apply with --folds"),
        (["--folds", "6", "--split", "ml100k-fold"], "has 5 folds (u1..u5)"),
        (["--folds", "3", "--split", "ml100k-fold", "--fold", "2"], "drop --fold"),
        (["--folds", "3", "--val-share", "0"], "--val-share 0.0 must be a fraction"),
        (["--folds", "3", "--split", "ml100k-fold", "--data-dir", "/"], "holds no u1.base"),
    ],
)
def test_fold_flags_that_do_not_fit_are_one_line_errors_before_anything(
    tmp_path, monkeypatch, argv, expected
):
    import contextlib
    import io

    from recsys import cli

    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["--models", "popularity", *argv])
    assert code == 2 and err.getvalue().count("\n") == 1 and expected in err.getvalue()
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_folds_parse_into_the_sweep_config_and_each_fold_s_split():
    from recsys import cli
    from recsys.tuning.config import fold_configs

    cfg = cli.parse_args(["--folds", "4", "--val-share", "0.2", "--split-seed", "7"])
    assert cfg.folds == 4 and cli.parse_args([]).folds is None
    configs = fold_configs(cfg)
    assert [(c.folds, c.fold, c.seed, c.val_share) for c in configs] == [
        (4, f, 7, 0.2) for f in (1, 2, 3, 4)
    ]


def _fold_setup(model: str, config: dict, epochs: int):
    """Two folds of a toy dataset, ``model`` trained on fold 1 as its best checkpoint, and its
    fold run on fold 2 (trained without Ray, as the Ray task trains it)."""
    from recsys.train import Trainer
    from recsys.tuning.outcome import ModelOutcome
    from recsys.tuning.replicas import SeedRun, train_weights
    from recsys.tuning.scoring import EvalProtocol, Fold, Scored

    splits = load_folds(
        _raw(30, 40, 2), config=PrepConfig(threshold=None, folds=2), use_cache=False
    )
    trainer = Trainer(model, config, splits[0], seed=11)
    for _ in trainer.run(epochs, eval_every=epochs):
        pass
    test = trainer.evaluate_users("test", (10,))
    means = {k: float(v) for k, v in test.means().items()}
    outcome = ModelOutcome(
        model, "t", config, 11, epochs, {}, means, 1, epochs, 0.0, 0.0,
        seeds=[11], seed_tests=[means],
    )  # fmt: skip
    folds = [Fold(i + 1, s, EvalProtocol((10,)), s.without_test()) for i, s in enumerate(splits)]
    runs = []
    if model == "bpr_mf":
        weights = train_weights(model, config, folds[1].trial_data, 11, epochs, "cpu", 1)
        runs = [SeedRun(11, weights, fold=2)]
    return Scored(outcome, trainer, None, [(11, test)]), runs, folds


def test_fold_runs_are_scored_on_their_fold_s_test_and_averaged():
    from recsys.train import Trainer
    from recsys.tuning.results import per_user_frame
    from recsys.tuning.scoring import add_fold_runs

    config = {"dim": 8, "lr": 0.01, "batch_size": 64}
    scored, runs, folds = _fold_setup("bpr_mf", config, 2)
    out = add_fold_runs(scored, runs, folds)
    o = out.outcome
    assert o.folds == [1, 2] and o.fold_tests[0] == scored.outcome.test
    # Fold 2's score is that of the same training on fold 2, evaluated on fold 2's test.
    again = Trainer("bpr_mf", config, folds[1].data, seed=11)
    for _ in again.run(2, eval_every=2):
        pass
    expected = again.evaluate("test", (10,))
    assert o.fold_tests[1]["ndcg@10"] == pytest.approx(expected["ndcg@10"])
    values = [t["ndcg@10"] for t in o.fold_tests]
    assert o.test["ndcg@10"] == pytest.approx(np.mean(values))
    assert o.test_std["ndcg@10"] == pytest.approx(np.std(values, ddof=1))
    frame = per_user_frame(out.per_user, folds[0].data, ["ndcg@10"])
    assert sorted(frame["fold"].unique()) == [1, 2]
    for fold in folds:
        users = frame.loc[frame["fold"] == fold.number, "user_id"]
        assert sorted(users) == sorted(fold.data.user_ids[np.unique(fold.data.test.users)])
    # A fold run that failed: the mean is over the folds that trained.
    lonely = add_fold_runs(scored, [], folds).outcome
    assert lonely.folds == [1] and lonely.test == scored.outcome.test
    assert add_fold_runs(scored, runs, ()) is scored  # no cross-validation


def test_a_closed_form_model_is_fitted_on_every_fold_without_a_run():
    from recsys.train import Trainer
    from recsys.tuning.scoring import add_fold_runs

    scored, runs, folds = _fold_setup("popularity", {}, 1)
    o = add_fold_runs(scored, runs, folds).outcome
    fitted = Trainer("popularity", {}, folds[1].data, seed=11).evaluate("test", (10,))
    assert o.folds == [1, 2] and o.fold_tests[1]["ndcg@10"] == pytest.approx(fitted["ndcg@10"])
    assert o.fold_tests[1] != o.fold_tests[0]  # another training part, another test


def test_a_stratified_bootstrap_is_of_the_mean_over_folds():
    from recsys.stats import bootstrap_ci

    # Fold 1: 30 users all 1.0; fold 2: 10 users all 0.0. The mean over folds is 0.5 in every
    # resample; pooled, the (fold, user) pairs average 0.75 and the resamples vary.
    values = np.r_[np.ones(30), np.zeros(10)]
    strata = np.r_[np.ones(30), np.full(10, 2)]
    assert np.allclose(bootstrap_ci(values, seed=1, strata=strata), [0.5, 0.5])
    low, high = bootstrap_ci(values, seed=1)
    assert low < 0.75 < high
    # One stratum is the plain bootstrap, draw for draw.
    x = np.random.default_rng(0).random((25, 2))
    assert np.array_equal(bootstrap_ci(x, seed=3), bootstrap_ci(x, seed=3, strata=np.zeros(25)))


def _fold_outcome(model: str, per_fold: list[float]):
    from recsys.tuning.outcome import ModelOutcome

    tests = [{"ndcg@10": v, "recall@10": v} for v in per_fold]
    base = ModelOutcome(
        model, f"t-{model}", {}, 1, 1, dict(tests[0]), dict(tests[0]), 1, 1, 0.0, 0.0,
        seeds=[1], seed_tests=[dict(tests[0])],
    )  # fmt: skip
    return base.with_folds(list(range(1, len(tests) + 1)), tests)


def test_the_leaderboard_over_folds_pairs_fold_user_units(tmp_path):
    import pandas as pd

    from recsys.data.dataset import Pairs, SplitData
    from recsys.tuning.leaderboard import Leaderboard
    from recsys.tuning.results import markdown_folds, write_results

    outcomes = [_fold_outcome("a", [0.6, 0.4]), _fold_outcome("b", [0.2, 0.3])]
    assert outcomes[0].test["ndcg@10"] == pytest.approx(0.5)
    assert outcomes[0].test_std["ndcg@10"] == pytest.approx(np.std([0.6, 0.4], ddof=1))

    def per_user(values_by_fold):
        # The same 10 users in both folds: each (fold, user) pair is a unit of its own.
        frames = [
            pd.DataFrame({"user_id": np.arange(10), "seed": 1, "fold": f, "test_ndcg_at_10": v})
            for f, v in enumerate(values_by_fold, 1)
        ]
        return pd.concat(frames, ignore_index=True)

    hits = lambda n: (np.arange(10) < n).astype(float)  # noqa: E731
    frames = {"a": per_user([hits(6), hits(4)]), "b": per_user([hits(2), hits(3)])}
    board = Leaderboard.build(outcomes, "ndcg@10", frames, seed=0, ks=(10,))
    assert board.folds == 2 and [r.model for r in board.rows] == ["a", "b"]
    a = board.row("a")
    low, high = a.intervals["test_ndcg_at_10"]
    assert low <= 0.5 <= high
    # Paired over 20 (fold, user) units: a - b differs on 5 of them (all in a's favour).
    from recsys.stats import paired_test

    expected = paired_test(
        np.r_[hits(2), hits(3)], np.r_[hits(6), hits(4)]
    )  # b against the best, a
    assert board.row("b").p_wilcoxon == pytest.approx(expected.wilcoxon_p)
    frame = board.to_frame().set_index("model")
    assert frame.loc["a", "folds"] == 2
    assert frame.loc["a", "test_ndcg_at_10_fold_min"] == 0.4
    assert frame.loc["a", "test_ndcg_at_10_fold_max"] == 0.6
    folds = board.to_folds_frame()
    assert folds[["model", "fold"]].values.tolist() == [["a", 1], ["a", 2], ["b", 1], ["b", 2]]
    assert folds["test_ndcg_at_10"].tolist() == [0.6, 0.4, 0.2, 0.3]
    table = markdown_folds(board)
    assert "| a | 0.6000 | 0.4000 | 0.5000 | 0.1414 | 28.3% | 0.2000 | 40.0% |" in table
    # Into the results directory: the per-fold table beside the leaderboard.
    results = tmp_path / "results"
    for model, f in frames.items():
        (results / "per_user").mkdir(parents=True, exist_ok=True)
        f.to_parquet(results / "per_user" / f"{model}.parquet")
    data = SplitData(
        "d", "d", np.arange(10), np.arange(3), [""] * 3, Pairs.empty(), Pairs.empty(), None
    )
    write_results(results, data, outcomes, "ndcg@10", ks=(10,))
    written = pd.read_csv(results / "leaderboard_folds.csv")
    assert written["test_ndcg_at_10"].tolist() == [0.6, 0.4, 0.2, 0.3]
    assert "std (folds)" in (results / "leaderboard.md").read_text()
    assert "Test ndcg@10 on each fold" in (results / "leaderboard.md").read_text()


@pytest.mark.slow
def test_a_folds_sweep_retrains_each_best_config_on_every_fold(ray_session, tmp_path, monkeypatch):
    """A real sweep with --folds 2: one search, the best of each model trained again on fold 2
    (a Ray task for the trainable model, a refit for the closed-form one), the per-fold table,
    the per-user fold column and one MLflow run per fold."""
    import shutil

    import pandas as pd
    import sweep_fakes

    from recsys.tuning import tracking
    from recsys.tuning.config import SweepConfig
    from recsys.tuning.space import default_space_dir
    from recsys.tuning.sweep import run_sweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_TUNE_DATA", str(tmp_path / "cache"))
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    shutil.copy(default_space_dir() / "popularity.yaml", spaces)
    (spaces / "curve.yaml").write_text(sweep_fakes.CURVE_SPACE)
    cfg = SweepConfig(
        dataset="synthetic",
        dataset_options={"n_users": 60, "n_items": 30, "n_interactions": 1500},
        models=("popularity", "curve"),
        folds=2,
        space_dir=str(spaces),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        storage_path=str(tmp_path / "ray"),
        results_dir=str(tmp_path / "results"),
        seed=3,
        verbose=0,
        command="pytest",
    )
    result = run_sweep(cfg)
    assert result.state.status == "finished" and not result.failed_models
    results = tmp_path / "results"
    folds = pd.read_csv(results / "leaderboard_folds.csv")
    assert sorted(map(tuple, folds[["model", "fold"]].to_numpy().tolist())) == [
        ("curve", 1), ("curve", 2), ("popularity", 1), ("popularity", 2),
    ]  # fmt: skip
    for outcome in result.outcomes:
        per_user = pd.read_parquet(results / "per_user" / f"{outcome.model}.parquet")
        assert sorted(per_user["fold"].unique().tolist()) == [1, 2]
        by_fold = per_user.groupby("fold")["test_ndcg_at_10"].mean()
        assert outcome.test["ndcg@10"] == pytest.approx(by_fold.mean(), abs=1e-6)
        client = tracking.client(result.state.tracking_uri)
        best = client.get_run(outcome.best_run_id)
        runs = client.search_runs(
            [best.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{outcome.best_run_id}' "
            f"and tags.`{tracking.TAG_ROLE}` = 'fold'",
        )
        assert sorted(r.data.tags[tracking.TAG_FOLD] for r in runs) == ["1", "2"]

"""--seeds (``recsys.tuning.replicas``, scored by ``recsys.tuning.scoring``): the seed runs of a
best config, trained without Ray here, and how they combine."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import block_split

from recsys.train import Trainer
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.replicas import SeedRun, replica_seeds, train_weights
from recsys.tuning.scoring import Scored, add_seed_runs

CONFIG = {"dim": 8, "lr": 0.01, "batch_size": 64}


def _best(model: str, config: dict, data, epochs: int) -> Scored:
    trainer = Trainer(model, config, data, seed=11)
    for _ in trainer.run(epochs, eval_every=epochs):
        pass
    test = trainer.evaluate_users("test", (10, 20))
    outcome = ModelOutcome(
        model=model,
        trial_id="t",
        config=config,
        seed=11,
        best_epoch=epochs,
        val={},
        test=test.means(),
        trials=1,
        epochs=epochs,
        wall_seconds=0.0,
        seconds_per_epoch=0.0,
        seeds=[11],
        seed_tests=[test.means()],
    )
    return Scored(outcome, trainer, None, [(11, test)])


def test_seed_runs_reproduce_the_same_training_and_combine_into_mean_and_std():
    data = block_split()
    best = _best("bpr_mf", CONFIG, data, 3)
    seeds = replica_seeds(11, 3)
    assert seeds[0] == 11 and len(set(seeds)) == 3 and replica_seeds(11, 3) == seeds
    runs = [
        SeedRun(s, train_weights("bpr_mf", CONFIG, data.without_test(), s, 3, "cpu", 1))
        for s in seeds[1:]
    ]
    # A seed run trains exactly what a Trainer with that seed trains.
    again = train_weights("bpr_mf", CONFIG, data.without_test(), seeds[1], 3, "cpu", 1)
    assert again == runs[0].weights
    best = add_seed_runs(best, runs, 3, data, "ndcg@10")
    outcome = best.outcome
    assert outcome.seeds == seeds and len(outcome.seed_tests) == 3
    values = [t["ndcg@10"] for t in outcome.seed_tests]
    assert outcome.test["ndcg@10"] == pytest.approx(np.mean(values))
    assert outcome.test_std["ndcg@10"] == pytest.approx(np.std(values, ddof=1))
    assert outcome.test_std["ndcg@10"] > 0  # different seeds, different models
    assert [s for s, _ in best.per_user] == seeds


def test_a_failed_seed_run_leaves_the_mean_over_the_others():
    data = block_split()
    best = _best("bpr_mf", CONFIG, data, 2)
    seed = replica_seeds(11, 3)[1]
    runs = [SeedRun(seed, train_weights("bpr_mf", CONFIG, data.without_test(), seed, 2, "cpu", 1))]
    best = add_seed_runs(best, runs, 3, data, "ndcg@10")  # the third seed failed
    assert best.outcome.seeds == [11, seed] and len(best.outcome.seed_tests) == 2
    lonely = _best("bpr_mf", CONFIG, data, 2)
    before = dict(lonely.outcome.test)
    lonely = add_seed_runs(lonely, [], 3, data, "ndcg@10")  # every other seed failed
    assert lonely.outcome.test == before and lonely.outcome.test_std == {}


def test_a_closed_form_model_counts_every_seed_with_the_same_scores():
    data = block_split()
    best = add_seed_runs(_best("popularity", {}, data, 1), [], 3, data, "ndcg@10")
    assert len(best.outcome.seeds) == 3 and best.outcome.test_std["ndcg@10"] == 0.0
    assert len(best.per_user) == 1  # fitted once


def test_a_seed_run_refuses_the_test_split():
    with pytest.raises(RuntimeError, match="test split"):
        train_weights("bpr_mf", CONFIG, block_split(), 1, 1, "cpu", 1)

"""The final evaluation without Ray: a best checkpoint scored by the sweep's protocol (reported
cut-offs, beyond-accuracy metrics, sampled candidates), into the results files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import block_split
from sweep_fakes import FolderCheckpoint

from recsys.train import Trainer
from recsys.tuning.best import Choice
from recsys.tuning.config import SweepConfig
from recsys.tuning.results import per_user_names, write_model_outputs, write_results
from recsys.tuning.scoring import EvalProtocol, score
from recsys.tuning.trainable import save_checkpoint


def _choice(model: str, data, folder) -> Choice:
    folder.mkdir()
    save_checkpoint(Trainer(model, {}, data, seed=1), folder)
    return Choice(model, f"t-{model}", FolderCheckpoint(folder), {}, 1, 1, 0.0)


def test_models_scored_by_the_protocol_fill_both_leaderboards(tmp_path):
    data = block_split()
    cfg = SweepConfig(dataset="blocks", report_ks=(5, 10), sampled_negatives=9, seed=2)
    protocol = EvalProtocol.of(cfg, data)
    names = per_user_names(cfg.metric, cfg.report_ks, cfg.sampled_negatives)
    outcomes = []
    for model in ("itemknn", "popularity"):
        scored = score(_choice(model, data, tmp_path / model), [], data, cfg.metric, protocol)
        test = scored.outcome.test
        assert {"recall@5", "gini@5", "arp@10", "sampled_ndcg@5", "sampled_hit@10"} <= set(test)
        assert "recall@20" not in test and "sampled_ndcg@5" not in scored.outcome.val
        write_model_outputs(
            tmp_path / "results", scored.outcome, scored.trainer.model, data, cfg.metric,
            scored.per_user, names,
        )  # fmt: skip
        outcomes.append(scored.outcome)
    itemknn = outcomes[0].test
    # The checkerboard: ItemKNN ranks each user's held-out item above every other group's item.
    assert itemknn["hit@10"] == 1.0 and itemknn["sampled_hit@10"] == 1.0
    assert itemknn["coverage@10"] == 1.0
    board = write_results(
        tmp_path / "results", data, outcomes, cfg.metric, ks=cfg.report_ks, negatives=9
    )
    per_user = pd.read_parquet(tmp_path / "results" / "per_user" / "itemknn.parquet")
    assert {"test_novelty_at_5", "test_arp_at_10", "test_sampled_ndcg_at_10"} <= set(per_user)
    assert "test_coverage_at_10" not in per_user  # of the catalogue, not of a user
    sampled = pd.read_csv(tmp_path / "results" / "leaderboard_sampled.csv")
    assert set(sampled["model"]) == {"itemknn", "popularity"}
    assert {"test_sampled_ndcg_at_5_ci_low", "rank_full", "rank_sampled"} <= set(sampled)
    frame = board.to_frame().set_index("model")
    assert frame.loc["itemknn", "test_novelty_at_5_ci_low"] <= itemknn["novelty@5"]
    np.testing.assert_allclose(frame.loc["itemknn", "test_gini_at_10"], itemknn["gini@10"])
    assert pytest.approx(frame.loc["itemknn", "test_ndcg_at_10"]) == itemknn["ndcg@10"]

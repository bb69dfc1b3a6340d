"""``TrialRecord`` from Tune's results, and ``TrialEnd``, the one rule of how a trial ended."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from recsys.tuning.records import TrialEnd, records_of
from recsys.tuning.trainable import MODEL_KEY, trial_seed


@pytest.mark.parametrize(
    ("failed", "epoch", "end"),
    [(True, 10, TrialEnd.FAILED), (False, 4, TrialEnd.STOPPED), (False, 10, TrialEnd.FINISHED)],
)
def test_one_rule_ends_a_trial(failed, epoch, end):
    assert TrialEnd.of(failed, epoch, max_epochs=10) is end


def _result(model, epochs, error=None, trial_id="t1", **config):
    frame = pd.DataFrame(
        {
            "epoch": epochs,
            "val_ndcg_at_10": [0.1 * e for e in epochs],
            "epoch_seconds": [0.5] * len(epochs),
            "timestamp": [100.0 + e for e in epochs],
            "time_total_s": [float(e) for e in epochs],
        }
    )
    return SimpleNamespace(
        config={MODEL_KEY: model, **config},
        metrics_dataframe=frame if epochs else None,
        metrics={"trial_id": trial_id} if epochs else {},
        error=error,
        best_checkpoints=[("ckpt", {"epoch": epochs[-1]})] if epochs else [],
        path=f"/runs/{trial_id}",
    )


def test_records_of_reads_tunes_results_once_per_trial():
    grid = [
        # A resumed trial reports epochs 4 and 6 again: the last report of each epoch counts.
        _result("a", [2, 4, 6, 4, 6, 8], trial_id="x", lr=0.1),
        _result("a", [2], trial_id="y", lr=0.2),
        _result("b", [], error=RuntimeError("boom"), trial_id="z"),
    ]
    records = records_of(grid, {"a": 8, "b": 8}, root_seed=3)
    (x, y), (z,) = records["a"], records["b"]
    assert [r["epoch"] for r in x.reports] == [2, 4, 6, 8] and x.last_epoch == 8
    assert x.end is TrialEnd.FINISHED and y.end is TrialEnd.STOPPED and z.end is TrialEnd.FAILED
    assert x.config == {"lr": 0.1} and x.seed == trial_seed(3, "a", {"lr": 0.1})
    assert x.values("val_ndcg_at_10") == [(e, pytest.approx(0.1 * e)) for e in (2, 4, 6, 8)]
    assert x.train_seconds == pytest.approx(0.5 * 8)  # gaps of 2 epochs at 0.5 s each
    assert x.started_at == 100.0 and x.last_report_at == 108.0
    assert z.reports == () and z.error == "boom" and z.trial_id == ""

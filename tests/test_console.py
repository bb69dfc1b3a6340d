"""What the sweep's console prints: Tune's own warnings that say nothing true are dropped."""

from __future__ import annotations

import logging

from recsys.tuning import console


def test_tunes_warning_for_trials_that_never_reported_is_dropped_and_others_kept(caplog):
    console.hide_unreported_trials()
    console.hide_unreported_trials()  # once only
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    assert sum(type(f).__name__ == "_NoReportsYet" for f in logger.filters) == 1
    missing = "- train_trial_1: FileNotFoundError('Could not fetch metrics for train_trial_1')"
    broken = "- train_trial_2: JSONDecodeError('Expecting value')"
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning(f"Failed to fetch metrics for 1 trial(s):\n{missing}")
        logger.warning(f"Failed to fetch metrics for 2 trial(s):\n{missing}\n{broken}")
        logger.warning("something else")
    kept = [r.getMessage() for r in caplog.records]
    assert kept == [
        f"Failed to fetch metrics for 2 trial(s):\n{missing}\n{broken}",
        "something else",
    ]

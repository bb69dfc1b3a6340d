"""A trial's accounting: CPU seconds of the process since the trial started, and its peak RSS,
started over for each trial."""

from __future__ import annotations

import time

import numpy as np

from recsys.tuning.accounting import TrialUsage, peak_rss_bytes, reset_peak


def test_cpu_seconds_count_from_the_trials_start():
    usage = TrialUsage()
    first = usage.report()["cpu_seconds"]
    started = time.process_time()
    while time.process_time() - started < 0.05:
        pass
    assert usage.report()["cpu_seconds"] > first >= 0


def test_peak_rss_sees_a_large_allocation_and_starts_over_after_it():
    reset_peak()
    before = peak_rss_bytes()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page touched
    during = TrialUsage().report()["peak_rss_bytes"]
    assert during - before >= 60 * 2**20
    del block
    reset_peak()
    assert peak_rss_bytes() < during - 32 * 2**20

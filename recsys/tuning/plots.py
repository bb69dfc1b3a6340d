"""The results directory's plots: learning curves per model and test metrics by model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.io import atomic_path

CURVE_COLUMNS = ["trial_id", "epoch", "value", "stopped_early"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _savefig(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def plot_curves(curves: Sequence[Mapping[str, Any]], model: str, label: str, path: Path) -> None:
    """Validation ``label`` vs epoch, one line per trial; a cross ends an early-stopped trial."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    frame = pd.DataFrame(list(curves), columns=CURVE_COLUMNS)
    for _, trial in frame.groupby("trial_id", sort=True):
        trial = trial.sort_values("epoch")
        (line,) = ax.plot(trial["epoch"], trial["value"], marker=".", linewidth=1)
        if bool(trial["stopped_early"].iloc[-1]):
            ax.plot(trial["epoch"].iloc[-1], trial["value"].iloc[-1], "x", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{model}: {frame['trial_id'].nunique()} trials (x: stopped early by ASHA)")
    ax.grid(alpha=0.3)
    _savefig(fig, path)


def plot_test_bars(board: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Grouped bars: one group per leaderboard column (a test metric), one bar per model, with
    the column's 95% interval (``<column>_ci_low`` / ``_ci_high``) as error bars where given."""
    cols = [c for c in columns if c in board]
    fig, ax = _pyplot().subplots(figsize=(max(6, 1.2 * len(cols)), 4))
    width = 0.8 / max(1, len(board))
    x = np.arange(len(cols))
    for j, (_, row) in enumerate(board.iterrows()):
        values = np.array([row[c] for c in cols], dtype=float)
        low = np.array([row.get(f"{c}_ci_low", np.nan) for c in cols], dtype=float)
        high = np.array([row.get(f"{c}_ci_high", np.nan) for c in cols], dtype=float)
        errors = None
        if np.isfinite(low).all() and np.isfinite(high).all():
            errors = np.stack([values - low, high - values])
        ax.bar(x + j * width, values, width, yerr=errors, capsize=2, label=row["model"])
    ax.set_xticks(x + 0.4 - width / 2, [c.removeprefix("test_") for c in cols], rotation=30)
    ax.set_ylabel("test (bars: 95% bootstrap interval)")
    ax.legend(fontsize=7, ncols=2)
    ax.grid(axis="y", alpha=0.3)
    _savefig(fig, path)

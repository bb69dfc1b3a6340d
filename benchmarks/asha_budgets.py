"""Which ASHA budget keeps the best trials: replays ASHA's rungs over complete learning curves.

First measure the curves: a sweep without early stopping, every trial trained to the end::

    python launch/sweep.py --scheduler fifo --num-samples 4 --seed 1 \\
        --models lightgcn,lightgcn_hardneg,mult_vae,hybrid_vae,bpr_mf --name curves

then replay budgets over its ``curves/<model>.csv``::

    python benchmarks/asha_budgets.py results/curves/curves

For each model and each (grace period, reduction factor), every trial's curve is cut the way
ASHA would cut it: at each rung (grace period x reduction factor^k epochs) a trial goes on only
if its value there is in the top 1/reduction-factor of the trials at that rung (ASHA's cut-off,
with every trial's result known: the synchronous case). The table gives the best validation
value the surviving trials reach, the full curves' best, whether the trial that is best in full
survives, and the share of the epochs spent. The chosen budgets and why are written at the top
of each ``searchspaces/<model>.yaml``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

CANDIDATES = ((10, 3), (20, 3), (30, 3), (40, 3), (50, 3), (20, 2), (50, 2))


def replay(curves: pd.DataFrame, grace: int, factor: int) -> tuple[float, bool, float]:
    """ASHA over complete curves: (best value reached, full best survives, share of epochs)."""
    by_trial = {t: d.sort_values("epoch") for t, d in curves.groupby("trial_id")}
    max_t = int(curves["epoch"].max())
    stop = {t: max_t for t in by_trial}
    rung, alive = grace, set(by_trial)
    while rung < max_t and len(alive) > 1:
        at = {t: _value_at(by_trial[t], rung) for t in alive}
        cutoff = np.nanpercentile(list(at.values()), (1 - 1 / factor) * 100)
        for t, v in at.items():
            if v < cutoff:
                stop[t] = rung
        alive = {t for t in alive if at[t] >= cutoff}
        rung *= factor
    reached = max(float(d.loc[d["epoch"] <= stop[t], "value"].max()) for t, d in by_trial.items())
    full = {t: float(d["value"].max()) for t, d in by_trial.items()}
    winner = max(full, key=full.get)
    spent = sum(stop.values()) / (max_t * len(by_trial))
    return reached, stop[winner] == max_t or _peak(by_trial[winner]) <= stop[winner], spent


def _value_at(curve: pd.DataFrame, epoch: int) -> float:
    """The last value reported at or before ``epoch`` (what ASHA sees at that rung)."""
    seen = curve.loc[curve["epoch"] <= epoch, "value"]
    return float(seen.iloc[-1]) if len(seen) else math.nan


def _peak(curve: pd.DataFrame) -> int:
    return int(curve.loc[curve["value"].idxmax(), "epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", type=Path, help="a FIFO sweep's curves/ folder")
    args = parser.parse_args()
    for path in sorted(args.curves.glob("*.csv")):
        curves = pd.read_csv(path)
        if curves["epoch"].max() <= 1 or curves["trial_id"].nunique() < 2:
            continue
        print(f"\n== {path.stem}: {curves['trial_id'].nunique()} complete curves")
        for t, d in curves.groupby("trial_id"):
            d = d.sort_values("epoch")
            marks = {e: round(float(v), 3) for e, v in zip(d["epoch"], d["value"], strict=True)}
            shown = {e: marks[e] for e in (10, 20, 30, 50, 100, 150, 200, 300) if e in marks}
            print(f"  trial {t[-5:]}: peak {d['value'].max():.4f} at epoch {_peak(d)}; {shown}")
        best = curves["value"].max()
        print(f"  grace  factor  best reached  (full: {best:.4f})  full best kept  epochs spent")
        for grace, factor in CANDIDATES:
            reached, kept, spent = replay(curves, grace, factor)
            print(
                f"  {grace:>5}  {factor:>6}  {reached:>12.4f}  {'':>14}  {str(kept):>14}  "
                f"{spent:>11.0%}"
            )


if __name__ == "__main__":
    main()

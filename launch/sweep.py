"""Hyperparameter sweep: every model's search with Ray Tune + ASHA, MLflow tracking, test scores.

The documented entry point (``make sweep`` runs it); ``python launch/sweep.py --help`` lists the
flags. All of it lives in ``recsys.cli``; this script only makes the package importable from a
plain checkout (e.g. ``ray job submit --working-dir .``) and calls it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

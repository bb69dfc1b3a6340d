"""Retrieve, then re-rank: a finished sweep's recommendations re-ordered by a cross-encoder.

    python launch/rerank.py --results-dir results/ml-100k --model ease \\
        --cross-encoder ~/models/ms-marco-MiniLM-L-6-v2 [--candidates 50] [--profile-items 10]

Each test user's top ``--candidates`` items of ``--model`` (from ``recommendations/``) are scored
by the cross-encoder against the user's profile (the texts of their training items) and
re-ordered; both orders are scored on the sweep's test split with paired tests, and
``rerank/<model>.parquet``, ``.csv`` and ``.md`` are written to the results folder. The whole of
it is ``recsys.rerank``; nothing is downloaded.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="launch/rerank.py", description=__doc__.splitlines()[0])
    p.add_argument("--results-dir", required=True, help="a finished sweep's results folder")
    p.add_argument("--model", required=True, help="whose recommendations are the candidates")
    p.add_argument("--cross-encoder", required=True, help="folder of a saved CrossEncoder")
    p.add_argument("--candidates", type=int, default=50, help="top items re-ranked (<= 100)")
    p.add_argument("--profile-items", type=int, default=10, help="training items per profile")
    p.add_argument("--batch-size", type=int, default=64, help="pairs per forward pass")
    p.add_argument("--device", default="cpu", help="torch device of the cross-encoder")
    a = p.parse_args(argv)
    from recsys.cli import one_line
    from recsys.errors import EXIT_BAD_INPUT, RecsysError
    from recsys.rerank import RerankConfig, rerank_sweep
    from recsys.tuning.results import markdown_table

    try:
        config = RerankConfig(
            a.cross_encoder, a.candidates, a.profile_items, a.batch_size, device=a.device
        )
        table, files = rerank_sweep(a.results_dir, a.model, config)
    except RecsysError as error:
        print(f"{error.label}: {one_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(markdown_table(table), end="")
    print(f"written: {files['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshots of the MLflow UI over a finished sweep, as a new user opens it (the README's).

Starts ``mlflow ui`` on 127.0.0.1 over the sweep's tracking store and takes, with headless
Chromium (Debian: ``apt-get install chromium``), the experiment as it opens (its runs), the best
runs compared, and the champion's best run with its logged model. PNGs are reduced to a 64-colour
palette to keep them small.

    python benchmarks/screenshots.py --tracking-uri sqlite:///mlflow.db [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import free_port, mlflow_command, server  # noqa: E402

from recsys.errors import RecsysError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = "machine_learning"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    p.add_argument("--sweep", help="the sweep's parent run id (default: the latest sweep)")
    p.add_argument("--out", default=str(REPO / "docs"), help="folder of the PNGs (default docs/)")
    p.add_argument("--chromium", default="chromium", help="the Chromium binary (default chromium)")
    p.add_argument("--size", default="1400,820", help="window width,height (default 1400,820)")
    args = p.parse_args(argv)
    try:
        for path in take(args):
            print(path)
    except RecsysError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def take(args: argparse.Namespace) -> list[Path]:
    """Takes the screenshots; returns their paths."""
    browser = shutil.which(args.chromium)
    if browser is None:
        raise RecsysError(
            f"no Chromium at {args.chromium!r}; install it (apt-get install chromium) or pass "
            "--chromium PATH"
        )
    parent, best = _sweep_runs(args.tracking_uri, args.sweep)
    experiment = parent.info.experiment_id
    champion = best[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}/#"
    compare = urllib.parse.urlencode(
        {
            "runs": json.dumps([r.info.run_id for r in best]),
            "experiments": json.dumps([experiment]),
        }
    )
    # MLflow 3.17's UI opens every experiment in its global "GenAI" mode (remembered by the
    # browser) whatever the experiment's kind; the URL parameter picks "Model training".
    ml = f"workflowType={WORKFLOW}"
    run_page = f"{base}/experiments/{experiment}/runs/{champion.info.run_id}?{ml}"
    width = args.size.split(",")[0]
    pages = {
        "mlflow-experiment.png": (f"{base}/experiments/{experiment}?{ml}", args.size),
        "mlflow-best-runs-compared.png": (f"{base}/compare-runs?{compare}&{ml}", args.size),
        "mlflow-champion-run.png": (run_page, f"{width},1500"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = [mlflow_command(), "ui", "--backend-store-uri", args.tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with server(command, f"http://127.0.0.1:{port}/health", {}):
        return [_shot(browser, url, out / name, size) for name, (url, size) in pages.items()]


def _sweep_runs(tracking_uri: str, sweep: str | None) -> tuple:
    """The sweep's parent run and its best runs, the leaderboard's order (test metric) first."""
    from mlflow.exceptions import MlflowException

    from recsys.tuning import tracking

    client = tracking.client(tracking_uri)
    try:
        if sweep is None:
            experiments = [e.experiment_id for e in client.search_experiments()]
            found = client.search_runs(
                experiments,
                filter_string=f"tags.`{tracking.TAG_ROLE}` = 'sweep' and status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not found:
                raise RecsysError(
                    f"{tracking_uri} holds no finished sweep; run one (make sweep) or pass "
                    "--tracking-uri"
                )
            parent = found[0]
        else:
            parent = client.get_run(sweep)
        metric = "test_" + parent.data.params.get("metric", "ndcg@10").replace("@", "_at_")
    except MlflowException as error:
        first = str(error.message).strip().splitlines()[0]
        raise RecsysError(f"cannot read {tracking_uri} ({first}); pass --tracking-uri") from None
    runs = tracking.find_child_runs(tracking_uri, parent.info.run_id, "best").values()
    best = sorted(runs, key=lambda r: -r.data.metrics.get(metric, float("-inf")))
    if not best:
        raise RecsysError(f"sweep {parent.info.run_name!r} has no best runs; let it finish")
    return parent, best


def _shot(browser: str, url: str, path: Path, size: str) -> Path:
    """One page, rendered for up to 20 s of virtual time, saved as a 64-colour PNG."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "shot.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",  # root in a container has no user namespace for the sandbox
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                "--virtual-time-budget=20000",
                f"--screenshot={raw}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        image = Image.open(raw).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        image.save(path, optimize=True)
    return path


if __name__ == "__main__":
    sys.exit(main())

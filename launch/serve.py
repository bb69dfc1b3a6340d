"""Serve a logged model over HTTP: MLflow's scoring server behind recsys-tune's request guards.

    python launch/serve.py -m models:/recsys-tune-ml-100k@champion [--host 127.0.0.1]
        [--port 5001] [--workers 1] [--timeout 60] [--max-body-bytes 1048576]

The routes and request formats are ``mlflow models serve``'s (``/invocations``, ``/ping``); the
guards (a body-size cap, a JSON nesting cap, one-line error answers without stack traces) are
``recsys.serving_server``'s. The tracking store is ``$MLFLOW_TRACKING_URI`` (default
``sqlite:///mlflow.db``). SIGTERM or Ctrl-C stops the server and its workers.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="launch/serve.py", description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model-uri", required=True, help="e.g. models:/NAME@champion")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--workers", type=int, default=1, help="processes, each with the model")
    p.add_argument("--timeout", type=int, default=60, help="seconds a request may take")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body")
    a = p.parse_args(argv)
    limits = {"--port": (a.port, 1), "--workers": (a.workers, 1), "--timeout": (a.timeout, 1)}
    limits["--max-body-bytes"] = (a.max_body_bytes, 64)
    for flag, (value, low) in limits.items():
        if value < low:
            print(f"error: {flag} must be at least {low}, got {value}", file=sys.stderr)
            return 2
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    import mlflow
    import uvicorn
    from mlflow.exceptions import MlflowException

    from recsys.serving_server import MODEL_PATH_ENV, one_line

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=a.model_uri)
    except (MlflowException, OSError) as error:
        print(f"error: cannot load {a.model_uri}: {one_line(str(error))}", file=sys.stderr)
        return 2
    os.environ[MODEL_PATH_ENV] = local
    os.environ["RECSYS_SERVE_MAX_BODY_BYTES"] = str(a.max_body_bytes)
    os.environ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(a.timeout)
    uvicorn.run("recsys.serving_server:app", host=a.host, port=a.port, workers=a.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())

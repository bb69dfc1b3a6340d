"""Throughput of the served champion: requests per second and p50/p99 latency of
``mlflow models serve`` for single users and for batches of 100 users.

Starts ``mlflow models serve -m MODEL_URI --env-manager local`` on 127.0.0.1 (one worker), sends
requests one after another from one client over a kept-alive connection (known users drawn at
random, k = 10), and prints the figures with the machine. Also times ``predict`` in-process, to
tell the model's share from HTTP's.

    python benchmarks/serve_throughput.py --tracking-uri sqlite:///mlflow.db \
        [--model-uri models:/recsys-tune-ml-100k@champion] [--requests 500]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import free_port, mlflow_command, server  # noqa: E402

from recsys.errors import RecsysError  # noqa: E402

BATCH = 100


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    p.add_argument("--model-uri", default="models:/recsys-tune-ml-100k@champion")
    p.add_argument("--requests", type=int, default=500, help="requests per case (default 500)")
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args(argv)
    try:
        run(args)
    except RecsysError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> None:
    import mlflow
    import torch
    from mlflow.exceptions import MlflowException

    if args.requests < 1:
        raise RecsysError(f"--requests must be >= 1, got {args.requests}")
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        model = mlflow.pyfunc.load_model(args.model_uri)
    except MlflowException as error:
        first = str(error.message).strip().splitlines()[0]
        raise RecsysError(
            f"cannot load {args.model_uri} from {args.tracking_uri} ({first}); run a sweep first "
            f"(make sweep) or pass --tracking-uri / --model-uri"
        ) from None
    served = model.unwrap_python_model().served
    users = served.data.user_ids
    rng = np.random.default_rng(0)
    cases = {"single user": 1, f"batch of {BATCH}": BATCH}
    print(
        f"machine: {_cpu()}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, scoring on {served.model.device}; model "
        f"{served.card.model} on {served.card.dataset} ({served.data.n_users} users, "
        f"{served.n_items} items); one client, requests in sequence, k={args.k}"
    )
    for name, size in cases.items():
        frames = [_request(users, size, args.k, rng) for _ in range(args.requests)]
        print(_line(f"in-process predict, {name}", _timed(model.predict, frames)))

    port = free_port()
    command = [mlflow_command(), "models", "serve", "-m", args.model_uri, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {"MLFLOW_TRACKING_URI": args.tracking_uri}
    with server(command, f"http://127.0.0.1:{port}/ping", env):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for name, size in cases.items():
            bodies = [_body(_request(users, size, args.k, rng)) for _ in range(args.requests)]
            _post(connection, bodies[0])  # warm-up
            print(
                _line(f"HTTP /invocations, {name}", _timed(lambda b: _post(connection, b), bodies))
            )
        connection.close()


def _cpu() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _request(users: np.ndarray, size: int, k: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"user_id": rng.choice(users, size), "k": k})


def _body(frame: pd.DataFrame) -> bytes:
    return json.dumps(
        {"dataframe_split": frame.to_dict(orient="split", index=False)}, default=_plain
    ).encode()


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)


def _post(connection: http.client.HTTPConnection, body: bytes) -> None:
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RecsysError(f"the server answered {response.status}: {payload[:300]!r}")


def _timed(call, inputs: list) -> np.ndarray:
    seconds = []
    for item in inputs:
        started = time.perf_counter()
        call(item)
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def _line(name: str, seconds: np.ndarray) -> str:
    p50, p99 = np.percentile(seconds, [50, 99]) * 1000
    return (
        f"{name:<36} {len(seconds) / seconds.sum():8.1f} requests/s   p50 {p50:7.2f} ms   "
        f"p99 {p99:7.2f} ms   ({len(seconds)} requests)"
    )


if __name__ == "__main__":
    sys.exit(main())

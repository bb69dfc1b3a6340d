"""Shared by the scripts that need an MLflow process: a free port on 127.0.0.1, and a server
started in its own process group, waited for, and stopped by signalling that group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from recsys.errors import RecsysError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_command() -> str:
    """The ``mlflow`` entry point of this environment."""
    return str(Path(sys.executable).with_name("mlflow"))


@contextlib.contextmanager
def server(
    command: Sequence[str], ready_url: str, env: dict[str, str], timeout: float = 180
) -> Iterator[subprocess.Popen]:
    """Runs ``command`` until the block ends; yields once ``ready_url`` answers 200.

    Raises:
        RecsysError: the server exited or did not answer within ``timeout`` seconds (with the
            end of its output).
    """
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            # mlflow runs `uvicorn` (models serve) from PATH: this environment's first.
            env={**os.environ, "PATH": _path(), **env},
            start_new_session=True,
        )
        try:
            _wait(process, ready_url, timeout, log)
            yield process
        finally:
            _stop(process)


def _path() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _wait(process: subprocess.Popen, url: str, timeout: float, log) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = " | ".join(log.read().strip().splitlines()[-3:])
            raise RecsysError(f"{process.args[1:3]} exited ({process.returncode}): {tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RecsysError(f"{url} did not answer within {timeout:.0f} s; is the machine busy?")


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

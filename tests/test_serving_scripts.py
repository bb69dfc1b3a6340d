"""The serving scripts' bad input: one line naming the problem and the fix, exit 2, no
traceback (their figures and screenshots come from real runs, written in the README)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


def _one_line_error(out: subprocess.CompletedProcess, message: str) -> None:
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], out.stderr[-2000:]


def test_screenshots_without_chromium(tmp_path):
    out = _run("screenshots.py", "--chromium", str(tmp_path / "no-chromium"), cwd=tmp_path)
    _one_line_error(out, "install it (apt-get install chromium) or pass --chromium PATH")


@pytest.mark.slow
def test_screenshots_of_a_store_without_a_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path}/empty.db"
    out = _run("screenshots.py", "--tracking-uri", uri, "--chromium", "sh", cwd=tmp_path)
    _one_line_error(out, f"{uri} holds no finished sweep; run one (make sweep)")


def test_throughput_with_no_requests(tmp_path):
    out = _run("serve_throughput.py", "--requests", "0", cwd=tmp_path)
    _one_line_error(out, "--requests must be >= 1, got 0")


@pytest.mark.slow
def test_throughput_without_a_champion(tmp_path):
    uri = f"sqlite:///{tmp_path}/empty.db"
    out = _run("serve_throughput.py", "--tracking-uri", uri, cwd=tmp_path)
    _one_line_error(out, "cannot load models:/recsys-tune-ml-100k@champion from")

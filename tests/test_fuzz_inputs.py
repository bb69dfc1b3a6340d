"""Property tests over every flag and every space-file field: whatever a user types, a sweep
either gets past its checks (to the point where Ray would start) or ends in one line with exit
status 2 and leaves nothing written; never a traceback."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys import cli
from recsys.errors import RecsysError
from recsys.tuning.space import load_space

FLAGS = sorted(
    o
    for action in cli.parser()._actions
    for o in action.option_strings
    if o.startswith("--") and action.nargs != 0 and o != "--help"
)
SWITCHES = ["--resume", "--smoke", "--quiet", "--by-time"]
# What users type: numbers of every kind, words, paths, URIs, odd unicode, nothing.
VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "nan", "-0", "1e400", "0.8,0.1,0.1", "ndcg@10", "a=b", "x=[1",
                     "sqlite:///", "http://u:p@127.0.0.1:1", "../..", "/", "\x00", "١٠", "²"]),
)  # fmt: skip


class _Reached(Exception):
    """The checks passed: the sweep would start Ray here."""


def _stop(*args, **kwargs):
    raise _Reached


@pytest.fixture
def offline(monkeypatch):
    """No Ray, no network: the sweep stops where it would join a cluster; a tracking server or
    Ray head is taken to answer (their own tests check the unanswered cases)."""
    monkeypatch.setattr("recsys.tuning.sweep.connect", _stop)
    monkeypatch.setattr("recsys.tuning.tracking._check_server", lambda *a, **k: None)
    monkeypatch.setattr("recsys.tuning.resources.check_address", lambda *a, **k: None)


def _run(argv: list[str]) -> None:
    before = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(["--models", "popularity", *argv])
        except _Reached:
            return
        except SystemExit as exit:  # argparse: one line too
            code = exit.code
        finally:
            os.chdir(before)
        assert code == 2, (argv, err.getvalue())
        message = err.getvalue()
        assert message.startswith("error: ") and message.count("\n") == 1, (argv, message)
        assert len(message) <= cli.MAX_MESSAGE + 10
        assert list(Path(folder).iterdir()) == [], (argv, "left files behind")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI is not red by chance
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), min_size=1, max_size=3),
    st.lists(st.sampled_from(SWITCHES), max_size=2, unique=True),
)
def test_any_flags_end_in_one_line_or_pass(offline, pairs, switches):
    argv = [*switches]
    for flag, value in pairs:
        if flag in ("--results-dir", "--storage-path", "--data-dir", "--space-dir", "--name",
                    "--train-file", "--val-file", "--test-file"):  # fmt: skip
            value = value.replace("/", "_") or "x"  # no writing outside the test's folder
        argv += [flag, value]
    _run(argv)


BUDGET = {"max_epochs": 4, "grace_period": 1, "reduction_factor": 2, "eval_every": 1,
          "num_samples": 2}  # fmt: skip
FIELDS = [("budget", k) for k in BUDGET] + [
    ("params", k) for k in ("dim", "lr", "l2", "layers", "sampler", "batch_size", "bogus")
]
YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["choice", "grid", "uniform", "loguniform", "randint", "x", "low"]),
            inner,
            max_size=2,
        ),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(FIELDS), YAML_VALUES)
def test_any_space_field_value_is_accepted_or_one_clear_error(field, value):
    section, key = field
    raw = {"budget": dict(BUDGET), "params": {"lr": {"loguniform": [1e-4, 1e-2]}}}
    raw[section][key] = value
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "lightgcn.yaml").write_text(yaml.safe_dump(raw))
        try:
            load_space("lightgcn", folder)
        except RecsysError as error:
            assert "\n" not in str(error) and "lightgcn.yaml" in str(error)

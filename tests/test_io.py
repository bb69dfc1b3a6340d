"""Credentials kept out of what is logged and saved (``recsys.io.redact``)."""

from __future__ import annotations

import pytest

from recsys.io import redact, redact_command


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://user:token@host:5000", "http://***@host:5000"),
        (
            "postgresql+psycopg://u:pw@db.example/mlflow",
            "postgresql+psycopg://***@db.example/mlflow",
        ),
        ("https://token@host/path@x", "https://***@host/path@x"),  # only the user info
        ("http://host:5000", "http://host:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("results/a@b", "results/a@b"),  # no URI: left alone
    ],
)
def test_user_info_is_hidden(uri, expected):
    assert redact(uri) == expected


def test_a_command_line_is_redacted_word_by_word():
    argv = ["--tracking-uri", "http://u:pw@h", "--tracking-uri=http://u:pw@h", "--seed", "3"]
    assert redact_command(argv) == [
        "--tracking-uri",
        "http://***@h",
        "--tracking-uri=http://***@h",
        "--seed",
        "3",
    ]

"""The request guard in front of the served model, on a small ASGI app of its own (no model):
body-size and nesting caps, one-line error answers without stack traces."""

from __future__ import annotations

import asyncio
import json

import pytest

from recsys.serving_server import Guard, json_depth


async def _echo(scope, receive, send):
    """An app that answers 200 with the body it got, or MLflow's 400 with a stack trace when
    the body says so, or fails."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if body == b"boom":
        raise_status = 500
        payload = b"Internal Server Error"
    elif body.startswith(b"bad"):
        raise_status = 400
        payload = json.dumps(
            {"error_code": "BAD_REQUEST", "message": "Failed\nto parse", "stack_trace": "Tr..."}
        ).encode()
    else:
        raise_status, payload = 200, body
    await send({"type": "http.response.start", "status": raise_status, "headers": []})
    await send({"type": "http.response.body", "body": payload})


def _call(
    guard, body: bytes, chunks: int = 1, content_type=b"application/json", declared=True, left=None
):
    """The guard's status and answer to ``body`` sent in ``chunks``; ``left``, a list, gets how
    many of the body's messages were still unread when the answer started."""
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    headers = [(b"content-type", content_type)]
    if declared:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "path": "/invocations", "headers": headers}
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        if not sent and left is not None:
            left.append(len(messages))
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    status = sent[0]["status"]
    return status, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("body", "depth"),
    [(b"", 0), (b"{}", 1), (b'{"a": [[1], {"b": "]]]]"}]}', 3), (b'["[[[[\\"[["]', 1)],
)
def test_json_depth_counts_brackets_outside_strings(body, depth):
    assert json_depth(body) == depth


def test_a_good_body_reaches_the_app_whole_even_in_chunks():
    body = json.dumps({"dataframe_split": {"columns": ["user_id"], "data": [[1]] * 500}}).encode()
    assert _call(Guard(_echo), body, chunks=7) == (200, body)


def test_a_body_over_the_cap_is_refused_before_the_app_reads_it():
    guard = Guard(_echo, max_bytes=100)
    status, answer = _call(guard, b"x" * 101)
    assert status == 413 and "larger than 100 bytes" in json.loads(answer)["message"]
    # Not declared (chunked): refused as soon as the bytes read pass the cap.
    status, _ = _call(guard, b"x" * 1000, chunks=20, declared=False)
    assert status == 413


@pytest.mark.parametrize("declared", [True, False])
def test_a_refused_body_is_read_to_its_end_before_the_413_up_to_the_drain_bound(declared):
    # A client still sending when the 413 comes and the connection closes gets a reset instead.
    left = []
    guard = Guard(_echo, max_bytes=100, drain_bytes=2000)
    assert _call(guard, b"x" * 1000, chunks=20, declared=declared, left=left)[0] == 413
    assert left == [0]
    # Past the bound it is answered at once: at most drain_bytes more are read, never held.
    left = []
    assert _call(guard, b"x" * 10_000, chunks=100, declared=declared, left=left)[0] == 413
    # Declared: none of it is read. Not declared: 21 chunks of 100 bytes pass the 2000.
    assert left == ([100] if declared else [100 - 21])


def test_a_deeply_nested_json_body_is_a_one_line_400():
    status, answer = _call(Guard(_echo), b"[" * 100_000 + b"]" * 100_000)
    message = json.loads(answer)["message"]
    assert status == 400 and "nests 100000 levels deep, more than the 32" in message
    # The same bytes as CSV are not JSON: passed to the app (which parses CSV).
    assert _call(Guard(_echo), b"[[[", content_type=b"text/csv")[0] == 200


def test_error_answers_lose_their_stack_trace_and_fit_one_line():
    status, answer = _call(Guard(_echo), b"bad csv", content_type=b"text/csv")
    assert status == 400
    assert json.loads(answer) == {"error_code": "BAD_REQUEST", "message": "Failed to parse"}
    status, answer = _call(Guard(_echo), b"boom", content_type=b"text/csv")
    assert status == 500 and json.loads(answer)["error_code"] == "INTERNAL_ERROR"
    assert b"Traceback" not in answer and b"\n" not in answer

"""The HTTP server of a logged model: MLflow's scoring app behind a guard that no request can
knock over.

``python launch/serve.py -m models:/recsys-tune-ml-100k@champion`` serves what
``mlflow models serve`` serves (the same app, routes and request formats), with three guards in
front of ``/invocations`` (:class:`Guard`, a plain ASGI middleware):

- a body over ``max_bytes`` (default 1 MiB: 1,000 users of a request fit in a few KiB) gets
  HTTP 413 before it is parsed, whether or not it declared its length. Up to ``drain_bytes``
  (default 64 MiB) the rest of it is read and dropped first, never held: a client still sending
  its body then reads the 413 rather than a reset connection (the graceful close RFC 9112
  section 9.6 asks of a server answering early). A larger body's connection is dropped at once;
- a JSON body nested deeper than ``max_depth`` (default 32; a request needs 3) gets HTTP 400
  (Python's parser would raise ``RecursionError``, which MLflow answers with a 500);
- every error answer is one line of JSON ``{"error_code", "message"}``: MLflow's
  ``stack_trace`` (its answer to a malformed CSV body, say) is dropped, and a 500 says only that
  the server failed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

MAX_BODY_BYTES = 1 << 20
DRAIN_BYTES = 64 << 20
MAX_JSON_DEPTH = 32
MAX_MESSAGE_CHARS = 400
MODEL_PATH_ENV = "RECSYS_SERVE_MODEL_PATH"  # the local copy of the model the workers load
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def json_depth(body: bytes) -> int:
    """How deeply ``body``'s arrays and objects nest (brackets inside strings do not count);
    vectorised, so a 1 MiB body takes milliseconds."""
    text = np.frombuffer(_STRINGS.sub(b'""', body), dtype=np.uint8)
    if not len(text):
        return 0
    opens = (text == ord("[")) | (text == ord("{"))
    closes = (text == ord("]")) | (text == ord("}"))
    return int(np.cumsum(opens.astype(np.int64) - closes).max(initial=0))


def one_line(message: str) -> str:
    """``message`` on one line of at most :data:`MAX_MESSAGE_CHARS` characters."""
    flat = " ".join(str(message).split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 3] + "..."


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": one_line(message)}).encode()


class Guard:
    """ASGI middleware: bounded, shallow request bodies in; one-line errors out (see the module
    docstring)."""

    def __init__(
        self,
        app: Any,
        max_bytes: int = MAX_BODY_BYTES,
        max_depth: int = MAX_JSON_DEPTH,
        drain_bytes: int = DRAIN_BYTES,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.drain_bytes = max(drain_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= self.drain_bytes:
                await self._drain(receive, 0)
            await _answer(send, 413, error_body("REQUEST_TOO_LARGE", self._too_large()))
            return
        body = await self._body(receive)
        if body is None:
            await _answer(send, 413, error_body("REQUEST_TOO_LARGE", self._too_large()))
            return
        problem = self._problem(body, headers.get(b"content-type", b""))
        if problem is not None:
            await _answer(send, 400, error_body("BAD_REQUEST", problem))
            return
        await self.app(scope, _replay(body, receive), _Scrubbed(send))

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes ``max_bytes``."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body"):
                    await self._drain(receive, size)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _drain(self, receive: Receive, size: int) -> None:
        """Reads and drops the rest of a refused body (``size`` bytes of it read so far) until
        it ends, the client leaves, or ``drain_bytes`` have been read."""
        while size <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return
            size += len(message.get("body", b""))

    def _problem(self, body: bytes, content_type: bytes) -> str | None:
        if b"json" not in content_type.lower():
            return None
        depth = json_depth(body)
        if depth > self.max_depth:
            return (
                f"the JSON body nests {depth} levels deep, more than the {self.max_depth} "
                'allowed; send {"dataframe_split": {"columns": [...], "data": [...]}}'
            )
        return None

    def _too_large(self) -> str:
        return (
            f"the request body is larger than {self.max_bytes} bytes; split it into requests of "
            "at most 1000 users"
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then what follows."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class _Scrubbed:
    """A ``send`` that rewrites error answers (status >= 400) as one-line JSON without
    MLflow's ``stack_trace``; successful answers pass through as they are."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] < 400:
                await self.send(message)
                return
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        status = self.start["status"]
        await _answer(self.send, status, _scrubbed(status, b"".join(self.chunks)))


def _scrubbed(status: int, body: bytes) -> bytes:
    if status >= 500:
        return error_body("INTERNAL_ERROR", "the server failed on this request; see its log")
    try:
        answer = json.loads(body)
    except ValueError:
        return error_body("BAD_REQUEST", body.decode(errors="replace") or f"HTTP {status}")
    if not isinstance(answer, dict):
        return error_body("BAD_REQUEST", str(answer))
    return error_body(str(answer.get("error_code", "BAD_REQUEST")), answer.get("message", ""))


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(model_path: str) -> Guard:
    """MLflow's scoring app for the model at ``model_path`` (a local folder), guarded."""
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(model_path)
    max_bytes = int(os.environ.get("RECSYS_SERVE_MAX_BODY_BYTES", MAX_BODY_BYTES))
    return Guard(scoring_server.init(model), max_bytes=max_bytes)


def __getattr__(name: str) -> Any:
    # ``uvicorn recsys.serving_server:app`` (each worker imports it): the model the launcher
    # downloaded, named by the environment.
    if name == "app":
        return create_app(os.environ[MODEL_PATH_ENV])
    raise AttributeError(name)

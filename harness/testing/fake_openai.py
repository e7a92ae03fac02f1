"""A small OpenAI-compatible chat server for tests and benchmarks, with programmable faults.

Why ship it: generation code is only trustworthy if it is exercised through the real ``openai``
client over real HTTP (retries, headers, malformed bodies), and users' own test suites need the same
without a network or a key. The server is stdlib only (``ThreadingHTTPServer`` in a daemon thread),
binds ``127.0.0.1`` on a free port and stops when the ``with`` block ends::

    with FakeOpenAIServer(latency_s=0.2) as srv:
        srv.push(Fault.rate_limit(retry_after=0.2))      # the next request gets a 429
        srv.push(Fault.server_error(), match="q7")        # the next request whose prompt has "q7"
        client = AsyncOpenAI(base_url=srv.base_url, api_key="test")
        ...
        srv.requests_received, srv.max_in_flight

Fault modes: HTTP errors (429 with or without ``Retry-After``, 5xx, 401, 400, with any message, e.g.
one that echoes a key), ``slow`` (delay), ``disconnect`` (close) and ``reset`` (TCP RST), malformed
bodies (``invalid_json``, ``missing_choices``), and well-formed replies that are still not answers:
``empty`` / ``whitespace`` / ``null_content`` content, ``truncated`` (``finish_reason = "length"``)
and ``content_filter``. ``pause()`` holds every answer until ``resume()`` (two clients at once).

Answers are deterministic functions of the request (see :func:`default_answer`): a prompt that cites
passages as ``[doc-id] text`` is answered from the first cited passage, anything else is echoed.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "Fault", "RecordedRequest", "default_answer"]

_CITED = re.compile(r"\[([A-Za-z0-9_.:\-]+)\]\s*([^\n]*)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) a normal answer.

    ``status`` sends that HTTP error with an OpenAI-style error body (and ``Retry-After`` when
    ``retry_after`` is set: a number of seconds or an HTTP-date string); ``delay_s`` sleeps first
    (use it to trigger client timeouts); ``body`` sends that raw text as a 200 JSON response
    (malformed bodies); ``drop`` closes the connection without answering, ``reset`` aborts it
    (TCP RST). ``content`` / ``null_content`` / ``finish_reason`` replace the text, null the
    content, or set the finish reason of an otherwise normal chat.completion.
    """

    status: int | None = None
    retry_after: float | str | None = None
    delay_s: float = 0.0
    body: str | None = None
    drop: bool = False
    message: str | None = None
    reset: bool = False
    content: str | None = None
    null_content: bool = False
    finish_reason: str | None = None

    @property
    def completion(self) -> bool:
        """Whether this fault is a 200 chat.completion with changed content or finish reason."""
        return self.content is not None or self.null_content or self.finish_reason is not None

    @classmethod
    def rate_limit(cls, retry_after: float | str | None = 0.2) -> Fault:
        return cls(status=429, retry_after=retry_after, message="Rate limit reached (fake)")

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls(status=status, message="The server had an error (fake)")

    @classmethod
    def unavailable(cls, retry_after: float | str | None = None) -> Fault:
        return cls(status=503, retry_after=retry_after, message="The engine is overloaded (fake)")

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls(status=401, message="Incorrect API key provided (fake)")

    @classmethod
    def bad_request(cls, message: str = "Invalid request (fake)") -> Fault:
        return cls(status=400, message=message)

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        return cls(delay_s=delay_s)

    @classmethod
    def invalid_json(cls) -> Fault:
        return cls(body='{"id": "chatcmpl-broken", "choices": [')

    @classmethod
    def missing_choices(cls) -> Fault:
        return cls(body=json.dumps({"id": "chatcmpl-broken", "object": "chat.completion", "created": 0,
                                    "model": "fake"}))

    @classmethod
    def disconnect(cls) -> Fault:
        return cls(drop=True)

    @classmethod
    def connection_reset(cls) -> Fault:
        return cls(reset=True)

    @classmethod
    def empty(cls) -> Fault:
        return cls(content="")

    @classmethod
    def whitespace(cls) -> Fault:
        return cls(content=" \n\t ")

    @classmethod
    def null_message(cls) -> Fault:
        return cls(null_content=True)

    @classmethod
    def truncated(cls, text: str = "Backups run hourly and are") -> Fault:
        return cls(content=text, finish_reason="length")

    @classmethod
    def content_filtered(cls) -> Fault:
        """What Azure OpenAI sends when its filter blocks the answer: no content, ``content_filter``."""
        return cls(null_content=True, finish_reason="content_filter")


@dataclass
class _Rule:
    fault: Fault
    match: str | None
    remaining: int | None  # None = forever


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (``t`` is ``time.monotonic()`` on arrival)."""

    t: float
    path: str
    body: dict[str, Any]
    authorization: str | None
    fault: Fault | None = None
    prompt: str = field(default="", repr=False)


def _prompt_text(body: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for msg in body.get("messages") or ():
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "\n".join(parts)


def _last_user(body: Mapping[str, Any]) -> str:
    for msg in reversed(list(body.get("messages") or ())):
        if isinstance(msg, Mapping) and msg.get("role") == "user" and isinstance(msg.get("content"), str):
            return str(msg["content"])
    return ""


def default_answer(body: Mapping[str, Any]) -> str:
    """Deterministic answer: the first sentence of the first ``[doc-id] text`` passage, cited; else an echo."""
    prompt = _prompt_text(body)
    cited = _CITED.search(prompt)
    if cited and cited.group(2).strip():
        first = _SENTENCE_END.split(cited.group(2).strip(), maxsplit=1)[0]
        return f"{first} [{cited.group(1)}]"
    return f"echo: {_last_user(body)}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not hold up shutdown
    request_queue_size = 128  # the default (5) drops bursts of connects, which then retry after 1 s
    owner: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):  # a client that gave up is normal
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API
    timeout = 30
    # One buffered write per response and no Nagle: otherwise the body waits ~40 ms for the client's
    # delayed ACK of the headers, which would dominate every latency measured against this server.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                              "created": 0, "owned_by": "fake"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:  # the client went away mid-body (a killed process): no request, nothing recorded
            self.close_connection = True
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"invalid JSON body: {exc}", "type": "invalid_request_error"}})
            return
        owner._enter()
        try:
            self._answer(owner, body)
        finally:
            owner._leave()

    def _answer(self, owner: FakeOpenAIServer, body: dict[str, Any]) -> None:
        prompt = _prompt_text(body)
        auth = self.headers.get("Authorization")
        fault = owner._take_fault(prompt)
        owner._record(RecordedRequest(time.monotonic(), self.path, body, auth, fault, prompt))
        owner._gate.wait(timeout=owner.max_pause_s)
        delay = owner.latency_s + (fault.delay_s if fault else 0.0)
        if delay > 0:
            time.sleep(delay)
        if fault is None and owner.api_key is not None and auth != f"Bearer {owner.api_key}":
            fault = Fault.unauthorized()
        if fault is not None:
            if fault.reset:  # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer"
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            if fault.status is not None:
                headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(fault.status, "server_error")
                err = {"error": {"message": fault.message or f"fake error {fault.status}", "type": kind,
                                 "param": None, "code": kind}}
                self._send_json(fault.status, err, headers)
                return
            if fault.body is not None:
                self._send_json(200, fault.body)
                return
            if fault.completion:
                self._send_json(200, owner._completion(body, fault))
                return
        self._send_json(200, owner._completion(body))


class FakeOpenAIServer:
    """OpenAI-compatible ``POST /v1/chat/completions`` on ``127.0.0.1:<free port>``.

    Args:
        latency_s: fixed time to wait before every answer (the bench uses 0.2 s).
        responder: ``body -> text``; defaults to :func:`default_answer`.
        api_key: if set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        max_pause_s: the longest :meth:`pause` holds a request (so a forgotten ``resume`` cannot hang a test).
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        responder: Callable[[Mapping[str, Any]], str] | None = None,
        api_key: str | None = None,
        max_pause_s: float = 30.0,
    ) -> None:
        self.latency_s = latency_s
        self.max_pause_s = max_pause_s
        self._gate = threading.Event()
        self._gate.set()
        self.responder = responder or default_answer
        self.api_key = api_key
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._ids = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._gate.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; use it as a context manager or call start()")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give the ``openai`` client (``http://127.0.0.1:<port>/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # faults ----------------------------------------------------------------------------------
    def push(self, *faults: Fault, match: str | None = None, times: int | None = 1) -> None:
        """Queue faults: each applies to the next ``times`` requests (``None``: all of them) whose
        prompt contains ``match`` (any request when ``match`` is None). Rules apply in the order
        they were pushed; a request with no applicable rule is answered normally."""
        with self._lock:
            self._rules.extend(_Rule(f, match, times) for f in faults)

    def pause(self) -> None:
        """Hold every request (received and counted, not answered) until :meth:`resume` or ``max_pause_s``."""
        self._gate.clear()

    def resume(self) -> None:
        self._gate.set()

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def _take_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.match is not None and rule.match not in prompt:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None

    # bookkeeping -----------------------------------------------------------------------------
    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def requests_received(self) -> int:
        """Chat-completion requests received so far (faulted ones included)."""
        with self._lock:
            return len(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The largest number of chat-completion requests being handled at the same time."""
        with self._lock:
            return self._max_in_flight

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    # answers ---------------------------------------------------------------------------------
    def _completion(self, body: Mapping[str, Any], fault: Fault | None = None) -> dict[str, Any]:
        text = self.responder(body)
        finish = "stop"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        words = text.split()
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            text, finish = " ".join(words[:max_tokens]), "length"
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and fmt.get("type") in {"json_object", "json_schema"}:
            text = json.dumps({"answer": text})
        content: str | None = text
        if fault is not None:
            content = None if fault.null_content else fault.content if fault.content is not None else text
            finish = fault.finish_reason or finish
            text = content or ""
        with self._lock:
            self._ids += 1
            n = self._ids
        prompt_tokens = len(_prompt_text(body).split())
        completion_tokens = len(text.split())
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "fake-model")),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

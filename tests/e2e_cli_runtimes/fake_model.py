"""A fake model API on loopback for the real Claude Code and Codex CLIs (tests only).

Speaks the Anthropic Messages API (`POST /v1/messages`, streamed as SSE or as one JSON body) and
the OpenAI Responses API (`POST /v1/responses`, SSE). Deterministic: each answer is `reply` split
into `deltas` pieces, `delay` seconds apart; `status` (e.g. 401) fails every model request; `stall`
keeps the stream open without a byte until the server stops. Every request is recorded with what it
billed, so a test can compare a run's stored usage with the request that produced it.

Written on the standard library's threaded HTTP server: the CLIs are separate processes, so a
server on its own threads answers them whatever the test's event loop is doing.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]
    # What this request billed (0 when it failed or was not a model call).
    input_tokens: int = 0
    output_tokens: int = 0
    reply: str = ""

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def system(self) -> str:
        """Anthropic `system` or OpenAI `instructions`, as one string."""
        system = self.body.get("system", self.body.get("instructions", ""))
        if isinstance(system, list):
            return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
        return str(system or "")

    @property
    def text(self) -> str:
        """Every text the request carries (messages / input), for "is this turn in it" checks."""
        return json.dumps(self.body.get("messages", self.body.get("input", "")))


@dataclass
class FakeModel:
    reply: str = "Hello from the fake model."
    deltas: int = 4
    delay: float = 0.05
    status: int = 200
    error_message: str = "invalid x-api-key"
    stall: bool = False
    # With `status`, how many model requests fail before the rest are answered (None: all).
    fail_times: int | None = None
    # Billed per model request: input grows with the request body, output with the reply.
    bill: Callable[[Request], tuple[int, int]] | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def model_requests(self, path: str) -> list[Request]:
        """The recorded requests to `path` that asked the model for a turn (not side calls)."""
        with self._lock:
            return [r for r in self.requests if r.path == path and r.output_tokens]

    def billing(self, request: Request) -> tuple[int, int]:
        if self.bill is not None:
            return self.bill(request)
        return 100 + len(request.text) // 100, 10 + self.deltas

    def take_failure(self) -> bool:
        with self._lock:
            if self.fail_times is None:
                return True
            if self.fail_times > 0:
                self.fail_times -= 1
                return True
            return False

    def next_id(self) -> int:
        with self._lock:
            return int(next(self._ids))

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _pieces(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


class _Handler(BaseHTTPRequestHandler):
    model: FakeModel
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.model.record(Request(self.path, _lower(self.headers), {}))
        if self.path.startswith("/v1/models"):
            self._json(200, {"object": "list", "data": [], "models": []})
        else:
            self._json(404, {"error": {"type": "not_found_error", "message": "not found"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        request = Request(self.path.split("?")[0], _lower(self.headers), body)
        model = self.model
        if request.path.endswith("/messages/count_tokens"):
            model.record(request)
            self._json(200, {"input_tokens": 100})
            return
        if request.path not in ("/v1/messages", "/v1/responses"):
            model.record(request)
            self._json(404, {"error": {"type": "not_found_error", "message": "not found"}})
            return
        if model.status != 200 and model.take_failure():
            model.record(request)
            self._error(request.path)
            return
        request.input_tokens, request.output_tokens = model.billing(request)
        request.reply = model.reply
        model.record(request)
        if request.path == "/v1/responses":
            self._responses(request)
        elif request.streamed:
            self._messages_sse(request)
        else:
            self._messages_json(request)

    # --- plumbing -------------------------------------------------------------------------------

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, path: str) -> None:
        model = self.model
        if path == "/v1/responses":
            body: dict[str, Any] = {
                "error": {
                    "message": model.error_message,
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        else:
            body = {
                "type": "error",
                "error": {"type": "authentication_error", "message": model.error_message},
            }
        if model.status in (401, 403):
            # Tells the SDKs not to retry: a bad key stays bad.
            self._json(model.status, body, {"x-should-retry": "false"})
        else:
            self._json(model.status, body)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def _stall(self) -> bool:
        if self.model.stall:
            self.model._stop.wait(120)
            return True
        return False

    def _messages_json(self, request: Request) -> None:
        n = self.model.next_id()
        self._json(
            200,
            {
                "id": f"msg_{n:04d}",
                "type": "message",
                "role": "assistant",
                "model": request.body.get("model", "claude-fake"),
                "content": [{"type": "text", "text": request.reply}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": request.input_tokens,
                    "output_tokens": request.output_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        )

    def _messages_sse(self, request: Request) -> None:
        model = self.model
        n = model.next_id()
        self._start_sse()
        if self._stall():
            return
        usage = {
            "input_tokens": request.input_tokens,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {
            "id": f"msg_{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": request.body.get("model", "claude-fake"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        self._event("message_start", {"type": "message_start", "message": message})
        block = {"type": "text", "text": ""}
        self._event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        for piece in _pieces(request.reply, model.deltas):
            time.sleep(model.delay)
            delta = {"type": "text_delta", "text": piece}
            self._event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": request.output_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})

    def _responses(self, request: Request) -> None:
        model = self.model
        n = model.next_id()
        self._start_sse()
        if self._stall():
            return
        resp_id, item_id = f"resp_{n:04d}", f"msg_{n:04d}"
        base = {
            "id": resp_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": request.body.get("model", "gpt-fake"),
            "output": [],
        }
        seq = itertools.count()
        self._event(
            "response.created",
            {
                "type": "response.created",
                "sequence_number": next(seq),
                "response": {**base, "status": "in_progress"},
            },
        )
        item = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._event(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": item,
            },
        )
        self._event(
            "response.content_part.added",
            {
                "type": "response.content_part.added",
                "sequence_number": next(seq),
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
        )
        for piece in _pieces(request.reply, model.deltas):
            time.sleep(model.delay)
            self._event(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                },
            )
        content = [{"type": "output_text", "text": request.reply, "annotations": []}]
        self._event(
            "response.output_text.done",
            {
                "type": "response.output_text.done",
                "sequence_number": next(seq),
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "text": request.reply,
            },
        )
        done_item = {**item, "status": "completed", "content": content}
        self._event(
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": done_item,
            },
        )
        usage = {
            "input_tokens": request.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": request.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": request.input_tokens + request.output_tokens,
        }
        self._event(
            "response.completed",
            {
                "type": "response.completed",
                "sequence_number": next(seq),
                "response": {**base, "status": "completed", "output": [done_item], "usage": usage},
            },
        )


class ModelServer:
    """`with ModelServer() as model:` serves a FakeModel on 127.0.0.1 at a free port."""

    def __init__(self, model: FakeModel | None = None) -> None:
        self.model = model or FakeModel()
        handler = type("Handler", (_Handler,), {"model": self.model})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.model.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeModel:
        self._thread.start()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

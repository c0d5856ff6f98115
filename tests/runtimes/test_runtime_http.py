from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from rudder.runtimes.base import RunEventKind, RuntimeError_
from rudder.runtimes.http import HttpRuntime

from .runtime_helpers import collect, make_context, serve, text_of

runtime = HttpRuntime()


class Agent:
    """A fake agent endpoint; records what it received and when a stream was abandoned."""

    def __init__(self) -> None:
        self.bodies: list[object] = []
        self.slow_started = asyncio.Event()
        self.slow_closed = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/text", self.text, methods=["POST"]),
                Route("/ndjson", self.ndjson, methods=["POST"]),
                Route("/sse", self.sse, methods=["POST"]),
                Route("/json", self.json_document, methods=["POST"]),
                Route("/auth", self.auth, methods=["POST"]),
                Route("/slow", self.slow, methods=["POST"]),
            ]
        )

    async def text(self, request: Request) -> Response:
        self.bodies.append(await request.json())

        async def chunks() -> AsyncIterator[str]:
            for part in ["Hel", "lo ", "wörld"]:
                yield part
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def ndjson(self, request: Request) -> Response:
        lines = [
            {"type": "session", "session_id": "h-1"},
            {"type": "text", "text": "Hi"},
            {"type": "usage", "input_tokens": 5},
        ]
        body = "".join(json.dumps(line) + "\n" for line in lines)
        return Response(body, media_type="application/x-ndjson")

    async def sse(self, request: Request) -> Response:
        body = (
            ": hello\n\n"
            "data: Hello\n\n"
            'data: {"type": "text", "text": ", SSE"}\n\n'
            'event: message\ndata: {"type": "thinking", "text": "hmm"}\n\n'
            "data: [DONE]\n\n"
            "data: after the end\n\n"
        )
        return Response(body, media_type="text/event-stream")

    async def json_document(self, request: Request) -> Response:
        return JSONResponse([{"type": "text", "text": "one"}, {"type": "text", "text": " two"}])

    async def auth(self, request: Request) -> Response:
        token = request.headers.get("x-token", "")
        if token != "right-token":
            return PlainTextResponse(f"bad token {token}; try again", status_code=401)
        return PlainTextResponse("ok")

    async def slow(self, request: Request) -> Response:
        async def forever() -> AsyncIterator[str]:
            self.slow_started.set()
            try:
                while True:
                    yield "tick "
                    await asyncio.sleep(0.02)
            finally:
                self.slow_closed.set()

        return StreamingResponse(forever(), media_type="text/plain")


@pytest.fixture
async def agent() -> AsyncIterator[tuple[Agent, str]]:
    fake = Agent()
    async with serve(fake.app) as base_url:
        yield fake, base_url


async def test_plain_text_response_streams_deltas(agent: tuple[Agent, str]) -> None:
    fake, base = agent
    events = await collect(runtime, make_context({"url": f"{base}/text"}, "ping"))
    assert text_of(events) == "Hello wörld"
    assert len(events) >= 2
    body = fake.bodies[0]
    assert isinstance(body, dict)
    assert body["prompt"] == "ping" and body["agent"]["name"] == "Helper"


async def test_ndjson_response_is_events(agent: tuple[Agent, str]) -> None:
    _, base = agent
    events = await collect(runtime, make_context({"url": f"{base}/ndjson"}))
    assert [e.kind for e in events] == [RunEventKind.SESSION, RunEventKind.TEXT, RunEventKind.USAGE]


async def test_sse_response_mixes_text_and_events_and_stops_at_done(
    agent: tuple[Agent, str],
) -> None:
    _, base = agent
    events = await collect(runtime, make_context({"url": f"{base}/sse"}))
    assert [(e.kind, e.text) for e in events] == [
        (RunEventKind.TEXT, "Hello"),
        (RunEventKind.TEXT, ", SSE"),
        (RunEventKind.THINKING, "hmm"),
    ]


async def test_json_document_response(agent: tuple[Agent, str]) -> None:
    _, base = agent
    assert text_of(await collect(runtime, make_context({"url": f"{base}/json"}))) == "one two"


async def test_secret_header_is_resolved(agent: tuple[Agent, str]) -> None:
    _, base = agent
    config = {"url": f"{base}/auth", "headers": {"X-Token": {"secret": "AGENT_TOKEN"}}}
    ctx = make_context(config, secrets={"AGENT_TOKEN": "right-token"})
    assert text_of(await collect(runtime, ctx)) == "ok"


async def test_non_2xx_fails_with_status_and_excerpt_without_the_secret(
    agent: tuple[Agent, str],
) -> None:
    _, base = agent
    config = {"url": f"{base}/auth", "headers": {"X-Token": {"secret": "AGENT_TOKEN"}}}
    ctx = make_context(config, secrets={"AGENT_TOKEN": "wrong-token-42"})
    with pytest.raises(RuntimeError_) as failure:
        await collect(runtime, ctx)
    reason = str(failure.value)
    assert reason.startswith("HTTP 401 Unauthorized: bad token")
    assert "wrong-token-42" not in reason


async def test_cancel_closes_the_request(agent: tuple[Agent, str]) -> None:
    fake, base = agent
    first = asyncio.Event()

    async def run() -> None:
        async for _ in runtime.stream(make_context({"url": f"{base}/slow"})):
            first.set()

    task = asyncio.create_task(run())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.slow_closed.wait(), 5)


async def test_timeout_fails_the_run(agent: tuple[Agent, str]) -> None:
    _, base = agent
    with pytest.raises(RuntimeError_, match=r"^timed out after 0\.3 s$"):
        await collect(runtime, make_context({"url": f"{base}/slow", "timeout_sec": 0.3}))


async def test_an_unreachable_url_fails_with_a_reason() -> None:
    async with serve(Starlette()) as base:
        pass  # the port is free again now
    with pytest.raises(RuntimeError_, match=r"request to http://127\.0\.0\.1:\d+/agent failed"):
        await collect(runtime, make_context({"url": f"{base}/agent?key=abc"}))


async def test_an_injected_client_is_used_and_left_open(agent: tuple[Agent, str]) -> None:
    _, base = agent
    async with httpx.AsyncClient() as client:
        shared = HttpRuntime(client)
        assert text_of(await collect(shared, make_context({"url": f"{base}/json"}))) == "one two"
        assert not client.is_closed

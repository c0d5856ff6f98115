from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rudder.runtimes.base import RunEventKind, RuntimeError_
from rudder.runtimes.openai import OpenAIRuntime

from .runtime_helpers import collect, make_context, serve, text_of

runtime = OpenAIRuntime()
API_KEY = "sk-test-0123456789"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "tiny-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class FakeOpenAI:
    """A small OpenAI-compatible `/v1/chat/completions` that streams like the real one."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])]
        )

    async def complete(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse(
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                    }
                },
                status_code=401,
            )
        body = await request.json()
        self.requests.append(body)
        if body["model"] == "missing":
            message = "The model `missing` does not exist or you do not have access to it."
            return JSONResponse({"error": {"message": message, "code": "model_not_found"}}, 404)
        if body["model"] == "flaky":
            chunks: list[Any] = [chunk({"content": "Par"}), {"error": {"message": "overloaded"}}]
        else:
            chunks = [
                chunk({"role": "assistant", "content": ""}),
                chunk({"reasoning_content": "thinking..."}),
                chunk({"content": "Hello"}),
                chunk({"content": " there"}),
                chunk({}, finish="stop"),
                {
                    **chunk({}),
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 12,
                        "completion_tokens": 2,
                        "total_tokens": 14,
                        "prompt_tokens_details": {"cached_tokens": 4},
                    },
                },
            ]

        async def stream() -> AsyncIterator[str]:
            for item in chunks:
                yield f"data: {json.dumps(item)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    async with serve(fake.app) as base_url:
        yield fake, f"{base_url}/v1"


def config(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "model": "tiny-1",
        "api_key_secret": "OPENAI_KEY",
        "system_prompt": "Answer in English.",
        **extra,
    }


async def test_streams_text_thinking_and_usage(api: tuple[FakeOpenAI, str]) -> None:
    fake, base = api
    ctx = make_context(config(base, temperature=0.2), "hi", secrets={"OPENAI_KEY": API_KEY})
    events = await collect(runtime, ctx)
    assert text_of(events) == "Hello there"
    assert [e.kind for e in events] == [
        RunEventKind.THINKING,
        RunEventKind.TEXT,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
    ]
    assert events[-1].data == {
        "input_tokens": 12,
        "output_tokens": 2,
        "cached_input_tokens": 4,
        "model": "tiny-1",
    }
    sent = fake.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.2
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief.\n\nAnswer in English."},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "hi"},
    ]


async def test_api_error_message_is_the_reason(api: tuple[FakeOpenAI, str]) -> None:
    _, base = api
    ctx = make_context(config(base, model="missing"), secrets={"OPENAI_KEY": API_KEY})
    with pytest.raises(RuntimeError_, match="HTTP 404: The model `missing` does not exist"):
        await collect(runtime, ctx)


async def test_a_wrong_key_fails_without_showing_it(api: tuple[FakeOpenAI, str]) -> None:
    _, base = api
    ctx = make_context(config(base), secrets={"OPENAI_KEY": "sk-wrong-key-77"})
    with pytest.raises(RuntimeError_) as failure:
        await collect(runtime, ctx)
    assert "HTTP 401: Incorrect API key provided." in str(failure.value)
    assert "sk-wrong-key-77" not in str(failure.value)


async def test_an_error_mid_stream_fails_after_the_text(api: tuple[FakeOpenAI, str]) -> None:
    _, base = api
    ctx = make_context(config(base, model="flaky"), secrets={"OPENAI_KEY": API_KEY})
    texts: list[str] = []
    with pytest.raises(RuntimeError_, match="overloaded"):
        async for event in runtime.stream(ctx):
            texts.append(event.text)
    assert texts == ["Par"]

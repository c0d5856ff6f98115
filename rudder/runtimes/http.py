"""The `http` runtime: POSTs the run context as JSON to a URL and streams the reply from the
response: plain text, NDJSON events, a JSON document of events, or Server-Sent Events.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import httpx

from ._deadline import Deadline
from ._events import OutputDecoder, event_from_json
from ._httpstream import error_body, post_stream, status_reason, text_chunks
from ._payload import context_payload
from ._secrets import Redactor, redacting, resolve_values
from ._sse import SseDecoder, SseEvent
from .base import RunContext, RunEvent, RunEventKind, RuntimeError_
from .config import HttpConfig, run_config

ACCEPT = "text/event-stream, application/x-ndjson, text/plain;q=0.9, */*;q=0.5"
_NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower()


def _sse_events(sse: SseEvent) -> Iterator[RunEvent]:
    if sse.event == "error":
        raise RuntimeError_(f"the agent reported an error: {sse.data}")
    try:
        obj = json.loads(sse.data)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
        event = event_from_json(obj)
        if event is not None:
            yield event
    elif sse.data:
        yield RunEvent(RunEventKind.TEXT, text=sse.data)


def _json_document(body: str) -> Iterator[RunEvent]:
    try:
        document = json.loads(body)
    except ValueError:
        raise RuntimeError_("the response says JSON but is not valid JSON") from None
    items: list[Any] = document if isinstance(document, list) else [document]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise RuntimeError_("the JSON response is not a Rudder event or a list of events")
        event = event_from_json(item)
        if event is not None:
            yield event


class HttpRuntime:
    type_name = "http"

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        # An injected client is shared and left open; without one, each run opens and closes its own.
        self._client = client

    def stream(self, ctx: RunContext) -> AsyncIterator[RunEvent]:
        redactor = Redactor()
        return redacting(self._stream(ctx, redactor), redactor)

    async def _stream(self, ctx: RunContext, redactor: Redactor) -> AsyncGenerator[RunEvent, None]:
        config = run_config(HttpConfig, ctx.runtime_config)
        headers = {"accept": ACCEPT, **await resolve_values(ctx, config.headers, redactor)}
        deadline = Deadline(config.timeout_sec)
        payload = context_payload(ctx, inline_attachments=True)
        async with post_stream(
            self._client,
            config.url,
            json=payload,
            headers=headers,
            deadline=deadline,
            field="runtime_config.url",
            allow_private=ctx.allow_private_urls,
        ) as response:
            if not response.is_success:
                raise RuntimeError_(status_reason(response, await error_body(response, deadline)))
            media_type = _media_type(response)
            chunks = text_chunks(response, deadline)
            if media_type == "text/event-stream":
                events = _from_sse(chunks)
            elif media_type == "application/json":
                events = _from_json_document(chunks)
            elif media_type in _NDJSON_TYPES:
                events = _decoded(chunks, "jsonl")
            else:
                events = _decoded(chunks, "text" if media_type.startswith("text/") else "auto")
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event


async def _from_sse(chunks: AsyncIterator[str]) -> AsyncGenerator[RunEvent, None]:
    sse = SseDecoder()
    async for chunk in chunks:
        for message in sse.feed(chunk):
            if message.data.strip() == "[DONE]":
                return
            for event in _sse_events(message):
                yield event
    for message in sse.finish():
        if message.data.strip() == "[DONE]":
            return
        for event in _sse_events(message):
            yield event


async def _from_json_document(chunks: AsyncIterator[str]) -> AsyncGenerator[RunEvent, None]:
    body = "".join([chunk async for chunk in chunks])
    for event in _json_document(body):
        yield event


async def _decoded(chunks: AsyncIterator[str], mode: str) -> AsyncGenerator[RunEvent, None]:
    decoder = OutputDecoder("response", mode)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.finish():
        yield event

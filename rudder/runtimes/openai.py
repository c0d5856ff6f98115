"""The `openai` runtime: any OpenAI-compatible `/chat/completions` endpoint, streamed.

Works with OpenAI and with the many servers that copy its API (vLLM, Ollama, LM Studio, DeepSeek,
OpenRouter, ...). Those servers differ at the edges, so the parsing here is lenient about what it
does not need and strict only about what it shows.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import httpx

from . import _context
from ._attachments import openai_content
from ._deadline import Deadline
from ._events import excerpt
from ._httpstream import error_body, post_stream, text_chunks
from ._secrets import Redactor, redacting, resolve_secret
from ._sse import SseDecoder
from .base import RunContext, RunEvent, RunEventKind, RuntimeError_
from .config import OpenAIConfig, run_config

_ROLES = frozenset({"user", "assistant", "system"})


def chat_messages(ctx: RunContext, system_prompt: str | None) -> list[dict[str, Any]]:
    system = "\n\n".join(part for part in (ctx.instructions, system_prompt) if part)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in ctx.messages:
        if message.body and message.role in _ROLES:
            messages.append({"role": message.role, "content": message.body})
    # The newest user message carries the attachments of the message this run answers, and
    # the group's recent messages before it, as untrusted context (_context.py).
    context = _context.block(ctx)
    for message in reversed(messages):
        if message["role"] == "user":
            body = str(message["content"])
            if context:
                body = f"{context}\n\nNew message:\n{body}"
            message["content"] = openai_content(ctx, body)
            break
    return messages


def request_body(ctx: RunContext, config: OpenAIConfig) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": config.model,
        "messages": chat_messages(ctx, config.system_prompt),
        "stream": True,
        # Without this, streamed completions carry no token counts at all.
        "stream_options": {"include_usage": True},
    }
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.max_tokens is not None:
        body["max_tokens"] = config.max_tokens
    return body


def api_error_message(body: str) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return excerpt(body, 300)
    error = document.get("error", document) if isinstance(document, dict) else document
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail")
        if isinstance(message, str) and message:
            return message
    if isinstance(error, str):
        return error
    return excerpt(body, 300)


def _usage_event(usage: dict[str, Any], model: Any) -> RunEvent:
    data: dict[str, Any] = {
        "input_tokens": usage.get("prompt_tokens"),
        "output_tokens": usage.get("completion_tokens"),
    }
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        data["cached_input_tokens"] = details["cached_tokens"]
    if isinstance(model, str):
        data["model"] = model
    return RunEvent(RunEventKind.USAGE, data=data)


_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=\s]+)$")


def image_outputs(images: Any) -> Iterator[RunEvent]:
    """Images a model returns (`delta.images[].image_url.url`, as OpenRouter and others stream
    them) → attachment events. Only inline `data:` URLs: a URL to fetch on the model's say-so
    is never fetched (SSRF)."""
    if not isinstance(images, list):
        return
    for n, image in enumerate(images):
        url = image.get("image_url") if isinstance(image, dict) else None
        url = url.get("url") if isinstance(url, dict) else url
        found = _DATA_URL.match(url) if isinstance(url, str) else None
        if found is None:
            continue
        ext = found.group(1).split("/")[1].replace("jpeg", "jpg")
        name = f"image-{n + 1}.{ext}"
        data = {"name": name, "data_base64": "".join(found.group(2).split())}
        yield RunEvent(RunEventKind.ATTACHMENT, text=name, data=data)


def chunk_events(chunk: Any) -> Iterator[RunEvent]:
    """One streamed `chat.completion.chunk` (or a whole non-streamed completion) → run events."""
    if not isinstance(chunk, dict):
        raise RuntimeError_("the model API sent a stream chunk that is not a JSON object")
    if chunk.get("error"):
        raise RuntimeError_(
            f"the model API reported an error: {api_error_message(json.dumps(chunk))}"
        )
    for choice in chunk.get("choices") or []:
        # `delta` when streamed, `message` when a server ignores `stream: true`.
        delta = choice.get("delta") or choice.get("message") or {}
        # Reasoning models on compatible servers stream their thinking under one of these names.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield RunEvent(RunEventKind.THINKING, text=reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield RunEvent(RunEventKind.TEXT, text=content)
        yield from image_outputs(delta.get("images"))
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        yield _usage_event(usage, chunk.get("model"))


async def _from_sse(chunks: AsyncIterator[str]) -> AsyncGenerator[RunEvent, None]:
    sse = SseDecoder()
    async for text in chunks:
        for message in sse.feed(text):
            if message.data.strip() == "[DONE]":
                return
            for event in _parse_chunk(message.data):
                yield event
    for message in sse.finish():
        if message.data.strip() != "[DONE]":
            for event in _parse_chunk(message.data):
                yield event


def _parse_chunk(data: str) -> Iterator[RunEvent]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise RuntimeError_(
            f"the model API sent a chunk that is not JSON: {excerpt(data)!r}"
        ) from None
    yield from chunk_events(chunk)


class OpenAIRuntime:
    type_name = "openai"

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    def stream(self, ctx: RunContext) -> AsyncIterator[RunEvent]:
        redactor = Redactor()
        return redacting(self._stream(ctx, redactor), redactor)

    async def _stream(self, ctx: RunContext, redactor: Redactor) -> AsyncGenerator[RunEvent, None]:
        config = run_config(OpenAIConfig, ctx.runtime_config)
        headers = {"accept": "text/event-stream"}
        if config.api_key_secret:
            key = await resolve_secret(ctx, config.api_key_secret, redactor)
            headers["authorization"] = f"Bearer {key}"
        url = config.base_url.rstrip("/") + "/chat/completions"
        deadline = Deadline(config.timeout_sec)
        async with post_stream(
            self._client,
            url,
            json=request_body(ctx, config),
            headers=headers,
            deadline=deadline,
            field="runtime_config.base_url",
            allow_private=ctx.allow_private_urls,
        ) as response:
            if not response.is_success:
                detail = api_error_message(await error_body(response, deadline))
                raise RuntimeError_(f"the model API answered HTTP {response.status_code}: {detail}")
            chunks = text_chunks(response, deadline)
            if response.headers.get("content-type", "").startswith("application/json"):
                body = "".join([text async for text in chunks])
                for event in _parse_chunk(body):
                    yield event
                return
            events = _from_sse(chunks)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event

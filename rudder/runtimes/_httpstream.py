"""Streaming one POST with httpx under a run deadline, for the `http` and `openai` runtimes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ._deadline import Deadline
from ._events import excerpt
from .base import RuntimeError_
from .policy import UrlRefused, check_url, guarded_client

_ERROR_BODY_BYTES = 2048


def _where(url: str) -> str:
    # Scheme, host and path only: a query string may carry a token.
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}{parsed.path}"


@contextlib.asynccontextmanager
async def post_stream(
    client: httpx.AsyncClient | None,
    url: str,
    *,
    json: Any,
    headers: dict[str, str],
    deadline: Deadline,
    field: str,
    allow_private: bool,
) -> AsyncIterator[httpx.Response]:
    """POST and yield the response with its body unread; the response (and a client this
    opened) is closed on exit, which is how a stopped run closes its request.

    A target in this server's own network is refused before anything is sent, unless
    `allow_private` (RUDDER_ALLOW_PRIVATE_RUNTIME_URLS); the client this opens checks every
    address it connects to as well (rudder/runtimes/policy.py).
    """
    try:
        await deadline.run(check_url(url, field, allow_private=allow_private))
    except UrlRefused as exc:
        raise RuntimeError_(str(exc)) from None
    owned = client is None
    # No httpx timeouts of our own: the run deadline bounds every wait, including connect.
    http = client if client is not None else guarded_client(field, allow_private=allow_private)
    try:
        request = http.build_request("POST", url, json=json, headers=headers)
        try:
            response = await deadline.run(http.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise RuntimeError_(f"request to {_where(url)} failed: {_describe(exc)}") from None
        try:
            yield response
        finally:
            await response.aclose()
    finally:
        if owned:
            await http.aclose()


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def text_chunks(response: httpx.Response, deadline: Deadline) -> AsyncIterator[str]:
    chunks = response.aiter_text()
    while True:
        try:
            chunk = await deadline.run(anext(chunks))
        except StopAsyncIteration:
            return
        except httpx.HTTPError as exc:
            raise RuntimeError_(f"the response stream broke: {_describe(exc)}") from None
        if chunk:
            yield chunk


async def error_body(response: httpx.Response, deadline: Deadline) -> str:
    """The start of an error response's body: enough to explain, never the whole thing."""
    body = b""
    with contextlib.suppress(httpx.HTTPError, RuntimeError_):
        chunks = response.aiter_bytes()
        while len(body) < _ERROR_BODY_BYTES:
            try:
                body += await deadline.run(anext(chunks))
            except StopAsyncIteration:
                break
    return body[:_ERROR_BODY_BYTES].decode(response.encoding or "utf-8", errors="replace")


def status_reason(response: httpx.Response, detail: str) -> str:
    reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    detail = excerpt(detail, 300)
    return f"{reason}: {detail}" if detail else reason

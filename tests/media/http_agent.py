"""An `http` agent on loopback for the media tests: it keeps every context it is sent, and holds
the answer to a message with a download link until the test lets it go (so the run is still
running while the test uses the link)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.runtimes.runtime_helpers import serve


@dataclass
class HttpAgent:
    url: str = ""
    contexts: list[dict[str, Any]] = field(default_factory=list)
    linked: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def spec(self) -> dict[str, Any]:
        return {"name": "Remote", "runtime_type": "http", "runtime_config": {"url": self.url}}

    def linked_items(self) -> list[dict[str, Any]]:
        return [a for c in self.contexts for a in c.get("attachments", []) if a.get("url")]


@asynccontextmanager
async def http_agent() -> AsyncIterator[HttpAgent]:
    agent = HttpAgent()

    async def answer(request: Request) -> Response:
        context = await request.json()
        agent.contexts.append(context)
        items = context.get("attachments", [])
        if any(a.get("url") for a in items):
            agent.linked.set()
            await agent.release.wait()
        text = "\n".join(f"{a['name']} {a.get('omitted') or 'inline'}" for a in items)
        line = json.dumps({"type": "text", "text": text or "no attachments"})
        return Response(line + "\n", media_type="application/x-ndjson")

    async with serve(Starlette(routes=[Route("/", answer, methods=["POST"])])) as url:
        agent.url = url + "/"
        yield agent

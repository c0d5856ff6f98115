"""End to end: the real server on a loopback port streams a reply over SSE and stops it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rudder.config import Settings
from rudder.server import RunningServer, create_app
from tests.helpers import default_org_and_agent, wait_run

pytestmark = pytest.mark.e2e


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str | None, str, Any]]:
    event_id: str | None = None
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event_id, event, json.loads("\n".join(data))
            event_id, event, data = None, "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    async with RunningServer(create_app(settings)) as running:
        yield running


async def test_reply_streams_over_sse_and_resumes(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        org, agent = await default_org_and_agent(client)
        conv = (
            await client.post(
                f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
            )
        ).json()
        url = f"/api/conversations/{conv['id']}/events"
        deltas: list[dict[str, Any]] = []
        last_id = None
        async with client.stream("GET", url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            first = await anext(events)
            assert first[1] == "snapshot" and first[2]["messages"] == []
            posted = (
                await client.post(
                    f"/api/conversations/{conv['id']}/messages", json={"body": "stream me"}
                )
            ).json()
            async for event_id, event, data in events:
                last_id = event_id or last_id
                if event == "message.delta":
                    deltas.append(data)
                if event == "message.updated" and data["role"] == "assistant":
                    final = data
                    break
        assert len(deltas) > 3, "the reply arrived in one piece instead of streaming"
        assert "".join(d["delta"] for d in deltas) == final["body"]
        assert final["status"] == "completed" and "stream me" in final["body"]
        # Offsets let a client stitch deltas after a snapshot.
        assert [d["offset"] for d in deltas] == [
            sum(len(x["delta"]) for x in deltas[:i]) for i in range(len(deltas))
        ]
        assert (await wait_run(client, posted["run_id"]))["status"] == "succeeded"

        # Resuming with Last-Event-ID replays only what came after it: here, the final run update.
        async with client.stream("GET", url, headers={"Last-Event-ID": last_id or ""}) as response:
            event_id, event, data = await anext(sse_events(response))
            assert event == "run.updated" and data["status"] == "succeeded"
        # An id from another process gets a snapshot instead.
        async with client.stream("GET", url, headers={"Last-Event-ID": "zzzz-1"}) as response:
            _, event, data = await anext(sse_events(response))
            assert event == "snapshot" and len(data["messages"]) == 2


async def test_stop_mid_stream_over_sse(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        org, agent = await default_org_and_agent(client)
        conv = (
            await client.post(
                f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
            )
        ).json()
        async with client.stream("GET", f"/api/conversations/{conv['id']}/events") as response:
            events = sse_events(response)
            await anext(events)
            posted = (
                await client.post(
                    f"/api/conversations/{conv['id']}/messages", json={"body": "slow story"}
                )
            ).json()
            seen = 0
            async for _, event, data in events:
                if event == "message.delta":
                    seen += 1
                    if seen == 3:
                        stop = await client.post(f"/api/conversations/{conv['id']}/stop")
                        assert stop.json()["stopped"] == 1
                if event == "message.updated" and data["role"] == "assistant":
                    assert data["status"] == "stopped" and data["body"]
                    break
        assert (await wait_run(client, posted["run_id"]))["status"] == "cancelled"

"""A Feishu-bound conversation whose agent says exactly what the test asks, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from rudder.chat import post_user_message
from rudder.db.models import Conversation, Integration, Message, OutboxItem, Run
from rudder.feishu import outbound
from rudder.feishu.outbound import Outbound
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent

SCRIPT = Path(__file__).with_name("agent_script.py")


@dataclass
class Call:
    at: float
    method: str
    path: str
    body: dict[str, Any]
    code: int | None = None


@dataclass
class Bot:
    rig: FeishuRig
    ob: Outbound
    agent_id: str
    integration_id: str
    app: dict[str, Any]
    user_id: str
    chat_id: str
    conversation_id: str
    calls: list[Call] = field(default_factory=list)

    async def set_style(self, style: str) -> None:
        async with self.rig.services.sessions() as session, session.begin():
            await session.execute(
                update(Integration)
                .where(Integration.id == self.integration_id)
                .values(reply_style=style)
            )

    async def ask(self, **spec: Any) -> tuple[str, str]:
        """Post a user message in the sandbox chat and run the agent on it: (run id, message id)."""
        posted = await self.rig.control(
            "POST",
            f"/chats/{self.chat_id}/messages",
            json={"user_id": self.user_id, "text": json.dumps(spec)},
        )
        async with self.rig.services.sessions() as session:
            conv = await session.get(Conversation, self.conversation_id)
            assert conv is not None
            _, run = await post_user_message(
                self.rig.services,
                session,
                conv,
                json.dumps(spec),
                author_user_id=None,
                source="feishu",
                external_message_id=posted["message_id"],
            )
        return run.id, str(posted["message_id"])

    async def wait_done(self, run_id: str, timeout: float = 20.0) -> None:
        """Until the run's reply ledger row is sent (everything for the run was attempted)."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.rig.services.sessions() as session:
                status = await session.scalar(
                    select(OutboxItem.status).where(
                        OutboxItem.run_id == run_id, OutboxItem.kind == "run"
                    )
                )
            if status == "sent":
                return
            assert time.monotonic() < deadline, f"reply of run {run_id} not done"
            await asyncio.sleep(0.03)

    async def bot_messages(self) -> list[dict[str, Any]]:
        items = (await self.rig.control("GET", f"/chats/{self.chat_id}/messages"))["items"]
        return [m for m in items if m["sender"]["sender_type"] == "app"]

    async def stored(self, run_id: str) -> tuple[Run, Message]:
        async with self.rig.services.sessions() as session:
            run = await session.get(Run, run_id)
            assert run is not None and run.reply_message_id
            message = await session.get(Message, run.reply_message_id)
            assert message is not None
            return run, message

    async def fault(self, api: str, code: int, count: int = 1, http_status: int = 400) -> None:
        await self.rig.control(
            "POST",
            "/faults",
            json={
                "kind": "fail_api",
                "api": api,
                "code": code,
                "count": count,
                "http_status": http_status,
                "app_id": self.app["app_id"],
            },
        )

    def card_ops(self) -> dict[str, list[Call]]:
        ops: dict[str, list[Call]] = {}
        for call in self.calls:
            parts = call.path.split("/")
            if call.path.startswith("/open-apis/cardkit/v1/cards/") and len(parts) > 5:
                ops.setdefault(parts[5], []).append(call)
        return ops


@pytest.fixture
async def bot(rig: FeishuRig) -> AsyncIterator[Bot]:
    org, _ = await default_org_and_agent(rig.client)
    agent = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/agents",
            json={
                "name": "Echo",
                "runtime_type": "process",
                "runtime_config": {"command": sys.executable, "args": [str(SCRIPT)]},
            },
        )
    ).json()
    app = await rig.control("POST", "/apps", json={"name": "Echo Bot", "brand": "feishu"})
    # No events: the inbound pipeline must not start runs of its own in these tests.
    await rig.control("PATCH", f"/apps/{app['app_id']}", json={"event_types": []})
    connected = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert connected.status_code == 200, connected.text
    user = await rig.control("POST", "/users", json={"name": "Ada"})
    chat = await rig.control(
        "POST",
        "/chats",
        json={"type": "p2p", "user_ids": [user["user_id"]], "app_ids": [app["app_id"]]},
    )
    services = rig.services
    async with services.sessions() as session, session.begin():
        integration = await session.scalar(
            select(Integration).where(Integration.agent_id == agent["id"])
        )
        assert integration is not None
        conv = Conversation(
            org_id=org["id"],
            agent_id=agent["id"],
            title="Feishu chat",
            source="feishu",
            integration_id=integration.id,
            region="feishu",
            external_chat_id=chat["chat_id"],
            external_chat_type="p2p",
            bound=True,
        )
        session.add(conv)
        await session.flush()
        integration_id, conversation_id = integration.id, conv.id

    ob = outbound.install(services)
    ob.policy.base_s = 0.02  # fast retries; the schedule itself is tested on its own
    recorded = Bot(
        rig, ob, agent["id"], integration_id, app, user["user_id"], chat["chat_id"], conversation_id
    )
    pending: dict[int, Call] = {}

    async def on_request(request: httpx.Request) -> None:
        body = json.loads(request.content) if request.content else {}
        call = Call(time.monotonic(), request.method, request.url.path, body)
        pending[id(request)] = call
        recorded.calls.append(call)

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        call = pending.pop(id(response.request), None)
        if call is not None:
            call.code = int(response.json().get("code", -1))

    services.http.event_hooks["request"].append(on_request)
    services.http.event_hooks["response"].append(on_response)
    yield recorded
    await outbound.shutdown(services)

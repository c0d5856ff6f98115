"""A bound DM between a sandbox person and a bot whose agent is tests/media/media_agent.py."""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rudder.db.models import Attachment, Conversation, new_id
from rudder.media.blobs import spool
from rudder.media.sniff import sniff
from rudder.services import Services
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.routing.dialogue import activity, bind, connected_bot, dm, person, say

AGENT = Path(__file__).with_name("media_agent.py")


@dataclass
class Chat:
    rig: FeishuRig
    agent: dict[str, Any]
    app: dict[str, Any]
    user_id: str
    chat_id: str
    routed: int = 1

    async def send(self, message_type: str, data: bytes | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {"user_id": self.user_id, "message_type": message_type, **extra}
        if data is not None:
            body["data_base64"] = base64.b64encode(data).decode()
        sent = await self.rig.control("POST", f"/chats/{self.chat_id}/messages", json=body)
        return str(sent["message_id"])

    async def routed_row(self) -> dict[str, Any]:
        self.routed += 1
        rows = await activity(self.rig, self.agent["id"], self.routed)
        return rows[0]

    async def items(self) -> list[dict[str, Any]]:
        found = await self.rig.control("GET", f"/chats/{self.chat_id}/messages")
        items: list[dict[str, Any]] = found["items"]
        return items

    async def bot_items(self) -> list[dict[str, Any]]:
        return [m for m in await self.items() if m["sender"]["sender_type"] == "app"]

    async def wait_bot_text(self, needle: str, timeout: float = 20) -> str:
        async def seen() -> str | None:
            for m in await self.bot_items():
                if needle in (m.get("text") or ""):
                    return str(m["text"])
            return None

        found: str = await wait_for(seen, timeout=timeout)
        return found


async def media_chat(rig: FeishuRig, spec: dict[str, Any] | None = None) -> Chat:
    """`spec`: the new agent's body (default: the process agent media_agent.py)."""
    org, _ = await default_org_and_agent(rig.client)
    created = await rig.client.post(
        f"/api/orgs/{org['id']}/agents",
        json=spec
        or {
            "name": "Lens",
            "runtime_type": "process",
            "runtime_config": {"command": sys.executable, "args": [str(AGENT)]},
        },
    )
    assert created.status_code in (200, 201), created.text
    agent, app = await connected_bot(rig, created.json())
    ada = await person(rig, "Ada")
    chat_id = await dm(rig, ada, app)
    await say(rig, chat_id, ada, "hi")
    await bind(rig, chat_id)
    await activity(rig, agent["id"], 1)
    return Chat(rig, agent, app, ada, chat_id)


async def stored_attachment(
    services: Services, conversation_id: str, message_id: str, data: bytes, name: str = "a.png"
) -> str:
    """An attachment of `message_id` with `data` in the blob store (as routing stores one)."""
    media = services.runs.media
    assert media is not None

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    async with spool(chunks(), media.store.spool_dir) as spooled:
        blob_key = await media.store.keep(spooled)
        mime, size, digest = sniff(spooled.head), spooled.size, spooled.sha256
    async with services.sessions() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        assert conv is not None
        row = Attachment(
            id=new_id(),
            org_id=conv.org_id,
            conversation_id=conv.id,
            message_id=message_id,
            kind="image",
            name=name,
            mime_type=mime,
            size=size,
            sha256=digest,
            blob_key=blob_key,
            status="stored",
        )
        session.add(row)
    return row.id

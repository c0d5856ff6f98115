"""Helpers for the web tests: the default agent, and a Feishu-bound conversation in the DB."""

from __future__ import annotations

import httpx
from markupsafe import escape

from rudder.db.models import Conversation
from rudder.domain import conversations as convs
from rudder.services import Services


def e(text: str) -> str:
    """A text as it appears in a rendered page (HTML-escaped)."""
    return str(escape(text))


async def first_agent(client: httpx.AsyncClient) -> tuple[str, str]:
    org = (await client.get("/api/orgs")).json()[0]
    agent = (await client.get(f"/api/orgs/{org['id']}/agents")).json()[0]
    return str(org["id"]), str(agent["id"])


async def insert_bound_conversation(services: Services, org_id: str, agent_id: str) -> str:
    """A conversation as the Feishu inbound pipeline leaves it: source feishu, bound, p2p."""
    async with services.sessions() as session, session.begin():
        conv = Conversation(
            org_id=org_id,
            agent_id=agent_id,
            title="Ada (Feishu)",
            source="feishu",
            region="feishu",
            bound=True,
            external_chat_id="oc_test_p2p",
            external_chat_type="p2p",
        )
        session.add(conv)
        await session.flush()
        await convs.append_message(session, conv, role="user", body="hello from Feishu")
        await convs.append_message(session, conv, role="assistant", body="Hi Ada!")
        return conv.id

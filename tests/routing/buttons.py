"""Reply cards with buttons, end to end: Rudder on a real socket, the sandbox on loopback.

`served` (tests/conftest.py) is the `rig` with Rudder behind uvicorn, so the sandbox can push
webhooks (and card callbacks) to it. A `Team` is a slow agent
with its bot and three linked members: Ada (who asks), Bob (another member) and Root (an admin).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from rudder.feishu.inbound import pipeline
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.routing.dialogue import open_id_of, person


@dataclass
class Team:
    rig: FeishuRig
    org_id: str
    agent: dict[str, Any]
    app: dict[str, Any]
    integration_id: str
    ada: str
    bob: str
    root: str
    members: dict[str, str]  # sandbox user id -> Rudder user id


async def team(rig: FeishuRig, *, transport: str = "long_connection", delay_ms: int = 40) -> Team:
    org, _ = await default_org_and_agent(rig.client)
    agent = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/agents",
            json={
                "name": "Counter",
                "runtime_type": "process",
                "runtime_config": {
                    "command": sys.executable,
                    "args": ["-m", "rudder.runtimes.example_agent"],
                    "env": {"RUDDER_EXAMPLE_DELAY_MS": str(delay_ms)},
                },
            },
        )
    ).json()
    app = await rig.control("POST", "/apps", json={"name": "Counter", "brand": "feishu"})
    body: dict[str, Any] = {
        "region": "feishu",
        "app_id": app["app_id"],
        "app_secret": app["app_secret"],
    }
    if transport == "webhook":
        body.update(
            transport="webhook",
            encrypt_key=app["encrypt_key"],
            verification_token=app["verification_token"],
        )
    r = await rig.client.post(f"/api/agents/{agent['id']}/integrations/feishu/manual", json=body)
    assert r.status_code == 200, r.text
    integration_id = r.json()["id"]
    if transport == "webhook":
        await rig.control(
            "PATCH",
            f"/apps/{app['app_id']}",
            json={
                "event_delivery": "webhook",
                "webhook_url": f"{rig.client.base_url}/api/integrations/feishu/"
                f"{integration_id}/webhook",
            },
        )
    else:

        async def live() -> bool:
            state = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()[
                "connection"
            ]
            return bool(state and state["status"] == "connected")

        await wait_for(live, timeout=10)
    members: dict[str, str] = {}
    ids = []
    for name, role in (("Ada", "member"), ("Bob", "member"), ("Root", "admin")):
        user = await person(rig, name)
        member = (
            await rig.client.post(
                f"/api/orgs/{org['id']}/members",
                json={"email": f"{name.lower()}@example.com", "name": name, "role": role},
            )
        ).json()
        bound = await rig.client.post(
            f"/api/orgs/{org['id']}/feishu-user-bindings",
            json={
                "integration_id": integration_id,
                "open_id": await open_id_of(rig, user, app),
                "user_id": member["user_id"],
            },
        )
        assert bound.status_code == 200, bound.text
        members[user] = member["user_id"]
        ids.append(user)
    ada, bob, root = ids
    return Team(rig, org["id"], agent, app, integration_id, ada, bob, root, members)


async def bot_cards(rig: FeishuRig, chat_id: str) -> list[dict[str, Any]]:
    items = (await rig.control("GET", f"/chats/{chat_id}/messages"))["items"]
    return [
        m for m in items if m["sender"]["sender_type"] == "app" and m["msg_type"] == "interactive"
    ]


def button(card_message: dict[str, Any], label: str) -> dict[str, Any] | None:
    """The value of the card's button labelled `label` (None when the card has no such button)."""
    elements = ((card_message.get("card") or {}).get("body") or {}).get("elements") or []
    for e in elements:
        if e.get("tag") == "button" and e["text"]["content"] == label:
            value: dict[str, Any] = e["behaviors"][0]["value"]
            return value
    return None


async def press(rig: FeishuRig, message_id: str, user_id: str, value: dict[str, Any]) -> Any:
    """A person presses a card's button; the sandbox answers with the callback's record."""
    return await rig.control(
        "POST",
        f"/messages/{message_id}/actions",
        json={"user_id": user_id, "value": value, "tag": "button"},
    )


async def card_with(rig: FeishuRig, chat_id: str, label: str) -> dict[str, Any]:
    """The newest bot card once it carries a button labelled `label`."""

    async def found() -> dict[str, Any] | None:
        cards = await bot_cards(rig, chat_id)
        return cards[-1] if cards and button(cards[-1], label) is not None else None

    card: dict[str, Any] = await wait_for(found, timeout=15)
    return card


async def outcomes(rig: FeishuRig, agent_id: str) -> list[tuple[str, str, str]]:
    """(event_type, outcome, reason) of the agent's activity, oldest first."""
    await pipeline(rig.services).wait_idle()
    rows = (await rig.client.get(f"/api/agents/{agent_id}/integrations/feishu/activity")).json()
    return [(r["event_type"], r["outcome"], r["reason"] or "") for r in reversed(rows)]

"""A crew for hand-off tests: several agents, each with its own bot, one member (Ada) linked to
all of them. The agents run `relay_agent.py`, which passes a route from agent to agent."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rudder.feishu.inbound import pipeline
from rudder.feishu.outbound import outbound_of
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.routing.dialogue import open_id_of, person

RELAY = str(Path(__file__).with_name("relay_agent.py"))


@dataclass
class Crew:
    rig: FeishuRig
    org_id: str
    ada: str  # sandbox user
    ada_member: str  # her Rudder user id
    agents: dict[str, dict[str, Any]]  # by name
    apps: dict[str, dict[str, Any]]
    integrations: dict[str, str]

    def at(self, *names: str) -> dict[str, Any]:
        return {"mention_app_ids": [self.apps[n]["app_id"] for n in names]}


async def crew(rig: FeishuRig, names: tuple[str, ...] = ("Alpha", "Beta", "Gamma")) -> Crew:
    org, _ = await default_org_and_agent(rig.client)
    ada = await person(rig, "Ada")
    member = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/members",
            json={"email": "ada@example.com", "name": "Ada", "role": "member"},
        )
    ).json()
    c = Crew(rig, org["id"], ada, member["user_id"], {}, {}, {})
    for name in names:
        await recruit(c, name)
    return c


async def recruit(c: Crew, name: str, org_id: str | None = None) -> None:
    """One more agent with its own connected bot; Ada is linked to it in the crew's org."""
    rig = c.rig
    agent = (
        await rig.client.post(
            f"/api/orgs/{org_id or c.org_id}/agents",
            json={
                "name": name,
                "runtime_type": "process",
                "runtime_config": {"command": sys.executable, "args": [RELAY]},
            },
        )
    ).json()
    app = await rig.control("POST", "/apps", json={"name": name, "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 200, r.text
    c.agents[name], c.apps[name], c.integrations[name] = agent, app, r.json()["id"]

    async def live() -> bool:
        state = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()[
            "connection"
        ]
        return bool(state and state["status"] == "connected")

    await wait_for(live, timeout=10)
    if org_id is not None:
        return
    bound = await rig.client.post(
        f"/api/orgs/{c.org_id}/feishu-user-bindings",
        json={
            "integration_id": c.integrations[name],
            "open_id": await open_id_of(rig, c.ada, app),
            "user_id": c.ada_member,
        },
    )
    assert bound.status_code == 200, bound.text


async def runs_of(c: Crew, name: str) -> list[dict[str, Any]]:
    """The agent's runs, oldest first."""
    rows: list[dict[str, Any]] = (
        await c.rig.client.get(f"/api/agents/{c.agents[name]['id']}/runs")
    ).json()
    return list(reversed(rows))


async def finished(c: Crew, name: str, status: str = "succeeded") -> dict[str, Any]:
    """The agent's newest run, once it has `status`."""

    async def done() -> dict[str, Any] | None:
        runs = await runs_of(c, name)
        return runs[-1] if runs and runs[-1]["status"] == status else None

    found: dict[str, Any] = await wait_for(done, timeout=60)
    return found


async def said(c: Crew, chat_id: str, name: str) -> list[dict[str, Any]]:
    """What the bot of `name` posted in the chat, oldest first."""
    items = (await c.rig.control("GET", f"/chats/{chat_id}/messages"))["items"]
    return [m for m in items if m["sender"]["id"] == c.apps[name]["app_id"]]


async def settled(c: Crew) -> None:
    """Every event, run and reply has ended. A reply hands over before it ends, and the new
    run's reply is a task of its own, so waiting for the replies waits for the whole chain."""
    for _ in range(2):
        await pipeline(c.rig.services).wait_idle(timeout=30)
        await outbound_of(c.rig.services).wait_idle(timeout=120)
        await c.rig.services.runs.wait_idle(timeout=60)

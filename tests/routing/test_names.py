"""People and chats by name: conversation titles, what the agent is told, the Members page —
and, without the permissions, plain fallbacks plus a hint in the Integrations tab."""

from __future__ import annotations

from rudder import texts
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.dialogue import (
    activity,
    bind,
    bot_texts,
    connected_bot,
    conversations,
    dm,
    group,
    person,
    say,
)


async def test_dm_and_group_titles_and_the_agent_greeting_use_feishu_names(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    ada = await person(rig, "Ada Lovelace")
    chat = await dm(rig, ada, app)
    await say(rig, chat, ada, "hello")
    await bind(rig, chat)
    await say(rig, chat, ada, "hello again")
    await activity(rig, agent["id"], 2)

    async def greeted() -> bool:
        return any("Hi Ada Lovelace!" in t for t in await bot_texts(rig, chat))

    await wait_for(greeted, timeout=15)  # the agent was told who is speaking
    room = await group(rig, "Launch room", [ada], [app])
    await say(rig, room, ada, "status?", mention_app_ids=[app["app_id"]])

    async def both() -> dict[str, dict[str, str]] | None:
        found = {c["external_chat_type"]: c for c in await conversations(rig, agent["org_id"])}
        return found if "group" in found else None

    titles = await wait_for(both, timeout=15)
    assert titles["p2p"]["title"] == f"DM with Ada Lovelace · {agent['name']}"
    assert titles["group"]["title"] == f"Launch room · {agent['name']}"
    assert titles["group"]["external_chat_name"] == "Launch room"
    identities = (await rig.client.get(f"/api/orgs/{agent['org_id']}/feishu-identities")).json()
    items = identities["items"] if isinstance(identities, dict) else identities
    assert [i["display_name"] for i in items] == ["Ada Lovelace"]
    page = await rig.client.get(f"/agents/{agent['id']}/integrations")
    assert 'data-testid="names-hint"' not in page.text


async def test_without_the_permissions_titles_fall_back_and_the_tab_says_why(
    rig: FeishuRig,
) -> None:
    agent, app = await connected_bot(rig)
    await rig.control(
        "PATCH", f"/apps/{app['app_id']}", json={"scopes": ["im:message", "cardkit:card:write"]}
    )
    ada = await person(rig, "Ada Lovelace")
    chat = await dm(rig, ada, app)
    await say(rig, chat, ada, "hello")
    await bind(rig, chat)
    await say(rig, chat, ada, "hello again")
    rows = await activity(rig, agent["id"], 2)
    assert rows[0]["outcome"] == "processed", rows[0]  # a missing name never fails a message
    convs = await conversations(rig, agent["org_id"])
    assert [c["title"] for c in convs if c["source"] == "feishu"] == [
        f"{texts.CHAT_TITLE_DM_UNNAMED} · {agent['name']}"
    ]
    assert not any("99991672" in t or "denied" in t.lower() for t in await bot_texts(rig, chat))
    page = await rig.client.get(f"/agents/{agent['id']}/integrations")
    assert 'data-testid="names-hint"' in page.text and "contact:user.base:readonly" in page.text

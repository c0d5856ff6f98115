"""A bot's per-chat policy, as Feishu users meet it in groups: allowlisted groups only, no
mention needed, anyone in the chat as a named member, quiet mode; each change applies to the
next message."""

from __future__ import annotations

from typing import Any

from rudder import texts
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.buttons import Team, team
from tests.routing.dialogue import activity, bot_texts, group, person, prompts, say


async def _policy(rig: FeishuRig, t: Team, chat_id: str, **values: Any) -> None:
    r = await rig.client.put(
        f"/api/agents/{t.agent['id']}/integrations/feishu/chat-policies/{chat_id}", json=values
    )
    assert r.status_code == 200, r.text


def _at(t: Team) -> dict[str, Any]:
    return {"mention_app_ids": [t.app["app_id"]]}


async def _outcomes(rig: FeishuRig, t: Team, count: int) -> list[tuple[str, str]]:
    rows = await activity(rig, t.agent["id"], count)
    return [(r["outcome"], r["reason"] or "") for r in rows]


async def test_an_allowlist_answers_only_in_its_groups(rig: FeishuRig) -> None:
    t = await team(rig)
    allowed = await group(rig, "Allowed", [t.ada], [t.app])
    other = await group(rig, "Other", [t.ada], [t.app])
    await _policy(rig, t, "*", answers=False)
    await _policy(rig, t, allowed, answers=True)
    await say(rig, other, t.ada, "hello there", **_at(t))
    ignored = await _outcomes(rig, t, 3)  # two bot-added events and the message
    assert ("ignored", texts.CHAT_POLICY_NOT_ALLOWED) in ignored
    assert await bot_texts(rig, other) == []
    await say(rig, allowed, t.ada, "hello here", **_at(t))
    await _outcomes(rig, t, 4)

    async def answered() -> bool:
        return any("hello here" in text for text in await bot_texts(rig, allowed))

    await wait_for(answered, timeout=15)


async def test_no_mention_needed_and_anyone_acts_as_the_named_member(rig: FeishuRig) -> None:
    t = await team(rig)
    await rig.control(
        "PATCH", f"/apps/{t.app['app_id']}", json={"receive_all_group_messages": True}
    )
    cy = await person(rig, "Cy")  # in the tenant, never bound
    chat = await group(rig, "Open room", [t.ada, cy], [t.app])
    # By default: no mention, no answer; an unbound person gets a binding prompt.
    await say(rig, chat, t.ada, "anyone there")
    assert ("ignored", "group message does not mention this bot") in await _outcomes(rig, t, 2)
    await _policy(
        rig, t, chat, require_mention=False, audience="tenant", default_user_id=t.members[t.bob]
    )
    await say(rig, chat, cy, "what is new")

    async def answered() -> bool:
        return any("what is new" in text for text in await bot_texts(rig, chat))

    await wait_for(answered, timeout=15)
    assert await prompts(rig, chat) == []  # no binding prompt: Cy acts as Bob here
    conversations = (await rig.client.get(f"/api/orgs/{t.org_id}/conversations")).json()
    convs = [c for c in conversations if c.get("external_chat_id") == chat]
    assert convs, conversations
    msgs = (await rig.client.get(f"/api/conversations/{convs[0]['id']}/messages")).json()
    mine = [m for m in msgs if m["body"] == "what is new"]
    assert mine and mine[0]["author_user_id"] == t.members[t.bob]


async def test_a_quiet_group_gets_no_prompts_or_notices(rig: FeishuRig) -> None:
    t = await team(rig)
    cy = await person(rig, "Cy")
    chat = await group(rig, "Quiet room", [t.ada, cy], [t.app])
    await _policy(rig, t, chat, quiet=True)
    await say(rig, chat, cy, "who are you", **_at(t))
    outcomes = await _outcomes(rig, t, 2)
    assert any(o == "ignored" and "quiet group" in r for o, r in outcomes), outcomes
    assert await bot_texts(rig, chat) == []
    # The same person in a normal group is sent the (private) binding prompt.
    loud = await group(rig, "Loud room", [cy], [t.app])
    await say(rig, loud, cy, "who are you", **_at(t))
    outcomes = await _outcomes(rig, t, 4)
    assert (
        "held",
        "sender is not linked to a Rudder member; binding prompt sent privately",
    ) in outcomes

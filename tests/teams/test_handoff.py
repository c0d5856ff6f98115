"""Hand-offs between agents' bots in one group: a reply that @-mentions another agent's bot in
the chat starts that agent's run, which answers from its own bot; hop limit, loops, /stop, and
bots that are not in the chat or do not answer there."""

from __future__ import annotations

from typing import Any

from rudder import texts
from rudder.config import Settings
from rudder.db.models import Run
from rudder.feishu import handoff
from rudder.feishu.outbound import outbound_of
from rudder.feishu.reply_stream import Ending, load_target
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.buttons import button, press
from tests.routing.dialogue import group, say
from tests.teams.crew import Crew, crew, finished, runs_of, said, settled


def a_reply_body(handed: list[dict[str, Any]]) -> str:
    """Alpha's reply as Alpha wrote it: the text after the hand-off's header line."""
    return str(handed[0]["body"]).split("\n\n", 1)[1]


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m["text"]) for m in messages]


async def test_a_reply_hands_over_twice_with_real_mentions_and_run_links(rig: FeishuRig) -> None:
    c = await crew(rig)
    chat = await group(rig, "Team room", [c.ada], list(c.apps.values()))
    await say(rig, chat, c.ada, "route: Alpha>Beta>Gamma", **c.at("Alpha"))
    gamma = await finished(c, "Gamma")
    await settled(c)
    alpha, beta = (await runs_of(c, "Alpha"))[0], (await runs_of(c, "Beta"))[0]
    # The run links, in the API: each hop names the run that handed to it and the chain's start.
    assert alpha["handed_from_run_id"] is None and alpha["handoff_hop"] == 0
    assert (beta["handed_from_run_id"], beta["handoff_root_id"], beta["handoff_hop"]) == (
        alpha["id"],
        alpha["id"],
        1,
    )
    assert (gamma["handed_from_run_id"], gamma["handoff_root_id"], gamma["handoff_hop"]) == (
        beta["id"],
        alpha["id"],
        2,
    )
    one = (await rig.client.get(f"/api/runs/{gamma['id']}")).json()
    assert one["handed_from_run_id"] == beta["id"]
    # Each agent answered from its own bot; each hand-off is a real mention of the next bot.
    [a_msg], [b_msg], [g_msg] = [await said(c, chat, n) for n in ("Alpha", "Beta", "Gamma")]
    assert "@Beta your turn" in a_msg["text"]
    assert [m["app_id"] for m in a_msg["mentions"]] == [c.apps["Beta"]["app_id"]]
    assert "@Gamma your turn" in b_msg["text"]
    assert [m["app_id"] for m in b_msg["mentions"]] == [c.apps["Gamma"]["app_id"]]
    assert "Gamma is done" in g_msg["text"] and g_msg["mentions"] == []
    # Beta's reply answers Alpha's message; Gamma's answers Beta's.
    assert b_msg["parent_id"] == a_msg["message_id"]
    assert g_msg["parent_id"] == b_msg["message_id"]
    # Beta ran in its own conversation for the chat, told who handed over and with what.
    assert beta["conversation_id"] != alpha["conversation_id"]
    msgs = (await rig.client.get(f"/api/conversations/{beta['conversation_id']}/messages")).json()
    handed = msgs[0]
    assert handed["role"] == "user" and handed["author_agent_id"] == c.agents["Alpha"]["id"]
    assert "Alpha handed this over to you" in handed["body"] and "answering Ada" in handed["body"]
    assert "@Beta your turn" in handed["body"]
    # Messenger shows the chain: who handed over, linked to the run that did.
    page = await rig.client.get(f"/messenger/{beta['conversation_id']}")
    assert f"/agents/{c.agents['Alpha']['id']}/runs/{alpha['id']}" in page.text
    assert "handed over by Alpha" in page.text
    run_page = await rig.client.get(f"/agents/{c.agents['Beta']['id']}/runs/{beta['id']}")
    assert f"/agents/{c.agents['Alpha']['id']}/runs/{alpha['id']}" in run_page.text
    assert f"/agents/{c.agents['Gamma']['id']}/runs/{gamma['id']}" in run_page.text
    # A reply driven again (a restart before its ledger was marked) hands over only once.
    ob = outbound_of(rig.services)
    target = await load_target(ob, alpha["id"])
    assert target is not None
    again = await handoff.plan(
        rig.services, alpha["id"], Ending("succeeded", a_reply_body(msgs), None)
    )
    assert again is not None and again.to is not None and again.to.agent_name == "Beta"
    assert await handoff.hand_over(ob, alpha["id"], again, target, a_msg["message_id"]) is None
    await settled(c)
    assert len(await runs_of(c, "Beta")) == 1


async def test_a_loop_ends_at_the_hop_limit_with_a_note(rig: FeishuRig) -> None:
    c = await crew(rig, ("Alpha", "Beta"))
    chat = await group(rig, "Ping pong", [c.ada], list(c.apps.values()))
    route = ">".join(["Alpha", "Beta"] * 4)
    await say(rig, chat, c.ada, f"route: {route}", **c.at("Alpha"))
    note = texts.HANDOFF_LIMIT.format(limit=3, agent="Alpha")

    async def noted() -> bool:
        return note in _texts(await said(c, chat, "Beta"))

    await wait_for(noted, timeout=90)
    await settled(c)
    # A(0) → B(1) → A(2) → B(3): three hand-offs, then the note instead of a fourth.
    alpha, beta = await runs_of(c, "Alpha"), await runs_of(c, "Beta")
    assert [r["handoff_hop"] for r in alpha] == [0, 2]
    assert [r["handoff_hop"] for r in beta] == [1, 3]
    assert all(r["status"] == "succeeded" for r in alpha + beta)
    # A new message from a person starts a new chain with its own count.
    await say(rig, chat, c.ada, "route: Alpha>Beta", **c.at("Alpha"))

    async def again() -> bool:
        return len(await runs_of(c, "Beta")) == 3

    await wait_for(again, timeout=60)
    await settled(c)
    assert (await runs_of(c, "Beta"))[-1]["handoff_hop"] == 1


async def test_the_hop_limit_is_configurable(rig: FeishuRig, monkeypatch: Any) -> None:
    monkeypatch.setenv("RUDDER_HANDOFF_MAX_HOPS", "5")
    assert Settings().handoff_max_hops == 5
    rig.services.settings.handoff_max_hops = 1
    c = await crew(rig, ("Alpha", "Beta", "Gamma"))
    chat = await group(rig, "Short chain", [c.ada], list(c.apps.values()))
    await say(rig, chat, c.ada, "route: Alpha>Beta>Gamma", **c.at("Alpha"))
    note = texts.HANDOFF_LIMIT.format(limit=1, agent="Gamma")

    async def noted() -> bool:
        return note in _texts(await said(c, chat, "Beta"))

    await wait_for(noted, timeout=60)
    await settled(c)
    assert await runs_of(c, "Gamma") == []
    # 0 turns hand-offs off: the mention stays a mention, with no note.
    rig.services.settings.handoff_max_hops = 0
    await say(rig, chat, c.ada, "route: Alpha>Beta>Gamma", **c.at("Alpha"))

    async def second() -> bool:
        runs = await runs_of(c, "Alpha")
        return len(runs) == 2 and runs[-1]["status"] == "succeeded"

    await wait_for(second, timeout=60)
    await settled(c)
    assert len(await runs_of(c, "Beta")) == 1
    assert sum("Hand-off limit" in t for t in _texts(await said(c, chat, "Alpha"))) == 0


async def test_an_agent_never_hands_to_itself(rig: FeishuRig) -> None:
    c = await crew(rig, ("Alpha", "Beta"))
    chat = await group(rig, "Echo", [c.ada], list(c.apps.values()))
    await say(rig, chat, c.ada, "route: Alpha>Alpha>Alpha", **c.at("Alpha"))
    await finished(c, "Alpha")
    await settled(c)
    assert len(await runs_of(c, "Alpha")) == 1
    assert await runs_of(c, "Beta") == []
    [reply] = await said(c, chat, "Alpha")
    assert "@Alpha your turn" in reply["text"]
    assert texts.HANDOFF_LIMIT.split("(")[0] not in reply["text"]


async def test_a_bot_not_in_the_chat_or_not_answering_there_is_not_handed_to(
    rig: FeishuRig,
) -> None:
    c = await crew(rig, ("Alpha", "Beta", "Delta"))
    # Delta's bot is connected to the same organization but not in this group.
    chat = await group(rig, "Two bots", [c.ada], [c.apps["Alpha"], c.apps["Beta"]])
    await say(rig, chat, c.ada, "route: Alpha>Delta", **c.at("Alpha"))
    await finished(c, "Alpha")
    await settled(c)
    assert await runs_of(c, "Delta") == []
    [reply] = await said(c, chat, "Alpha")
    assert "@Delta your turn" in reply["text"] and reply["mentions"] == []  # no real mention
    # Beta's policy keeps it out of this group: it takes no hand-off there either.
    r = await rig.client.put(
        f"/api/agents/{c.agents['Beta']['id']}/integrations/feishu/chat-policies/{chat}",
        json={"answers": False},
    )
    assert r.status_code == 200, r.text
    await say(rig, chat, c.ada, "route: Alpha>Beta", **c.at("Alpha"))

    async def second() -> bool:
        runs = await runs_of(c, "Alpha")
        return len(runs) == 2 and runs[-1]["status"] == "succeeded"

    await wait_for(second, timeout=60)
    await settled(c)
    assert await runs_of(c, "Beta") == []


async def _running(c: Crew, name: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        runs = await runs_of(c, name)
        return runs[-1] if runs and runs[-1]["status"] == "running" else None

    run: dict[str, Any] = await wait_for(found, timeout=60)
    return run


async def _chain_stopped(rig: FeishuRig, root_id: str) -> bool:
    async with rig.services.sessions() as session:
        root = await session.get(Run, root_id)
        return root is not None and root.chain_stopped_at is not None


async def test_stop_in_the_chat_ends_the_chain_in_the_middle(rig: FeishuRig) -> None:
    c = await crew(rig)
    chat = await group(rig, "Stoppable", [c.ada], list(c.apps.values()))
    await say(rig, chat, c.ada, "route: Alpha>Beta>Gamma slow: Beta", **c.at("Alpha"))
    beta = await _running(c, "Beta")
    # Addressed to Alpha, whose own reply is done: the chain going on in the chat stops.
    await say(rig, chat, c.ada, "/stop", **c.at("Alpha"))
    await finished(c, "Beta", "cancelled")
    await settled(c)
    assert await runs_of(c, "Gamma") == []
    assert texts.FEISHU_STOPPED in _texts(await said(c, chat, "Alpha"))
    assert await _chain_stopped(rig, beta["handoff_root_id"])


async def test_the_cards_stop_button_ends_the_chain(served: FeishuRig) -> None:
    rig = served
    c = await crew(rig)
    chat = await group(rig, "Buttons", [c.ada], list(c.apps.values()))
    await say(rig, chat, c.ada, "route: Alpha>Beta>Gamma slow: Beta", **c.at("Alpha"))
    beta = await _running(c, "Beta")

    async def card() -> dict[str, Any] | None:
        cards = [m for m in await said(c, chat, "Beta") if m["msg_type"] == "interactive"]
        return cards[-1] if cards and button(cards[-1], "Stop") is not None else None

    beta_card = await wait_for(card, timeout=30)
    value = button(beta_card, "Stop")
    assert value is not None
    await press(rig, beta_card["message_id"], c.ada, value)
    await finished(c, "Beta", "cancelled")
    await settled(c)
    assert await runs_of(c, "Gamma") == []
    assert await _chain_stopped(rig, beta["handoff_root_id"])


async def test_a_hand_off_in_a_topic_stays_in_the_topic(rig: FeishuRig) -> None:
    c = await crew(rig, ("Alpha", "Beta"))
    chat = (
        await rig.control(
            "POST",
            "/chats",
            json={
                "type": "group",
                "chat_mode": "topic",
                "name": "Topics",
                "user_ids": [c.ada],
                "app_ids": [a["app_id"] for a in c.apps.values()],
            },
        )
    )["chat_id"]
    posted = await rig.control(
        "POST",
        f"/chats/{chat}/messages",
        json={"user_id": c.ada, "text": "route: Alpha>Beta", **c.at("Alpha")},
    )
    topic = posted["thread_id"]
    assert topic
    beta = await finished(c, "Beta")
    await settled(c)
    convs = (await rig.client.get(f"/api/orgs/{c.org_id}/conversations")).json()
    theirs = next(x for x in convs if x["id"] == beta["conversation_id"])
    assert theirs["external_thread_id"] == topic
    [reply] = await said(c, chat, "Beta")
    assert reply["thread_id"] == topic and "Beta is done" in reply["text"]

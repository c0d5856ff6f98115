"""Stop and New conversation on the reply card, over both transports.

Ada asks the slow agent to count; her reply card carries Stop. Bob (a member who did not ask)
is refused with a toast and the run goes on; Root (an admin) or Ada stops it; the card then
shows the footer and New conversation. A press Feishu delivers twice acts once.
"""

from __future__ import annotations

import pytest

from rudder import texts
from rudder.db.models import Run
from tests.conftest import FeishuRig
from tests.helpers import card_buttons, card_footer, wait_for
from tests.routing.buttons import (
    button,
    card_with,
    outcomes,
    press,
    team,
)
from tests.routing.dialogue import conversations, group, messages, say

STOP, NEW = texts.CARD_BUTTON_STOP, texts.CARD_BUTTON_NEW


async def _run_of_card(rig: FeishuRig, chat_id: str) -> Run:
    async def found() -> Run | None:
        from sqlalchemy import select

        async with rig.services.sessions() as session:
            run: Run | None = await session.scalar(
                select(Run).where(Run.source == "feishu").order_by(Run.created_at.desc()).limit(1)
            )
            return run

    run: Run = await wait_for(found)
    return run


async def _status(rig: FeishuRig, run_id: str) -> str:
    async with rig.services.sessions() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        return run.status


@pytest.mark.parametrize("transport", ["long_connection", "webhook"])
async def test_stop_refused_for_another_member_then_pressed_by_an_admin(
    served: FeishuRig, transport: str
) -> None:
    rig = served
    t = await team(rig, transport=transport)
    chat = await group(rig, "Ops", [t.ada, t.bob, t.root], [t.app])
    await say(rig, chat, t.ada, "count to 400", mention_app_ids=[t.app["app_id"]])
    card = await card_with(rig, chat, STOP)
    stop = button(card, STOP)
    assert stop is not None and card["streaming"] is True
    run = await _run_of_card(rig, chat)

    refused = await press(rig, card["message_id"], t.bob, stop)
    assert refused["status"] == "answered" and refused["transport"] == transport
    assert refused["toast"] == {
        "type": "warning",
        "content": texts.CARD_TOAST_ONLY_STOP.format(name="Ada"),
    }
    assert refused["elapsed_ms"] < 3000
    assert await _status(rig, run.id) == "running"  # nothing happened

    stopped = await press(rig, card["message_id"], t.root, stop)
    assert stopped["toast"] == {"type": "success", "content": texts.CARD_TOAST_STOPPING}

    async def ended() -> dict[str, object] | None:
        [last] = [c for c in await _cards(rig, chat) if c["message_id"] == card["message_id"]]
        return last if not last["streaming"] and card_footer(last) else None

    final = await wait_for(ended, timeout=15)
    assert await _status(rig, run.id) == "cancelled"
    assert card_footer(final) == texts.REPLY_STOPPED
    assert card_buttons(final) == [NEW]  # Stop is gone, New conversation is offered

    # A second press on the finished card: a toast, nothing changes.
    again = await press(rig, card["message_id"], t.root, stop)
    assert again["toast"] == {"type": "info", "content": texts.CARD_TOAST_FINISHED}
    assert again["card_updated"] is False
    rows = await outcomes(rig, t.agent["id"])
    presses = [r for r in rows if r[0] == "card.action.trigger"]
    assert [r[1] for r in presses] == ["refused", "command", "command"]
    assert presses[1][2] == "stop pressed: stopped the reply"


async def _cards(rig: FeishuRig, chat: str) -> list[dict[str, object]]:
    from tests.routing.buttons import bot_cards

    return await bot_cards(rig, chat)


@pytest.mark.parametrize("transport", ["long_connection", "webhook"])
async def test_requester_stops_and_a_redelivered_press_acts_once(
    served: FeishuRig, transport: str
) -> None:
    rig = served
    t = await team(rig, transport=transport)
    chat = await group(rig, "Ops", [t.ada, t.bob], [t.app])
    await say(rig, chat, t.ada, "count to 400", mention_app_ids=[t.app["app_id"]])
    card = await card_with(rig, chat, STOP)
    stop = button(card, STOP)
    assert stop is not None
    first = await press(rig, card["message_id"], t.ada, stop)
    assert first["toast"]["content"] == texts.CARD_TOAST_STOPPING
    # Feishu delivers the same callback (same event_id) once more.
    again = await rig.control("POST", f"/callbacks/{first['callback_id']}/redeliver")
    assert again["event_id"] == first["event_id"]
    assert again["toast"] == {"type": "info", "content": texts.CARD_TOAST_REPEATED}
    run = await _run_of_card(rig, chat)

    async def cancelled() -> bool:
        return await _status(rig, run.id) == "cancelled"

    await wait_for(cancelled, timeout=15)
    rows = [r for r in await outcomes(rig, t.agent["id"]) if r[0] == "card.action.trigger"]
    # Recorded twice (the inbox keeps the redelivery as a duplicate), acted on once.
    assert [r[1] for r in rows] == ["command", "duplicate"]


async def test_new_conversation_from_the_card(served: FeishuRig) -> None:
    rig = served
    t = await team(rig)
    chat = await group(rig, "Ops", [t.ada, t.bob], [t.app])
    await say(rig, chat, t.ada, "hello there", mention_app_ids=[t.app["app_id"]])
    card = await card_with(rig, chat, NEW)
    assert button(card, STOP) is None and card_footer(card) == texts.CARD_FOOTER_DONE
    new = button(card, NEW)
    assert new is not None

    # Bob did not ask: refused.
    refused = await press(rig, card["message_id"], t.bob, new)
    assert refused["toast"]["content"] == texts.CARD_TOAST_ONLY_NEW.format(name="Ada")
    before = [c for c in await conversations(rig, t.org_id) if c["external_chat_id"] == chat]
    assert len(before) == 1

    started = await press(rig, card["message_id"], t.ada, new)
    assert started["toast"] == {"type": "success", "content": texts.CARD_TOAST_NEW_STARTED}
    twice = await press(rig, card["message_id"], t.ada, new)
    assert twice["toast"]["content"] == texts.CARD_TOAST_NEW_ALREADY

    async def notice() -> bool:
        items = (await rig.control("GET", f"/chats/{chat}/messages"))["items"]
        return any(m["text"] == texts.FEISHU_NEW_STARTED for m in items)

    await wait_for(notice)
    await say(rig, chat, t.ada, "and now?", mention_app_ids=[t.app["app_id"]])

    async def two() -> list[dict[str, object]] | None:
        convs = [c for c in await conversations(rig, t.org_id) if c["external_chat_id"] == chat]
        return convs if len(convs) == 2 else None

    convs = await wait_for(two)

    async def bodies() -> dict[str, list[str]] | None:
        found = {
            str(c["id"]): [m["body"] for m in await messages(rig, str(c["id"]))] for c in convs
        }
        return found if any("and now?" in b for b in found.values()) else None

    seen = await wait_for(bodies)
    fresh = next(cid for cid, b in seen.items() if "and now?" in b)
    assert "hello there" not in seen[fresh]


async def test_plain_text_bots_get_no_buttons(served: FeishuRig) -> None:
    rig = served
    t = await team(rig)
    patched = await rig.client.patch(
        f"/api/agents/{t.agent['id']}/integrations/feishu", json={"reply_style": "plain_text"}
    )
    if patched.status_code >= 400:
        from sqlalchemy import update

        from rudder.db.models import Integration

        async with rig.services.sessions() as session, session.begin():
            await session.execute(
                update(Integration)
                .where(Integration.id == t.integration_id)
                .values(reply_style="plain_text")
            )
    chat = await group(rig, "Ops", [t.ada], [t.app])
    await say(rig, chat, t.ada, "hello there", mention_app_ids=[t.app["app_id"]])

    async def replied() -> list[dict[str, object]] | None:
        items = (await rig.control("GET", f"/chats/{chat}/messages"))["items"]
        bots = [m for m in items if m["sender"]["sender_type"] == "app"]
        return bots or None

    bots = await wait_for(replied, timeout=15)
    assert [m["msg_type"] for m in bots] == ["text"]

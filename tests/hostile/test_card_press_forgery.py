"""Forged card presses: a button value edited to name another run, copied from another
organization's bot, unsigned, or sent by someone who is not linked, never stops anything."""

from __future__ import annotations

from typing import Any

from rudder import texts
from rudder.db.models import Run
from rudder.feishu import card_controls as controls
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.buttons import (
    button,
    card_with,
    press,
    team,
)
from tests.routing.dialogue import group, person, say

STOP = texts.CARD_BUTTON_STOP
UNKNOWN = {"type": "error", "content": texts.CARD_TOAST_UNKNOWN}


async def _running(rig: FeishuRig) -> list[str]:
    from sqlalchemy import select

    async with rig.services.sessions() as session:
        return list(await session.scalars(select(Run.id).where(Run.status == "running")))


async def test_forged_and_foreign_button_values_stop_nothing(served: FeishuRig) -> None:
    rig = served
    t = await team(rig)
    stranger = await person(rig, "Stranger")  # in the chat, linked to no member
    chat = await group(rig, "Ops", [t.ada, t.bob, stranger], [t.app])
    await say(rig, chat, t.ada, "count to 400", mention_app_ids=[t.app["app_id"]])
    card = await card_with(rig, chat, STOP)
    stop = button(card, STOP)
    assert stop is not None
    [run_id] = await wait_for(lambda: _running(rig))

    # A second organization with its own bot and a run of its own.
    other_org = (await rig.client.post("/api/orgs", json={"name": "Rival"})).json()
    assert other_org["id"] != t.org_id
    forged: list[dict[str, Any]] = [
        {**stop, "run": "0" * 32},  # another run id, old signature
        {**stop, "sig": "f" * 32},  # a made-up signature
        {"rudder": "stop", "run": run_id},  # unsigned
        {**stop, "rudder": "new"},  # the stop signature reused for another action
        # Signed with the right key but for another integration (another bot's card).
        controls.button_value(rig.services.box.key, "stop", run_id, "someone-else"),
        # Signed with another key altogether.
        controls.button_value(b"k" * 32, "stop", run_id, t.integration_id),
        {"rudder": ["stop"], "run": {"$ne": None}, "sig": 1},
        {},
    ]
    for value in forged:
        answer = await press(rig, card["message_id"], t.ada, value)
        assert answer["status"] == "answered", answer
        assert answer["toast"] == UNKNOWN, (value, answer)
    assert await _running(rig) == [run_id]

    unlinked = await press(rig, card["message_id"], stranger, stop)
    assert unlinked["toast"] == {
        "type": "warning",
        "content": texts.CARD_TOAST_NOT_LINKED.format(product="Feishu"),
    }
    # A real press from a linked member of the same organization who did not ask: refused.
    refused = await press(rig, card["message_id"], t.bob, stop)
    assert refused["toast"]["type"] == "warning"
    assert await _running(rig) == [run_id]


async def test_a_valid_button_replayed_into_another_chat_is_refused(served: FeishuRig) -> None:
    """The value is genuine, but the press comes from a card in another chat of the same bot
    (Feishu's context.open_chat_id): the run is not that chat's."""
    rig = served
    t = await team(rig)
    chat = await group(rig, "Ops", [t.ada, t.bob], [t.app])
    other = await group(rig, "Elsewhere", [t.ada], [t.app])
    await say(rig, chat, t.ada, "count to 400", mention_app_ids=[t.app["app_id"]])
    card = await card_with(rig, chat, STOP)
    stop = button(card, STOP)
    assert stop is not None
    await say(rig, other, t.ada, "hello", mention_app_ids=[t.app["app_id"]])
    elsewhere = await card_with(rig, other, texts.CARD_BUTTON_NEW)
    [run_id] = await wait_for(lambda: _running(rig))
    answer = await press(rig, elsewhere["message_id"], t.ada, stop)
    assert answer["toast"] == UNKNOWN
    assert run_id in await _running(rig)


async def test_an_unsigned_callback_posted_to_the_webhook_is_refused(served: FeishuRig) -> None:
    """Someone who read a card's button value posts the callback to Rudder's webhook URL
    directly: without the app's signature (or signed for another app) it is refused."""
    import json
    import time

    from rudder.feishu.webhook_codec import encrypt, sign

    rig = served
    t = await team(rig, transport="webhook")
    chat = await group(rig, "Ops", [t.ada], [t.app])
    await say(rig, chat, t.ada, "count to 400", mention_app_ids=[t.app["app_id"]])
    card = await card_with(rig, chat, STOP)
    stop = button(card, STOP)
    assert stop is not None
    [run_id] = await wait_for(lambda: _running(rig))
    body = {
        "schema": "2.0",
        "header": {
            "event_id": "forged-1",
            "event_type": "card.action.trigger",
            "app_id": t.app["app_id"],
            "create_time": "1",
            "token": t.app["verification_token"],
        },
        "event": {
            "operator": {"open_id": "ou_forger"},
            "action": {"value": stop, "tag": "button"},
            "context": {"open_message_id": card["message_id"], "open_chat_id": chat},
        },
    }
    url = f"/api/integrations/feishu/{t.integration_id}/webhook"
    plain = await rig.client.post(url, json=body)
    assert plain.status_code == 401
    raw = json.dumps({"encrypt": encrypt("not the key", json.dumps(body).encode())}).encode()
    ts = str(int(time.time()))
    forged = await rig.client.post(
        url,
        content=raw,
        headers={
            "X-Lark-Request-Timestamp": ts,
            "X-Lark-Request-Nonce": "n",
            "X-Lark-Signature": sign(ts, "n", "not the key", raw),
            "content-type": "application/json",
        },
    )
    assert forged.status_code == 401
    assert await _running(rig) == [run_id]

"""Card button presses (`card.action.trigger`) answered by lark-oapi's own dispatcher.

Over the long connection the official ws client answers in its ack; over the webhook the
official EventDispatcherHandler answers in the HTTP body. The sandbox applies the answer.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.sandbox.conftest import SandboxHarness, SdkWebhook, eventually
from tests.sandbox.test_media import lark_client, sdk_send

WORKER = Path(__file__).with_name("lark_ws_worker.py")
CARD = {
    "schema": "2.0",
    "body": {
        "elements": [
            {"tag": "markdown", "content": "working…"},
            {
                "tag": "button",
                "name": "stop",
                "text": {"tag": "plain_text", "content": "Stop"},
                "behaviors": [{"type": "callback", "value": {"op": "stop", "run": 7}}],
            },
        ]
    },
}


async def _card_message(sandbox: SandboxHarness, app: dict[str, Any]) -> tuple[str, str, str]:
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    sent = await asyncio.to_thread(sdk_send, lark_client(sandbox, app), chat, "interactive", CARD)
    assert sent.code == 0
    return user, chat, sent.data.message_id


async def test_webhook_callback_answer_updates_the_card(
    sandbox: SandboxHarness, webhook_app: tuple[dict[str, Any], SdkWebhook]
) -> None:
    app, hook = webhook_app
    user, chat, message_id = await _card_message(sandbox, app)
    pressed = await sandbox.control(
        "POST",
        f"/messages/{message_id}/actions",
        json={"user_id": user, "value": {"op": "stop", "run": 7}, "name": "stop"},
    )
    assert pressed["status"] == "answered" and pressed["transport"] == "webhook"
    assert pressed["toast"] == {"type": "info", "content": "stopping run 7"}
    assert pressed["card_updated"] is True
    [seen] = hook.seen
    users = await sandbox.control("GET", f"/users?app_id={app['app_id']}")
    assert seen.event.operator.open_id == users["items"][0]["open_id"]
    assert seen.event.action.value == {"op": "stop", "run": 7} and seen.event.action.tag == "button"
    assert seen.event.action.name == "stop" and seen.event.host == "im_message"
    assert seen.event.context.open_message_id == message_id
    assert seen.event.context.open_chat_id == chat
    assert seen.header.event_type == "card.action.trigger"
    [shown] = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert shown["text"] == "stopped"

    again = await sandbox.control("POST", f"/callbacks/{pressed['callback_id']}/redeliver")
    assert (
        again["event_id"] == pressed["event_id"]
        and again["redelivery_of"] == pressed["callback_id"]
    )
    assert len(hook.seen) == 2 and hook.seen[1].header.event_id == seen.header.event_id
    recorded = (await sandbox.control("GET", f"/callbacks?message_id={message_id}"))["items"]
    assert [c["callback_id"] for c in recorded] == [pressed["callback_id"], again["callback_id"]]


async def test_a_slow_answer_misses_the_deadline_and_changes_nothing(
    sandbox: SandboxHarness, webhook_app: tuple[dict[str, Any], SdkWebhook]
) -> None:
    app, hook = webhook_app
    await sandbox.control("PATCH", "/settings", json={"callback_timeout_s": 0.5})
    hook.delay_s = 1.0
    user, chat, message_id = await _card_message(sandbox, app)
    pressed = await sandbox.control(
        "POST", f"/messages/{message_id}/actions", json={"user_id": user, "value": {"run": 1}}
    )
    assert pressed["status"] == "timeout" and pressed["toast"] is None
    assert pressed["card_updated"] is False and 450 <= pressed["elapsed_ms"] < 1000
    [shown] = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert shown["text"].startswith("working")


async def test_long_connection_callback_answers_in_the_ack(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user, chat, message_id = await _card_message(sandbox, app)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), sandbox.url, app["app_id"], app["app_secret"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        async def connected() -> bool:
            view = await sandbox.control("GET", f"/apps/{app['app_id']}")
            return bool(view["connections"])

        await eventually(connected, within=30)
        pressed = await sandbox.control(
            "POST",
            f"/messages/{message_id}/actions",
            json={"user_id": user, "value": {"op": "new"}},
        )
        assert pressed["transport"] == "long_connection" and pressed["status"] == "answered"
        assert pressed["toast"] == {"type": "success", "content": "pressed {'op': 'new'}"}
        assert proc.stdout is not None
        line = json.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=15))
        assert line["callback"] and line["value"] == {"op": "new"}
        assert line["message_id"] == message_id and line["event_id"] == pressed["event_id"]
        [shown] = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
        assert shown["text"] == f"pressed by {line['open_id']}"

        # An ack lost on the way is a missed deadline: the person's press changes nothing.
        await sandbox.control("PATCH", "/settings", json={"callback_timeout_s": 0.5})
        await sandbox.control(
            "POST", "/faults", json={"kind": "lose_acks", "app_id": app["app_id"]}
        )
        lost = await sandbox.control(
            "POST", f"/messages/{message_id}/actions", json={"user_id": user, "value": {"op": "x"}}
        )
        assert lost["status"] == "timeout" and lost["card_updated"] is False
    finally:
        proc.kill()
        await proc.wait()


async def test_press_rules(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user, chat, message_id = await _card_message(sandbox, app)
    stranger = await sandbox.create_user("Eve")
    refused = await sandbox.http.post(
        f"/_sandbox/api/messages/{message_id}/actions", json={"user_id": stranger, "value": {}}
    )
    assert refused.status_code == 400 and "member" in refused.json()["detail"]
    text = await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hi"}
    )
    not_card = await sandbox.http.post(
        f"/_sandbox/api/messages/{text['message_id']}/actions", json={"user_id": user, "value": {}}
    )
    assert not_card.status_code == 400
    bad_value = await sandbox.http.post(
        f"/_sandbox/api/messages/{message_id}/actions", json={"user_id": user, "value": "stop"}
    )
    assert bad_value.status_code == 400 and "value" in bad_value.json()["detail"]
    # No connection: the press fails (Feishu shows the person an error) and is recorded.
    offline = await sandbox.control(
        "POST", f"/messages/{message_id}/actions", json={"user_id": user, "value": {}}
    )
    assert offline["status"] == "error" and offline["detail"] == "no live connection"
    await sandbox.control("PATCH", f"/apps/{app['app_id']}", json={"callback_types": []})
    unsubscribed = await sandbox.control(
        "POST", f"/messages/{message_id}/actions", json={"user_id": user, "value": {}}
    )
    assert unsubscribed["status"] == "not_subscribed"


async def test_answer_replaces_a_cardkit_card_entity(
    sandbox: SandboxHarness, webhook_app: tuple[dict[str, Any], SdkWebhook]
) -> None:
    app, _hook = webhook_app
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    auth = {"Authorization": f"Bearer {await sandbox.token(app)}"}
    created = await sandbox.http.post(
        "/open-apis/cardkit/v1/cards",
        json={"type": "card_json", "data": json.dumps(CARD)},
        headers=auth,
    )
    card_id = created.json()["data"]["card_id"]
    content = {"type": "card", "data": {"card_id": card_id}}
    sent = await asyncio.to_thread(
        sdk_send, lark_client(sandbox, app), chat, "interactive", content
    )
    pressed = await sandbox.control(
        "POST",
        f"/messages/{sent.data.message_id}/actions",
        json={"user_id": user, "value": {"run": 3}},
    )
    assert pressed["card_updated"] is True
    [shown] = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert shown["card_id"] == card_id and shown["text"] == "stopped"

"""The official Node SDK is a second client of the sandbox: if it accepts it too, the sandbox
speaks Feishu rather than what our own client happens to expect."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tests.sandbox import node_sdk
from tests.sandbox.conftest import SandboxHarness, eventually

PINNED = "1.74.0"


async def _connected(sandbox: SandboxHarness, app_id: str) -> bool:
    return bool((await sandbox.control("GET", f"/apps/{app_id}"))["connections"])


async def _deliveries(sandbox: SandboxHarness, app_id: str) -> list[dict[str, Any]]:
    return list((await sandbox.control("GET", f"/deliveries?app_id={app_id}"))["items"])


def test_the_sdk_is_pinned_and_installed_at_that_version() -> None:
    folder = node_sdk.require_node_sdk()
    manifest = json.loads((folder / "package.json").read_text())
    assert manifest["dependencies"] == {node_sdk.PACKAGE: PINNED}
    lock = json.loads((folder / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{node_sdk.PACKAGE}"]["version"] == PINNED
    assert node_sdk.installed_version() == PINNED
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().splitlines()
    assert "node_modules/" in ignored


async def test_ws_client_receives_and_acks_a_message(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    script = await node_sdk.start("ws_receive.js", sandbox.url, app["app_id"], app["app_secret"])
    try:
        await eventually(lambda: _connected(sandbox, app["app_id"]), within=30)
        posted = await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hello node"}
        )
        received = await script.until("event_id")
        assert received["message_id"] == posted["message_id"]
        assert received["app_id"] == app["app_id"]
        assert received["token"] == app["verification_token"]
        assert received["chat_type"] == "p2p"
        assert json.loads(received["content"]) == {"text": "hello node"}
        users = await sandbox.control("GET", f"/users?app_id={app['app_id']}")
        assert received["sender_open_id"] == users["items"][0]["open_id"]

        async def acked() -> list[dict[str, Any]]:
            return [
                d
                for d in await _deliveries(sandbox, app["app_id"])
                if d["event_id"] == received["event_id"] and d["acked"]
            ]

        [delivery] = await eventually(acked)
        assert delivery["attempts"] == 1
        assert delivery["history"][0]["transport"] == "long_connection"
    finally:
        await script.stop()


async def test_ws_client_answers_a_card_callback_in_its_ack(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    token = await sandbox.token(app)
    card = {"schema": "2.0", "body": {"elements": [{"tag": "button", "name": "stop"}]}}
    sent = await sandbox.http.post(
        "/open-apis/im/v1/messages?receive_id_type=chat_id",
        json={"receive_id": chat, "msg_type": "interactive", "content": json.dumps(card)},
        headers={"Authorization": f"Bearer {token}"},
    )
    message_id = sent.json()["data"]["message_id"]
    script = await node_sdk.start("ws_receive.js", sandbox.url, app["app_id"], app["app_secret"])
    try:
        await eventually(lambda: _connected(sandbox, app["app_id"]), within=30)
        pressed = await sandbox.control(
            "POST",
            f"/messages/{message_id}/actions",
            json={"user_id": user, "value": {"op": "stop"}},
        )
        assert pressed["status"] == "answered", pressed
        assert pressed["toast"] == {"type": "success", "content": 'node got {"op":"stop"}'}
        seen = await script.until("callback")
        assert seen["value"] == {"op": "stop"} and seen["message_id"] == message_id
        [shown] = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
        assert shown["text"] == "node card"
    finally:
        await script.stop()


async def test_client_uploads_sends_and_downloads_media(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    blob = bytes(range(256)) * 50
    posted = await sandbox.control(
        "POST",
        f"/chats/{chat}/messages",
        json={
            "user_id": user,
            "message_type": "file",
            "data_base64": base64.b64encode(blob).decode(),
        },
    )
    file_key = json.loads(posted["content"])["file_key"]
    script = await node_sdk.start(
        "media_calls.js",
        sandbox.url,
        app["app_id"],
        app["app_secret"],
        chat,
        posted["message_id"],
        file_key,
    )
    try:
        out = await script.until("image_key", timeout=30)
    finally:
        await script.stop()
    assert out["image_key"].startswith("img_v3_") and out["file_key"].startswith("file_v3_")
    assert out["sent_code"] == 0
    assert out["download_sha256"] == hashlib.sha256(blob).hexdigest()
    assert out["wrong_key"] == 234003
    stored = {
        r["key"]: r
        for r in (await sandbox.control("GET", f"/resources?app_id={app['app_id']}"))["items"]
    }
    assert stored[out["file_key"]]["sha256"] == out["file_sha256"]
    assert stored[out["image_key"]]["mime_type"] == "image/png"


async def test_client_sends_replies_reacts_and_streams_a_card(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    asked = await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "question"}
    )
    script = await node_sdk.start(
        "client_calls.js",
        sandbox.url,
        app["app_id"],
        app["app_secret"],
        chat,
        asked["message_id"],
    )
    try:
        out = await script.until("sent", timeout=30)
    finally:
        await script.stop()
    assert out["reply_parent"] == asked["message_id"]
    assert out["after_close"] == 300309  # streaming closed by the settings call
    items = {
        m["message_id"]: m
        for m in (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    }
    assert items[out["sent"]]["text"] == "hi from node"
    assert items[out["sent"]]["sender"]["sender_type"] == "app"
    assert items[out["replied"]]["text"] == "a reply from node"
    assert items[out["replied"]]["parent_id"] == asked["message_id"]
    reactions = items[asked["message_id"]]["reactions"]
    assert [r["emoji_type"] for r in reactions] == ["THUMBSUP"], reactions
    card = items[out["card_message"]]
    assert card["text"] == "Streaming from node" and card["streaming"] is False


async def _webhook_app(
    sandbox: SandboxHarness, *, right_key: bool
) -> tuple[dict[str, Any], node_sdk.NodeScript, dict[str, Any]]:
    """An app delivering by webhook to a receiver built on the SDK's EventDispatcher."""
    app = await sandbox.create_app()
    assert app["encrypt_key"]  # the sandbox's apps encrypt and sign by default
    key = app["encrypt_key"] if right_key else "not the app's key"
    script = await node_sdk.start("webhook_receiver.js", key, app["verification_token"])
    port = (await script.until("port"))["port"]
    patched = await sandbox.control(
        "PATCH",
        f"/apps/{app['app_id']}",
        json={"event_delivery": "webhook", "webhook_url": f"http://127.0.0.1:{port}/webhook"},
    )
    return app, script, patched


async def test_event_dispatcher_accepts_an_encrypted_signed_webhook(
    sandbox: SandboxHarness,
) -> None:
    await sandbox.control("POST", "/clock", json={"factor": 0.001})
    app, script, patched = await _webhook_app(sandbox, right_key=True)
    try:
        # url_verification: an encrypted challenge, echoed back in plaintext.
        assert patched["url_verification"]["ok"] is True, patched
        assert (await script.until("challenge"))["challenge"] is True
        user = await sandbox.create_user("Ann")
        chat = await sandbox.p2p(user, app["app_id"])
        posted = await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "über 中文 hook"}
        )
        handled = await script.until("accepted")
        assert handled["accepted"] is True, handled
        assert handled["value"]["message_id"] == posted["message_id"]
        assert json.loads(handled["value"]["text"]) == {"text": "über 中文 hook"}

        async def acked() -> list[dict[str, Any]]:
            return [d for d in await _deliveries(sandbox, app["app_id"]) if d["acked"]]

        [delivery] = await eventually(acked)
        assert delivery["attempts"] == 1 and delivery["history"][0]["detail"] == "HTTP 200"
    finally:
        await script.stop()


async def test_a_webhook_the_receiver_rejects_is_not_acked_and_is_pushed_again(
    sandbox: SandboxHarness,
) -> None:
    """A receiver whose key does not match answers 401: the delivery stays unacked and retries."""
    await sandbox.control("POST", "/clock", json={"factor": 0.001})
    app, script, patched = await _webhook_app(sandbox, right_key=False)
    try:
        assert patched["url_verification"]["ok"] is False
        user = await sandbox.create_user("Ann")
        chat = await sandbox.p2p(user, app["app_id"])
        await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "rejected"}
        )

        async def retried() -> list[dict[str, Any]]:
            return [d for d in await _deliveries(sandbox, app["app_id"]) if d["attempts"] >= 2]

        [delivery] = await eventually(retried, within=15)
        assert delivery["acked"] is False and delivery["status"] == "pending"
        assert {h["detail"] for h in delivery["history"]} == {"HTTP 401"}
        assert all(not h["ok"] for h in delivery["history"])
        # The SDK itself refused it: verification failed on the receiver's side.
        first = await script.until("accepted")
        assert first == {"accepted": False, "reason": "verification failed"}
    finally:
        await script.stop()


async def _register(
    sandbox: SandboxHarness, brand: str
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """registerApp with the SDK's default hosts; approve as a `brand` tenant."""
    await sandbox.control("PATCH", "/settings", json={"registration_interval": 0.2})
    script = await node_sdk.start("register_app.js", sandbox.url)
    try:
        qr = (await script.until("qr"))["qr"]
        [registration] = (await sandbox.control("GET", "/registrations?status=pending"))["items"]
        assert registration["user_code"] in qr["url"] and registration["begin_brand"] == "feishu"
        # The link is the one Feishu's accounts host returned, decorated by the SDK.
        assert f"/_hosts/open.feishu.cn/page/cli?user_code={registration['user_code']}" in qr["url"]
        page = await sandbox.http.get(qr["url"])
        assert page.status_code == 200 and "Node Agent" in page.text
        approved = await sandbox.control(
            "POST", f"/registrations/{registration['user_code']}/approve", json={"brand": brand}
        )
        end = await script.until("result", timeout=30)
    finally:
        await script.stop()
    statuses = [line["status"] for line in script.lines if "status" in line]
    after = await sandbox.control("GET", f"/registrations/{registration['user_code']}")
    return end["result"], statuses, approved, {"qr": qr, **after}


async def test_register_app_feishu_tenant(sandbox: SandboxHarness) -> None:
    result, statuses, approved, registration = await _register(sandbox, "feishu")
    assert result["client_id"] == approved["app_id"]
    assert result["client_secret"] == approved["app_secret"]
    assert result["user_info"] == {"open_id": approved["open_id"], "tenant_brand": "feishu"}
    assert {"status": "domain_switched"} not in statuses
    # The SDK began on accounts.feishu.cn and never left it.
    assert registration["begin_brand"] == "feishu" and set(registration["polls"]) == {"feishu"}
    assert "source=node-sdk" in registration["qr"]["url"]


async def test_register_app_lark_tenant_switches_to_the_lark_host(
    sandbox: SandboxHarness,
) -> None:
    result, statuses, approved, registration = await _register(sandbox, "lark")
    assert {"status": "domain_switched"} in statuses
    assert result["client_secret"] == approved["app_secret"]
    assert result["user_info"] == {"open_id": approved["open_id"], "tenant_brand": "lark"}
    # Begun on Feishu; after the answer naming the Lark tenant, polled once more — on Lark.
    assert registration["begin_brand"] == "feishu"
    assert registration["polls"]["lark"] == 1 and registration["polls"]["feishu"] >= 1
    app = await sandbox.control("GET", f"/apps/{approved['app_id']}")
    assert app["brand"] == "lark" and app["name"] == "Node Agent"

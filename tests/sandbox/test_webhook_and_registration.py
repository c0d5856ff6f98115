"""Webhook delivery (challenge, encryption, signature, retries), app registration, and mentions."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rudder.sandbox.crypto import decrypt_body, sign
from tests.sandbox.conftest import SandboxHarness, eventually

REGISTRATION = "/oauth/v1/app/registration"


class Receiver:
    """A developer's webhook server on loopback that records what it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.encrypt_key = ""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        if self.fail_next > 0:
            self.fail_next -= 1
            return JSONResponse({"msg": "boom"}, status_code=500)
        payload = json.loads(body)
        if "encrypt" in payload:
            payload = json.loads(decrypt_body(self.encrypt_key, payload["encrypt"]))
        if payload.get("type") == "url_verification":
            return JSONResponse({"challenge": payload["challenge"]})
        return JSONResponse({"msg": "success"})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    app = Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield hook, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await asyncio.wait_for(task, 5)


async def test_encrypted_signed_webhook_with_retry(
    sandbox: SandboxHarness, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    await sandbox.control("POST", "/clock", json={"factor": 0.001})
    app = await sandbox.create_app()
    hook.encrypt_key = app["encrypt_key"]
    patched = await sandbox.control(
        "PATCH", f"/apps/{app['app_id']}", json={"event_delivery": "webhook", "webhook_url": url}
    )
    assert patched["url_verification"]["ok"] is True
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    hook.fail_next = 1
    posted = await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "via hook"}
    )

    async def acked() -> list[dict[str, Any]]:
        items = (await sandbox.control("GET", f"/deliveries?app_id={app['app_id']}"))["items"]
        return [d for d in items if d["acked"]]

    [delivery] = await eventually(acked)
    assert delivery["attempts"] == 2
    headers, body = hook.requests[-1]
    expected = sign(
        headers["x-lark-request-timestamp"],
        headers["x-lark-request-nonce"],
        app["encrypt_key"],
        body,
    )
    assert headers["x-lark-signature"] == expected
    event = json.loads(decrypt_body(app["encrypt_key"], json.loads(body)["encrypt"]))
    assert event["header"]["token"] == app["verification_token"]
    assert event["event"]["message"]["message_id"] == posted["message_id"]


async def test_plain_webhook_without_encrypt_key(
    sandbox: SandboxHarness, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    app = await sandbox.create_app()
    await sandbox.control(
        "PATCH",
        f"/apps/{app['app_id']}",
        json={"event_delivery": "webhook", "webhook_url": url, "encrypt_key": ""},
    )
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "plain"}
    )

    async def got_event() -> bool:
        return any(b"im.message.receive_v1" in body for _, body in hook.requests)

    await eventually(got_event)
    _, body = hook.requests[-1]
    assert json.loads(body)["event"]["message"]["chat_id"] == chat


def _form(**fields: str) -> dict[str, str]:
    return fields


async def test_registration_errors_slow_down_deny_and_expiry(sandbox: SandboxHarness) -> None:
    await sandbox.control("PATCH", "/settings", json={"registration_interval": 5})
    init = await sandbox.http.post(REGISTRATION, data=_form(action="init"))
    assert "client_secret" in init.json()["supported_auth_methods"]
    begin = (
        await sandbox.http.post(REGISTRATION, data=_form(action="begin", archetype="PersonalAgent"))
    ).json()
    assert begin["expires_in"] == begin["expire_in"] == 3600 and begin["interval"] == 5
    assert begin["verification_uri_complete"].endswith(f"/page/cli?user_code={begin['user_code']}")
    poll = _form(action="poll", device_code=begin["device_code"])
    pending = await sandbox.http.post(REGISTRATION, data=poll)
    assert pending.status_code == 400
    assert pending.json() == {
        "error": "authorization_pending",
        "error_description": "",
        "code": 20094,
    }
    assert (await sandbox.http.post(REGISTRATION, data=poll)).json()["error"] == "slow_down"
    await sandbox.control("POST", f"/registrations/{begin['user_code']}/deny")
    await sandbox.control("POST", "/clock", json={"advance_s": 6})
    assert (await sandbox.http.post(REGISTRATION, data=poll)).json()["error"] == "access_denied"
    other = (await sandbox.http.post(REGISTRATION, data=_form(action="begin"))).json()
    await sandbox.control("POST", "/clock", json={"advance_s": 3601})
    expired = await sandbox.http.post(
        REGISTRATION, data=_form(action="poll", device_code=other["device_code"])
    )
    assert (expired.status_code, expired.json()["error"]) == (400, "expired_token")


async def test_lark_registration_through_the_host_header(sandbox: SandboxHarness) -> None:
    await sandbox.control("PATCH", "/settings", json={"registration_interval": 0})
    feishu = {"X-Rudder-Original-Host": "accounts.feishu.cn"}
    lark = {"X-Rudder-Original-Host": "accounts.larksuite.com"}
    begin = (
        await sandbox.http.post(REGISTRATION, data=_form(action="begin"), headers=feishu)
    ).json()
    approved = await sandbox.control(
        "POST", f"/registrations/{begin['user_code']}/approve", json={"brand": "lark"}
    )
    poll = _form(action="poll", device_code=begin["device_code"])
    on_feishu = (await sandbox.http.post(REGISTRATION, data=poll, headers=feishu)).json()
    assert on_feishu["user_info"]["tenant_brand"] == "lark" and "client_secret" not in on_feishu
    on_lark = (await sandbox.http.post(REGISTRATION, data=poll, headers=lark)).json()
    assert on_lark["client_secret"] == approved["app_secret"]


async def test_confirm_page_shows_prefill_and_approves(sandbox: SandboxHarness) -> None:
    begin = (await sandbox.http.post(REGISTRATION, data=_form(action="begin"))).json()
    addons = {
        "scopes": {"tenant": ["im:message:send_as_bot"]},
        "events": {"items": {"tenant": ["im.message.receive_v1"]}},
    }
    packed = (
        base64.urlsafe_b64encode(gzip.compress(json.dumps(addons).encode())).decode().rstrip("=")
    )
    page = await sandbox.http.get(
        "/page/cli",
        params={
            "user_code": begin["user_code"],
            "name": "Ops Agent",
            "desc": "for {user}",
            "addons": packed,
        },
    )
    assert page.status_code == 200
    for expected in (
        "Ops Agent",
        "for {user}",
        "im:message:send_as_bot",
        "im.message.receive_v1",
        "Approve",
        "Deny",
    ):
        assert expected in page.text
    done = await sandbox.http.post(
        "/page/cli/decision",
        data={
            "user_code": begin["user_code"],
            "decision": "approve",
            "app_name": "Ops Agent",
            "user_name": "Ann",
        },
    )
    assert "Approved" in done.text
    registration = await sandbox.control("GET", f"/registrations/{begin['user_code']}")
    assert registration["status"] == "approved"
    app = await sandbox.control("GET", f"/apps/{registration['app_id']}")
    assert app["name"] == "Ops Agent"


async def test_group_mentions_placeholders_and_routing(sandbox: SandboxHarness) -> None:
    bot = await sandbox.create_app("Helper")
    quiet = await sandbox.create_app("Quiet")
    ann, bob = await sandbox.create_user("Ann"), await sandbox.create_user("Bob")
    chat = (
        await sandbox.control(
            "POST",
            "/chats",
            json={
                "type": "group",
                "user_ids": [ann, bob],
                "app_ids": [bot["app_id"], quiet["app_id"]],
                "name": "Team",
            },
        )
    )["chat_id"]
    posted = await sandbox.control(
        "POST",
        f"/chats/{chat}/messages",
        json={
            "user_id": ann,
            "text": "please look",
            "mention_app_ids": [bot["app_id"]],
            "mention_user_ids": [bob],
        },
    )
    items = (
        await sandbox.control(
            "GET",
            f"/deliveries?app_id={bot['app_id']}&event_type=im.message.receive_v1&include_event=1",
        )
    )["items"]
    [event] = [d["event"] for d in items]
    message = event["event"]["message"]
    assert message["message_id"] == posted["message_id"]
    assert json.loads(message["content"]) == {"text": "@_user_1 @_user_2 please look"}
    assert [(m["key"], m["name"]) for m in message["mentions"]] == [
        ("@_user_1", "Helper"),
        ("@_user_2", "Bob"),
    ]
    assert message["mentions"][0]["id"]["open_id"] == bot["bot_open_id"]
    assert message["mentions"][1]["id"]["open_id"].startswith("ou_")
    assert event["header"]["app_id"] == bot["app_id"] and "root_id" not in message
    # The un-mentioned bot only got the bot-added event, not the message.
    quiet_types = [
        d["event_type"]
        for d in (await sandbox.control("GET", f"/deliveries?app_id={quiet['app_id']}"))["items"]
    ]
    assert quiet_types == ["im.chat.member.bot.added_v1"]
    view = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"][0]
    assert view["text"] == "@Helper @Bob please look"
    await sandbox.control(
        "POST",
        f"/chats/{chat}/messages",
        json={"user_id": ann, "text": "all hands", "mention_all": True},
    )
    quiet_types = [
        d["event_type"]
        for d in (await sandbox.control("GET", f"/deliveries?app_id={quiet['app_id']}"))["items"]
    ]
    assert quiet_types[-1] == "im.message.receive_v1"


async def test_people_page_and_bot_membership_events(sandbox: SandboxHarness) -> None:
    page = await sandbox.http.get("/_sandbox/")
    assert page.status_code == 200 and '<script src="/_sandbox/page.js"' in page.text
    script = await sandbox.http.get("/_sandbox/page.js")
    assert script.status_code == 200 and "/_sandbox/api" in script.text
    app = await sandbox.create_app()
    ann = await sandbox.create_user("Ann")
    chat = (
        await sandbox.control(
            "POST", "/chats", json={"type": "group", "user_ids": [ann], "app_ids": []}
        )
    )["chat_id"]
    await sandbox.control(
        "POST", f"/chats/{chat}/bots", json={"app_id": app["app_id"], "user_id": ann}
    )
    await sandbox.http.delete(f"/_sandbox/api/chats/{chat}/bots/{app['app_id']}")
    items = (await sandbox.control("GET", f"/deliveries?app_id={app['app_id']}&include_event=1"))[
        "items"
    ]
    assert [d["event_type"] for d in items] == [
        "im.chat.member.bot.added_v1",
        "im.chat.member.bot.deleted_v1",
    ]
    assert items[0]["event"]["event"]["chat_id"] == chat

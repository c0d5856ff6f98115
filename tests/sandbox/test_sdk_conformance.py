"""The official SDK (lark-oapi) is the client: if it accepts the sandbox, the sandbox speaks Feishu."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rudder.sandbox.crypto import sign
from rudder.sandbox.webhook import build_request
from tests.sandbox.conftest import SandboxHarness, eventually

WORKER = Path(__file__).with_name("lark_ws_worker.py")


async def test_sdk_ws_client_receives_and_acks_an_injected_message(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user("Ann")
    chat = await sandbox.p2p(user, app["app_id"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), sandbox.url, app["app_id"], app["app_secret"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        async def connected() -> bool:
            view = await sandbox.control("GET", f"/apps/{app['app_id']}")
            return bool(view["connections"])

        await eventually(connected, within=30)
        posted = await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hello sdk"}
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        received = json.loads(line)
        assert received["message_id"] == posted["message_id"]
        assert received["token"] == app["verification_token"]
        assert received["chat_type"] == "p2p"
        assert json.loads(received["content"]) == {"text": "hello sdk"}
        users = await sandbox.control("GET", f"/users?app_id={app['app_id']}")
        assert received["sender_open_id"] == users["items"][0]["open_id"]

        async def acked() -> list[dict[str, Any]]:
            items = (await sandbox.control("GET", f"/deliveries?app_id={app['app_id']}"))["items"]
            return [d for d in items if d["event_id"] == received["event_id"] and d["acked"]]

        [delivery] = await eventually(acked)
        assert delivery["attempts"] == 1
    finally:
        proc.kill()
        await proc.wait()


async def test_sdk_ws_client_reassembles_fragmented_events(sandbox: SandboxHarness) -> None:
    await sandbox.control("PATCH", "/settings", json={"ws_fragment_size": 40})
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), sandbox.url, app["app_id"], app["app_secret"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        async def connected() -> bool:
            return bool((await sandbox.control("GET", f"/apps/{app['app_id']}"))["connections"])

        await eventually(connected, within=30)
        posted = await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "x" * 500}
        )
        assert proc.stdout is not None
        received = json.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=15))
        assert received["message_id"] == posted["message_id"]
    finally:
        proc.kill()
        await proc.wait()


def _hosts(sandbox: SandboxHarness) -> dict[str, str]:
    """register_app's two accounts hosts, each its own base URL on the sandbox."""
    return {
        "domain": f"{sandbox.url}/_hosts/accounts.feishu.cn",
        "lark_domain": f"{sandbox.url}/_hosts/accounts.larksuite.com",
    }


async def _register_with_sdk(
    sandbox: SandboxHarness, brand: str, hosts: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], list[str], dict[str, Any], dict[str, Any]]:
    """lark-oapi's register_app, approved as a `brand` tenant once its link is ready."""
    from lark_oapi.scene.registration import register_app  # slow import: not in the thread

    await sandbox.control("PATCH", "/settings", json={"registration_interval": 0.2})
    seen: dict[str, Any] = {}
    statuses: list[str] = []

    def run() -> dict[str, Any]:
        result: dict[str, Any] = register_app(
            on_qr_code=lambda info: seen.update(info),
            on_status_change=lambda info: statuses.append(info["status"]),
            app_preset={"name": "Rudder Agent", "desc": "made by a test"},
            **hosts,
        )
        return result

    task = asyncio.create_task(asyncio.to_thread(run))

    async def pending() -> list[dict[str, Any]]:
        return list((await sandbox.control("GET", "/registrations?status=pending"))["items"])

    [registration] = await eventually(pending, within=30)
    await eventually(lambda: asyncio.sleep(0, result=bool(seen)))
    assert registration["user_code"] in seen["url"]
    page = await sandbox.http.get(seen["url"])
    assert "Rudder Agent" in page.text and "made by a test" in page.text
    approved = await sandbox.control(
        "POST", f"/registrations/{registration['user_code']}/approve", json={"brand": brand}
    )
    result = await asyncio.wait_for(task, timeout=30)
    after = await sandbox.control("GET", f"/registrations/{registration['user_code']}")
    return result, approved, statuses, after, seen


async def test_sdk_register_app_feishu_tenant(sandbox: SandboxHarness) -> None:
    result, approved, statuses, registration, seen = await _register_with_sdk(
        sandbox, "feishu", _hosts(sandbox)
    )
    assert result["client_id"] == approved["app_id"]
    assert result["client_secret"] == approved["app_secret"]
    assert result["user_info"] == {"open_id": approved["open_id"], "tenant_brand": "feishu"}
    assert "domain_switched" not in statuses
    # Begun and polled on accounts.feishu.cn only; the link is on open.feishu.cn.
    assert registration["begin_brand"] == "feishu" and set(registration["polls"]) == {"feishu"}
    assert "/_hosts/open.feishu.cn/page/cli?" in seen["url"]
    app = await sandbox.control("GET", f"/apps/{approved['app_id']}")
    assert app["name"] == "Rudder Agent" and app["brand"] == "feishu"


async def test_sdk_register_app_lark_tenant_follows_the_brand_switch(
    sandbox: SandboxHarness,
) -> None:
    result, approved, statuses, registration, _ = await _register_with_sdk(
        sandbox, "lark", _hosts(sandbox)
    )
    assert "domain_switched" in statuses
    assert result["client_secret"] == approved["app_secret"]
    assert result["user_info"] == {"open_id": approved["open_id"], "tenant_brand": "lark"}
    # The Feishu host named the Lark tenant without the secret; one poll on Lark fetched it.
    assert registration["begin_brand"] == "feishu"
    assert registration["polls"]["lark"] == 1 and registration["polls"]["feishu"] >= 1
    app = await sandbox.control("GET", f"/apps/{approved['app_id']}")
    assert app["brand"] == "lark"


async def test_sdk_register_app_given_one_origin_for_both_hosts(sandbox: SandboxHarness) -> None:
    """Without a host named, the sandbox still lets the SDK's switch complete."""
    one = {"domain": sandbox.url, "lark_domain": sandbox.url}
    result, approved, statuses, registration, _ = await _register_with_sdk(sandbox, "lark", one)
    assert "domain_switched" in statuses
    assert result["client_secret"] == approved["app_secret"]
    assert set(registration["polls"]) == {""}


async def test_secrets_come_only_from_the_tenants_own_accounts_host(
    sandbox: SandboxHarness,
) -> None:
    """Separate clouds: the other brand's host names the tenant, never hands out the secret."""
    reg_path = "/oauth/v1/app/registration"
    await sandbox.control("PATCH", "/settings", json={"registration_interval": 0})
    for tenant, other, own in (
        ("lark", "accounts.feishu.cn", "accounts.larksuite.com"),
        ("feishu", "accounts.larksuite.com", "accounts.feishu.cn"),
    ):
        begun = (
            await sandbox.http.post(f"/_hosts/{other}{reg_path}", data={"action": "begin"})
        ).json()
        approved = await sandbox.control(
            "POST", f"/registrations/{begun['user_code']}/approve", json={"brand": tenant}
        )
        poll = {"action": "poll", "device_code": begun["device_code"]}
        there = (await sandbox.http.post(f"/_hosts/{other}{reg_path}", data=poll)).json()
        assert there == {
            "client_id": approved["app_id"],
            "user_info": {"open_id": approved["open_id"], "tenant_brand": tenant},
        }
        home = (await sandbox.http.post(f"/_hosts/{own}{reg_path}", data=poll)).json()
        assert home["client_secret"] == approved["app_secret"]


def test_sdk_aes_cipher_decrypts_a_sandbox_webhook_body_and_signature_matches() -> None:
    import lark_oapi as lark
    from lark_oapi.core.model import RawRequest
    from lark_oapi.core.utils.decryptor import AESCipher

    from rudder.sandbox.events import envelope
    from rudder.sandbox.state import make_app

    app = make_app("Hook", "feishu", "tenant")
    event = envelope(app, "sandbox.test_v1", {"n": "中文"}, time.time())
    plaintext = json.dumps(event, ensure_ascii=False).encode()
    body, headers = build_request(app, plaintext)
    encrypted = json.loads(body)["encrypt"]
    assert AESCipher(app.encrypt_key).decrypt_str(encrypted).encode() == plaintext
    expected = sign(
        headers["X-Lark-Request-Timestamp"], headers["X-Lark-Request-Nonce"], app.encrypt_key, body
    )
    assert headers["X-Lark-Signature"] == expected

    # The SDK's whole webhook path: decrypt, verification token, signature, dispatch.
    received: list[Any] = []
    handler = (
        lark.EventDispatcherHandler.builder(app.encrypt_key, app.verification_token)
        .register_p2_customized_event("sandbox.test_v1", received.append)
        .build()
    )
    request = RawRequest()
    request.uri = "/webhook"
    request.headers = headers
    request.body = body
    response = handler.do(request)
    assert response.status_code == 200, response.content
    assert [r.event for r in received] == [{"n": "中文"}]

    tampered = RawRequest()
    tampered.uri = "/webhook"
    tampered.headers = {**headers, "X-Lark-Request-Nonce": "other"}
    tampered.body = body
    assert handler.do(tampered).status_code != 200  # the SDK's check can fail


def test_sdk_cipher_official_vector_through_our_decryptor() -> None:
    from rudder.sandbox.crypto import decrypt_body

    assert (
        decrypt_body("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"
    )


async def test_sdk_client_sends_a_message(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])

    def send() -> tuple[int, str | None]:
        import lark_oapi as lark
        from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

        client = (
            lark.Client.builder()
            .app_id(app["app_id"])
            .app_secret(app["app_secret"])
            .domain(sandbox.url)
            .build()
        )
        request = (
            CreateMessageRequest.builder()
            .receive_id_type("chat_id")
            .request_body(
                CreateMessageRequestBody.builder()
                .receive_id(chat)
                .msg_type("text")
                .content(json.dumps({"text": "hi from the SDK"}))
                .build()
            )
            .build()
        )
        response = client.im.v1.message.create(request)
        return response.code, response.data.message_id if response.success() else None

    code, message_id = await asyncio.to_thread(send)
    assert code == 0 and message_id
    messages = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert [(m["message_id"], m["text"], m["sender"]["sender_type"]) for m in messages] == [
        (message_id, "hi from the SDK", "app")
    ]


async def test_sdk_client_adds_lists_and_deletes_a_reaction(sandbox: SandboxHarness) -> None:
    """The typing indicator's three calls, through lark-oapi's own request and response models:
    the list filters by emoji type, names the app as operator, and pages."""
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])

    def calls() -> dict[str, object]:
        import lark_oapi as lark
        from lark_oapi.api.im.v1 import (
            CreateMessageReactionRequest,
            CreateMessageReactionRequestBody,
            CreateMessageRequest,
            CreateMessageRequestBody,
            DeleteMessageReactionRequest,
            Emoji,
            ListMessageReactionRequest,
        )

        client = (
            lark.Client.builder()
            .app_id(app["app_id"])
            .app_secret(app["app_secret"])
            .domain(sandbox.url)
            .build()
        )
        sent = client.im.v1.message.create(
            CreateMessageRequest.builder()
            .receive_id_type("chat_id")
            .request_body(
                CreateMessageRequestBody.builder()
                .receive_id(chat)
                .msg_type("text")
                .content(json.dumps({"text": "react to me"}))
                .build()
            )
            .build()
        )
        message_id = sent.data.message_id
        ids = []
        for emoji in ("Typing", "THUMBSUP", "Typing"):
            made = client.im.v1.message_reaction.create(
                CreateMessageReactionRequest.builder()
                .message_id(message_id)
                .request_body(
                    CreateMessageReactionRequestBody.builder()
                    .reaction_type(Emoji.builder().emoji_type(emoji).build())
                    .build()
                )
                .build()
            )
            assert made.success(), made.msg
            ids.append(made.data.reaction_id)
        first = client.im.v1.message_reaction.list(
            ListMessageReactionRequest.builder()
            .message_id(message_id)
            .reaction_type("Typing")
            .page_size(1)
            .build()
        )
        rest = client.im.v1.message_reaction.list(
            ListMessageReactionRequest.builder()
            .message_id(message_id)
            .reaction_type("Typing")
            .page_size(1)
            .page_token(first.data.page_token)
            .build()
        )
        gone = client.im.v1.message_reaction.delete(
            DeleteMessageReactionRequest.builder()
            .message_id(message_id)
            .reaction_id(ids[0])
            .build()
        )
        after = client.im.v1.message_reaction.list(
            ListMessageReactionRequest.builder().message_id(message_id).build()
        )
        return {
            "ids": ids,
            "first": [(i.reaction_id, i.operator.operator_type, i.operator.operator_id,
                       i.reaction_type.emoji_type) for i in first.data.items],
            "first_more": first.data.has_more,
            "rest": [i.reaction_id for i in rest.data.items],
            "rest_more": rest.data.has_more,
            "deleted": gone.success(),
            "after": [i.reaction_type.emoji_type for i in after.data.items],
        }  # fmt: skip

    got = await asyncio.to_thread(calls)
    ids = got["ids"]
    assert isinstance(ids, list)
    assert got["first"] == [(ids[0], "app", app["app_id"], "Typing")]
    assert got["first_more"] is True
    assert got["rest"] == [ids[2]] and got["rest_more"] is False
    assert got["deleted"] is True and got["after"] == ["THUMBSUP", "Typing"]

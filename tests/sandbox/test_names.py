"""Names of people and chats: contact v3 user get and im v1 chat get, read through lark-oapi's
own request and response models, and refused with Feishu's access-denied code without the scope."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.sandbox.conftest import SandboxHarness


def _client(sandbox: SandboxHarness, app: dict[str, Any]) -> Any:
    import lark_oapi as lark

    return (
        lark.Client.builder()
        .app_id(app["app_id"])
        .app_secret(app["app_secret"])
        .domain(sandbox.url)
        .build()
    )


async def test_user_and_chat_names_through_the_official_sdk(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    ada = await sandbox.create_user("Ada Lovelace")
    group = await sandbox.control(
        "POST",
        "/chats",
        json={
            "type": "group",
            "user_ids": [ada],
            "app_ids": [app["app_id"]],
            "name": "Launch room",
        },
    )

    def read() -> tuple[Any, Any]:
        from lark_oapi.api.im.v1 import GetChatRequest

        client = _client(sandbox, app)
        chat = client.im.v1.chat.get(GetChatRequest.builder().chat_id(group["chat_id"]).build())
        return chat, client

    chat, client = await asyncio.to_thread(read)
    assert chat.code == 0, chat.msg
    assert chat.data.name == "Launch room" and chat.data.chat_mode == "group"

    open_id = (await sandbox.control("GET", f"/users/{ada}"))["open_ids"][app["app_id"]]

    def user() -> Any:
        from lark_oapi.api.contact.v3 import GetUserRequest

        request = GetUserRequest.builder().user_id(open_id).user_id_type("open_id").build()
        return client.contact.v3.user.get(request)

    found = await asyncio.to_thread(user)
    assert found.code == 0, found.msg
    assert found.data.user.name == "Ada Lovelace" and found.data.user.open_id == open_id


async def test_without_the_scopes_both_reads_are_refused(sandbox: SandboxHarness) -> None:
    app = await sandbox.control(
        "POST", "/apps", json={"name": "Narrow", "scopes": ["im:message:send_as_bot"]}
    )
    ada = await sandbox.create_user("Ada Lovelace")
    chat = await sandbox.p2p(ada, app["app_id"])
    token = await sandbox.token(app)
    auth = {"Authorization": f"Bearer {token}"}
    r = await sandbox.http.get(f"/open-apis/im/v1/chats/{chat}", headers=auth)
    assert r.json()["code"] == 99991672 and "im:chat:readonly" in r.json()["msg"]
    r = await sandbox.http.get(
        "/open-apis/contact/v3/users/ou_x?user_id_type=open_id", headers=auth
    )
    assert r.json()["code"] == 99991672 and "contact:user.base:readonly" in r.json()["msg"]
    # Granting the scope (the console's permission page) lets the same calls through.
    await sandbox.control("PATCH", f"/apps/{app['app_id']}", json={"scopes": ["im:chat:readonly"]})
    r = await sandbox.http.get(f"/open-apis/im/v1/chats/{chat}", headers=auth)
    assert r.json()["code"] == 0 and r.json()["data"]["chat_mode"] == "p2p"

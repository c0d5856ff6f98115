"""Topic groups, threads and the message history API, through lark-oapi's models and client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.sandbox.conftest import SandboxHarness
from tests.sandbox.test_media import lark_client


async def _event_message(sandbox: SandboxHarness, event_id: str) -> Any:
    """The delivered event parsed by lark-oapi's own P2ImMessageReceiveV1 model."""
    import lark_oapi as lark
    from lark_oapi.api.im.v1 import P2ImMessageReceiveV1

    query = f"/deliveries?event_id={event_id}&include_event=1"
    [delivery] = (await sandbox.control("GET", query))["items"]
    parsed = lark.JSON.unmarshal(json.dumps(delivery["event"]), P2ImMessageReceiveV1)
    return parsed.event.message


def sdk_reply(client: Any, message_id: str, text: str, in_thread: bool) -> Any:
    from lark_oapi.api.im.v1 import ReplyMessageRequest, ReplyMessageRequestBody

    body = (
        ReplyMessageRequestBody.builder()
        .msg_type("text")
        .content(json.dumps({"text": text}))
        .reply_in_thread(in_thread)
        .build()
    )
    request = ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()
    return client.im.v1.message.reply(request)


def sdk_history(client: Any, **query: Any) -> Any:
    from lark_oapi.api.im.v1 import ListMessageRequest

    builder = ListMessageRequest.builder()
    for key, value in query.items():
        builder = getattr(builder, key)(value)
    return client.im.v1.message.list(builder.build())


async def _group(
    sandbox: SandboxHarness, mode: str = "group", **extra: Any
) -> tuple[dict[str, Any], str, str]:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    body = {"type": "group", "user_ids": [user], "app_ids": [app["app_id"]], **extra}
    if mode != "group":
        body["chat_mode"] = mode
    chat = await sandbox.control("POST", "/chats", json=body)
    assert chat["chat_mode"] == mode
    return app, user, chat["chat_id"]


async def _post(sandbox: SandboxHarness, chat: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await sandbox.control("POST", f"/chats/{chat}/messages", json=body)
    return result


async def test_topic_group_every_message_is_a_topic_and_replies_stay_in_it(
    sandbox: SandboxHarness,
) -> None:
    app, user, chat = await _group(sandbox, "topic")
    mention = {"user_id": user, "mention_app_ids": [app["app_id"]]}
    root = await _post(sandbox, chat, {**mention, "text": "first topic"})
    root_event = await _event_message(sandbox, root["event_ids"][0])
    assert root_event.thread_id.startswith("omt_") and root_event.root_id is None
    assert root["thread_id"] == root_event.thread_id

    client = lark_client(sandbox, app)
    answer = await asyncio.to_thread(sdk_reply, client, root["message_id"], "on it", False)
    # In a topic group every reply goes into the topic, reply_in_thread or not.
    assert answer.code == 0 and answer.data.thread_id == root_event.thread_id
    assert answer.data.root_id == root["message_id"]

    inside = await _post(sandbox, chat, {**mention, "text": "more", "thread_id": root["thread_id"]})
    inside_event = await _event_message(sandbox, inside["event_ids"][0])
    assert inside_event.thread_id == root["thread_id"]
    assert inside_event.root_id == root["message_id"] == inside_event.parent_id
    to_bot = await _post(
        sandbox, chat, {**mention, "text": "re", "reply_to": answer.data.message_id}
    )
    to_bot_event = await _event_message(sandbox, to_bot["event_ids"][0])
    assert to_bot_event.parent_id == answer.data.message_id
    assert to_bot_event.root_id == root["message_id"]

    second = await _post(sandbox, chat, {**mention, "text": "second topic"})
    assert second["thread_id"] not in (None, root["thread_id"])
    shown = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert [(m["text"].split()[-1], m["thread_id"]) for m in shown] == [
        ("topic", root["thread_id"]),
        ("it", root["thread_id"]),
        ("more", root["thread_id"]),
        ("re", root["thread_id"]),
        ("topic", second["thread_id"]),
    ]
    meta = await sandbox.http.get(
        f"/open-apis/im/v1/chats/{chat}",
        headers={"Authorization": f"Bearer {await sandbox.token(app)}"},
    )
    assert meta.json()["data"]["chat_mode"] == "topic"
    unknown = await sandbox.http.post(
        f"/_sandbox/api/chats/{chat}/messages",
        json={"user_id": user, "text": "x", "thread_id": "omt_missing"},
    )
    assert unknown.status_code == 404 and "omt_missing" in unknown.json()["detail"]


async def test_normal_group_reply_in_thread_opens_a_thread_and_quotes_do_not(
    sandbox: SandboxHarness,
) -> None:
    app, user, chat = await _group(sandbox)
    mention = {"user_id": user, "mention_app_ids": [app["app_id"]]}
    first = await _post(sandbox, chat, {**mention, "text": "question"})
    assert first["thread_id"] is None
    client = lark_client(sandbox, app)
    quoted = await asyncio.to_thread(sdk_reply, client, first["message_id"], "quote", False)
    assert quoted.data.thread_id is None and quoted.data.root_id == first["message_id"]
    threaded = await asyncio.to_thread(sdk_reply, client, first["message_id"], "thread", True)
    thread_id = threaded.data.thread_id
    assert thread_id.startswith("omt_") and threaded.data.root_id == first["message_id"]
    follow = await _post(
        sandbox, chat, {**mention, "text": "ok", "reply_to": threaded.data.message_id}
    )
    event = await _event_message(sandbox, follow["event_ids"][0])
    assert (event.thread_id, event.root_id, event.parent_id) == (
        thread_id,
        first["message_id"],
        threaded.data.message_id,
    )


async def test_history_pages_sorts_and_separates_threads(sandbox: SandboxHarness) -> None:
    app, user, chat = await _group(sandbox)
    ids = []
    for n in range(5):
        ids.append((await _post(sandbox, chat, {"user_id": user, "text": f"m{n}"}))["message_id"])
    client = lark_client(sandbox, app)
    reply = await asyncio.to_thread(sdk_reply, client, ids[1], "in thread", True)
    thread_id = reply.data.thread_id

    def run() -> dict[str, Any]:
        page1 = sdk_history(client, container_id_type="chat", container_id=chat, page_size=2)
        page2 = sdk_history(
            client,
            container_id_type="chat",
            container_id=chat,
            page_size=2,
            page_token=page1.data.page_token,
        )
        page3 = sdk_history(
            client,
            container_id_type="chat",
            container_id=chat,
            page_size=2,
            page_token=page2.data.page_token,
        )
        desc = sdk_history(
            client, container_id_type="chat", container_id=chat, sort_type="ByCreateTimeDesc"
        )
        thread = sdk_history(client, container_id_type="thread", container_id=thread_id)
        named = sdk_history(
            client, container_id_type="chat", container_id=chat, with_sender_name=True
        )
        return {
            "pages": [page1, page2, page3],
            "desc": desc,
            "thread": thread,
            "named": named,
            "too_big": sdk_history(
                client, container_id_type="chat", container_id=chat, page_size=51
            ).code,
            "bad_type": sdk_history(client, container_id_type="user", container_id=chat).code,
        }

    got = await asyncio.to_thread(run)
    pages = got["pages"]
    assert [p.code for p in pages] == [0, 0, 0]
    assert [p.data.has_more for p in pages] == [True, True, False]
    assert pages[2].data.page_token is None
    # The chat container holds the thread's root but not the reply inside it.
    assert [m.message_id for p in pages for m in p.data.items] == ids
    assert [m.message_id for m in got["desc"].data.items] == ids[::-1]
    thread_items = got["thread"].data.items
    assert [m.message_id for m in thread_items] == [ids[1], reply.data.message_id]
    assert thread_items[1].thread_id == thread_id and thread_items[1].sender.id_type == "app_id"
    first = got["named"].data.items[0]
    users = await sandbox.control("GET", f"/users?app_id={app['app_id']}")
    assert first.sender.id == users["items"][0]["open_id"] and first.sender.id_type == "open_id"
    assert first.sender.sender_name == "Tom" and json.loads(first.body.content) == {"text": "m0"}
    assert got["too_big"] == 99992402 and got["bad_type"] == 99992402


async def test_history_time_range(sandbox: SandboxHarness) -> None:
    app, user, chat = await _group(sandbox)
    await _post(sandbox, chat, {"user_id": user, "text": "old"})
    await sandbox.control("POST", "/clock", json={"advance_s": 120})
    later = await _post(sandbox, chat, {"user_id": user, "text": "new"})
    now = int((await sandbox.control("POST", "/clock", json={}))["now"])
    client = lark_client(sandbox, app)
    recent = await asyncio.to_thread(
        sdk_history,
        client,
        container_id_type="chat",
        container_id=chat,
        start_time=str(now - 60),
        end_time=str(now + 1),
    )
    assert [m.message_id for m in recent.data.items] == [later["message_id"]]


async def test_history_needs_the_scope_the_chat_and_never_shows_before_joining(
    sandbox: SandboxHarness,
) -> None:
    _app, user, chat = await _group(sandbox)
    await _post(sandbox, chat, {"user_id": user, "text": "before the second bot"})
    late = await sandbox.control("POST", "/apps", json={"name": "Late", "scopes": None})
    await sandbox.control("POST", f"/chats/{chat}/bots", json={"app_id": late["app_id"]})
    after = await _post(sandbox, chat, {"user_id": user, "text": "after"})
    late_client = lark_client(sandbox, late)
    seen = await asyncio.to_thread(
        sdk_history, late_client, container_id_type="chat", container_id=chat
    )
    assert [m.message_id for m in seen.data.items] == [after["message_id"]]

    outsider = lark_client(sandbox, await sandbox.create_app("Outsider"))
    far = await asyncio.to_thread(
        sdk_history, outsider, container_id_type="chat", container_id=chat
    )
    assert far.code == 230002

    readonly = await sandbox.control(
        "POST", "/apps", json={"name": "RO", "scopes": ["im:message:readonly"]}
    )
    await sandbox.control("POST", f"/chats/{chat}/bots", json={"app_id": readonly["app_id"]})
    ro_client = lark_client(sandbox, readonly)
    group = await asyncio.to_thread(
        sdk_history, ro_client, container_id_type="chat", container_id=chat
    )
    assert group.code == 99991672 and "im:message.group_msg" in group.msg
    p2p = await sandbox.p2p(user, readonly["app_id"])
    direct = await asyncio.to_thread(
        sdk_history, ro_client, container_id_type="chat", container_id=p2p
    )
    assert direct.code == 0

    none = await sandbox.control("POST", "/apps", json={"name": "None", "scopes": []})
    nothing = await asyncio.to_thread(
        sdk_history,
        lark_client(sandbox, none),
        container_id_type="chat",
        container_id=await sandbox.p2p(user, none["app_id"]),
    )
    assert nothing.code == 99991672 and "im:message.history:readonly" in nothing.msg

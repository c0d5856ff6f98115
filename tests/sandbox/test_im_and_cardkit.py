"""IM send/reply/edit/patch/reactions, CardKit streaming, limits — and what a person reads."""

from __future__ import annotations

import json
from typing import Any

from tests.sandbox.conftest import SandboxHarness

MESSAGES = "/open-apis/im/v1/messages"
CARDS = "/open-apis/cardkit/v1/cards"


async def _bot_in_chat(sandbox: SandboxHarness) -> tuple[dict[str, Any], dict[str, str], str, str]:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    return app, {"Authorization": f"Bearer {await sandbox.token(app)}"}, user, chat


def _text(value: str) -> str:
    return json.dumps({"text": value})


async def test_send_reply_in_thread_and_uuid_dedup(sandbox: SandboxHarness) -> None:
    _app, auth, user, chat = await _bot_in_chat(sandbox)
    posted = await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "ping"}
    )
    body = {
        "msg_type": "text",
        "content": _text("pong"),
        "uuid": "run-1-part-1",
        "reply_in_thread": True,
    }
    first = (
        await sandbox.http.post(f"{MESSAGES}/{posted['message_id']}/reply", json=body, headers=auth)
    ).json()
    again = (
        await sandbox.http.post(f"{MESSAGES}/{posted['message_id']}/reply", json=body, headers=auth)
    ).json()
    assert first["code"] == 0 and again["data"]["message_id"] == first["data"]["message_id"]
    assert first["data"]["parent_id"] == posted["message_id"] and first["data"][
        "thread_id"
    ].startswith("omt_")
    sent = {"receive_id": chat, "msg_type": "text", "content": _text("hello"), "uuid": "u-2"}
    a = (
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=sent, headers=auth)
    ).json()
    b = (
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=sent, headers=auth)
    ).json()
    assert a["data"]["message_id"] == b["data"]["message_id"]
    await sandbox.control("POST", "/clock", json={"advance_s": 3601})  # de-dup lasts one hour
    c = (
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=sent, headers=auth)
    ).json()
    assert c["data"]["message_id"] != a["data"]["message_id"]
    items = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert [(m["sender"]["sender_type"], m["text"], m["parent_id"]) for m in items] == [
        ("user", "ping", None),
        ("app", "pong", posted["message_id"]),
        ("app", "hello", None),
        ("app", "hello", None),
    ]


async def test_send_by_open_id_opens_the_p2p_chat(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user("Zoe")
    auth = {"Authorization": f"Bearer {await sandbox.token(app)}"}
    open_id = (await sandbox.control("GET", f"/users?app_id={app['app_id']}"))["items"][0][
        "open_id"
    ]
    other_app = await sandbox.create_app()
    assert (
        open_id
        != (await sandbox.control("GET", f"/users?app_id={other_app['app_id']}"))["items"][0][
            "open_id"
        ]
    )
    sent = (
        await sandbox.http.post(
            f"{MESSAGES}?receive_id_type=open_id",
            json={"receive_id": open_id, "msg_type": "text", "content": _text("hi")},
            headers=auth,
        )
    ).json()
    assert sent["code"] == 0
    chats = (await sandbox.control("GET", f"/chats?user_id={user}"))["items"]
    assert [c["chat_id"] for c in chats] == [sent["data"]["chat_id"]]


async def test_edit_cap_and_size_limits(sandbox: SandboxHarness) -> None:
    await sandbox.control("PATCH", "/settings", json={"target_per_second": 100})
    _app, auth, _user, chat = await _bot_in_chat(sandbox)
    sent = (
        await sandbox.http.post(
            f"{MESSAGES}?receive_id_type=chat_id",
            json={"receive_id": chat, "msg_type": "text", "content": _text("v0")},
            headers=auth,
        )
    ).json()["data"]
    codes = []
    for n in range(1, 22):
        r = await sandbox.http.put(
            f"{MESSAGES}/{sent['message_id']}",
            json={"msg_type": "text", "content": _text(f"v{n}")},
            headers=auth,
        )
        codes.append(r.json()["code"])
    assert codes == [0] * 20 + [230072]
    [view] = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert (view["text"], view["edits"]) == ("v20", 20)
    big = {"receive_id": chat, "msg_type": "text", "content": _text("x" * 151 * 1024)}
    assert (
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=big, headers=auth)
    ).json()["code"] == 230025
    card = json.dumps({"elements": [{"tag": "markdown", "content": "x" * 31 * 1024}]})
    big_card = {"receive_id": chat, "msg_type": "interactive", "content": card}
    assert (
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=big_card, headers=auth)
    ).json()["code"] == 230025


async def test_per_chat_rate_limit_is_230020(sandbox: SandboxHarness) -> None:
    _app, auth, _user, chat = await _bot_in_chat(sandbox)
    body = {"receive_id": chat, "msg_type": "text", "content": _text("spam")}
    answers = [
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=body, headers=auth)
        for _ in range(6)
    ]
    assert [a.json()["code"] for a in answers] == [0] * 5 + [230020]
    assert answers[-1].status_code == 400


async def test_card_patch_and_reactions(sandbox: SandboxHarness) -> None:
    _app, auth, user, chat = await _bot_in_chat(sandbox)
    posted = await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hi"}
    )
    reaction = (
        await sandbox.http.post(
            f"{MESSAGES}/{posted['message_id']}/reactions",
            json={"reaction_type": {"emoji_type": "Typing"}},
            headers=auth,
        )
    ).json()
    assert reaction["code"] == 0 and reaction["data"]["reaction_type"] == {"emoji_type": "Typing"}
    items = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert [r["emoji_type"] for r in items[0]["reactions"]] == ["Typing"]
    removed = await sandbox.http.delete(
        f"{MESSAGES}/{posted['message_id']}/reactions/{reaction['data']['reaction_id']}",
        headers=auth,
    )
    assert removed.json()["code"] == 0
    card = {
        "header": {"title": {"tag": "plain_text", "content": "Title"}},
        "elements": [{"tag": "markdown", "content": "first"}],
    }
    sent = (
        await sandbox.http.post(
            f"{MESSAGES}?receive_id_type=chat_id",
            json={"receive_id": chat, "msg_type": "interactive", "content": json.dumps(card)},
            headers=auth,
        )
    ).json()["data"]
    card["elements"][0]["content"] = "second"  # type: ignore[index]
    patched = await sandbox.http.patch(
        f"{MESSAGES}/{sent['message_id']}", json={"content": json.dumps(card)}, headers=auth
    )
    assert patched.json()["code"] == 0
    edit = await sandbox.http.put(
        f"{MESSAGES}/{sent['message_id']}",
        json={"msg_type": "text", "content": _text("x")},
        headers=auth,
    )
    assert edit.json()["code"] != 0  # cards are not edited with PUT
    not_mine = await sandbox.http.put(
        f"{MESSAGES}/{posted['message_id']}",
        json={"msg_type": "text", "content": _text("x")},
        headers=auth,
    )
    assert not_mine.json()["code"] == 230071
    view = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"][-1]
    assert view["text"] == "Title\nsecond" and view["card"]["elements"][0]["content"] == "second"


async def test_streaming_card_sequence_and_rate(sandbox: SandboxHarness) -> None:
    _app, auth, _user, chat = await _bot_in_chat(sandbox)
    card = {
        "schema": "2.0",
        "config": {"streaming_mode": True},
        "body": {
            "elements": [{"tag": "markdown", "content": "", "element_id": "streaming_content"}]
        },
    }
    created = (
        await sandbox.http.post(
            CARDS, json={"type": "card_json", "data": json.dumps(card)}, headers=auth
        )
    ).json()
    card_id = created["data"]["card_id"]
    content = json.dumps({"type": "card", "data": {"card_id": card_id}})
    sent = {"receive_id": chat, "msg_type": "interactive", "content": content}
    assert (
        await sandbox.http.post(f"{MESSAGES}?receive_id_type=chat_id", json=sent, headers=auth)
    ).json()["code"] == 0
    element = f"{CARDS}/{card_id}/elements/streaming_content/content"

    async def put(text: str, sequence: int) -> int:
        response = await sandbox.http.put(
            element, json={"content": text, "sequence": sequence}, headers=auth
        )
        assert response.status_code < 500
        return int(response.json()["code"])

    assert await put("Hel", 1) == 0
    assert await put("Hello", 2) == 0
    assert await put("stale", 2) == 300317
    view = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"][-1]
    assert view["text"] == "Hello" and view["streaming"] is True
    codes = [await put("Hello!", n) for n in range(3, 15)]
    assert 230020 in codes and codes[:8] == [0] * 8  # ≤ 10 ops per second per card
    settings = {"settings": json.dumps({"config": {"streaming_mode": False}}), "sequence": 100}
    await sandbox.control("PATCH", "/settings", json={"card_ops_per_second": 1000})
    assert (
        await sandbox.http.patch(f"{CARDS}/{card_id}/settings", json=settings, headers=auth)
    ).json()["code"] == 0
    assert await put("after close", 101) == 300309
    view = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"][-1]
    assert view["text"] == "Hello!" and view["streaming"] is False


async def test_slash_commands_crud(sandbox: SandboxHarness) -> None:
    app, auth, _user, _chat = await _bot_in_chat(sandbox)
    path = "/open-apis/application/v7/app_slash_commands"
    created = (
        await sandbox.http.post(
            path, json={"command": "new", "description": {"default_value": "Fresh"}}, headers=auth
        )
    ).json()
    assert created["code"] == 0
    dup = (await sandbox.http.post(path, json={"command": "new"}, headers=auth)).json()
    assert dup["code"] == 40000000
    command_id = created["data"]["command_id"]
    assert (
        await sandbox.http.patch(
            f"{path}/{command_id}", json={"description": "Start over"}, headers=auth
        )
    ).json()["code"] == 0
    listed = (await sandbox.http.get(path, headers=auth)).json()["data"]["items"]
    assert [(c["command"], c["description"]["default_value"]) for c in listed] == [
        ("new", "Start over")
    ]
    assert (await sandbox.control("GET", f"/apps/{app['app_id']}/slash_commands"))["items"][0][
        "command"
    ] == "new"
    assert (await sandbox.http.delete(f"{path}/{command_id}", headers=auth)).json()["code"] == 0
    assert (await sandbox.http.get(path, headers=auth)).json()["data"]["items"] == []


async def test_malformed_input_never_500(sandbox: SandboxHarness) -> None:
    _app, auth, _user, chat = await _bot_in_chat(sandbox)
    bodies: list[Any] = [
        b"",
        b"null",
        b"[1]",
        b"{bad",
        b'{"receive_id": 1}',
        b'{"msg_type": "text", "content": 5}',
    ]
    paths = [
        ("POST", f"{MESSAGES}?receive_id_type=chat_id"),
        ("POST", f"{MESSAGES}?receive_id_type=nonsense"),
        ("POST", f"{MESSAGES}/om_x/reply"),
        ("PUT", f"{MESSAGES}/om_x"),
        ("PATCH", f"{MESSAGES}/om_x"),
        ("POST", f"{MESSAGES}/om_x/reactions"),
        ("POST", CARDS),
        ("PUT", f"{CARDS}/1/elements/e/content"),
        ("PATCH", f"{CARDS}/1/settings"),
        ("POST", "/open-apis/application/v7/app_slash_commands"),
        ("POST", "/callback/ws/endpoint"),
        ("POST", "/oauth/v1/app/registration"),
        ("POST", "/_sandbox/api/chats"),
        ("POST", f"/_sandbox/api/chats/{chat}/messages"),
        ("POST", "/_sandbox/api/faults"),
        ("PATCH", "/_sandbox/api/settings"),
    ]
    for method, path in paths:
        for body in bodies:
            response = await sandbox.http.request(method, path, content=body, headers=auth)
            assert response.status_code < 500, (method, path, body, response.text)
            assert response.headers["content-type"].startswith("application/json"), (method, path)
            assert "Traceback" not in response.text

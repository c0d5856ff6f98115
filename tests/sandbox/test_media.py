"""Images, files, voice and video both ways, through lark-oapi's own upload and download calls."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rudder.sandbox import SandboxServer
from rudder.sandbox.resource_store import PLACEHOLDER_PNG
from tests.sandbox.conftest import SandboxHarness, eventually

PNG = PLACEHOLDER_PNG + b"\x00" * 100  # trailing bytes keep it a PNG by magic


def lark_client(sandbox: SandboxHarness, app: dict[str, Any]) -> Any:
    import lark_oapi as lark

    return (
        lark.Client.builder()
        .app_id(app["app_id"])
        .app_secret(app["app_secret"])
        .domain(sandbox.url)
        .log_level(lark.LogLevel.ERROR)
        .build()
    )


def sdk_upload_image(client: Any, data: bytes) -> Any:
    from lark_oapi.api.im.v1 import CreateImageRequest, CreateImageRequestBody

    body = CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(data)).build()
    return client.im.v1.image.create(CreateImageRequest.builder().request_body(body).build())


def sdk_upload_file(
    client: Any, data: bytes, file_type: str, name: str, duration: int | None = None
) -> Any:
    from lark_oapi.api.im.v1 import CreateFileRequest, CreateFileRequestBody

    builder = CreateFileRequestBody.builder().file_type(file_type).file_name(name)
    if duration is not None:
        builder = builder.duration(duration)
    body = builder.file(io.BytesIO(data)).build()
    return client.im.v1.file.create(CreateFileRequest.builder().request_body(body).build())


def sdk_send(client: Any, chat_id: str, msg_type: str, content: dict[str, Any]) -> Any:
    from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

    body = (
        CreateMessageRequestBody.builder()
        .receive_id(chat_id)
        .msg_type(msg_type)
        .content(json.dumps(content))
        .build()
    )
    request = CreateMessageRequest.builder().receive_id_type("chat_id").request_body(body).build()
    return client.im.v1.message.create(request)


def sdk_download(client: Any, message_id: str, key: str, kind: str) -> Any:
    from lark_oapi.api.im.v1 import GetMessageResourceRequest

    request = (
        GetMessageResourceRequest.builder().message_id(message_id).file_key(key).type(kind).build()
    )
    return client.im.v1.message_resource.get(request)


async def test_bot_uploads_an_image_and_a_file_and_sends_them(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    client = lark_client(sandbox, app)
    pdf = b"%PDF-1.4 report\n" * 1000

    def run() -> tuple[Any, ...]:
        image = sdk_upload_image(client, PNG)
        doc = sdk_upload_file(client, pdf, "pdf", "report 报告.pdf")
        voice = sdk_upload_file(client, b"OggS" + b"\x01" * 500, "opus", "v.opus", 3000)
        sent_image = sdk_send(client, chat, "image", {"image_key": image.data.image_key})
        sent_file = sdk_send(client, chat, "file", {"file_key": doc.data.file_key})
        sent_voice = sdk_send(client, chat, "audio", {"file_key": voice.data.file_key})
        # A voice message needs an opus upload: a pdf key is refused.
        wrong = sdk_send(client, chat, "audio", {"file_key": doc.data.file_key})
        unknown = sdk_send(client, chat, "image", {"image_key": "img_v3_nope"})
        return image, doc, sent_image, sent_file, sent_voice, wrong, unknown

    image, doc, sent_image, sent_file, sent_voice, wrong, unknown = await asyncio.to_thread(run)
    assert image.code == 0 and image.data.image_key.startswith("img_v3_")
    assert doc.code == 0 and doc.data.file_key.startswith("file_v3_")
    assert sent_image.code == 0 and sent_file.code == 0 and sent_voice.code == 0
    assert wrong.code == 230055 and unknown.code == 230001
    items = (await sandbox.control("GET", f"/chats/{chat}/messages"))["items"]
    assert [m["msg_type"] for m in items] == ["image", "file", "audio"]
    [shown] = items[1]["resources"]
    assert shown["key"] == doc.data.file_key and shown["type"] == "file"
    assert shown["sha256"] == hashlib.sha256(pdf).hexdigest() and shown["file_type"] == "pdf"
    assert items[2]["resources"][0]["duration"] == 3000
    raw = await sandbox.http.get(f"/_sandbox/api/resources/{image.data.image_key}")
    assert raw.content == PNG and raw.headers["content-type"] == "image/png"

    other = await sandbox.create_app("Other")
    other_chat = await sandbox.p2p(user, other["app_id"])
    foreign = await asyncio.to_thread(
        sdk_send,
        lark_client(sandbox, other),
        other_chat,
        "image",
        {"image_key": image.data.image_key},
    )
    assert foreign.code == 230017  # only the uploading bot may send its keys


async def test_upload_limits_and_errors(sandbox: SandboxHarness) -> None:
    await sandbox.control(
        "PATCH", "/settings", json={"image_upload_limit": 2048, "file_upload_limit": 4096}
    )
    app = await sandbox.create_app()
    client = lark_client(sandbox, app)

    def run() -> list[int]:
        return [
            sdk_upload_image(client, PNG + b"\x00" * 4096).code,  # over the image limit
            sdk_upload_image(client, b"not an image at all").code,
            sdk_upload_file(client, b"x" * 5000, "stream", "big.bin").code,  # over the file limit
            sdk_upload_file(client, b"", "stream", "empty.bin").code,
            sdk_upload_file(client, b"abc", "exe", "a.exe").code,
            sdk_upload_file(client, b"abc", "stream", "ok.bin").code,
        ]

    assert await asyncio.to_thread(run) == [234006, 234011, 234006, 234010, 234001, 0]
    token = await sandbox.token(app)
    headers = {"Authorization": f"Bearer {token}"}
    r = await sandbox.http.post("/open-apis/im/v1/images", headers=headers, json={"image": "x"})
    assert r.status_code == 400 and r.json()["code"] == 234001
    limited = await sandbox.control(
        "POST", "/apps", json={"name": "NoRes", "scopes": ["im:message"]}
    )
    denied = await asyncio.to_thread(sdk_upload_image, lark_client(sandbox, limited), PNG)
    assert denied.code == 99991672 and "im:resource" in denied.msg


async def _person_posts(
    sandbox: SandboxHarness, chat: str, user: str, body: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, **body}
    )
    return result


async def _event_content(sandbox: SandboxHarness, event_id: str) -> dict[str, Any]:
    [delivery] = (await sandbox.control("GET", f"/deliveries?event_id={event_id}&include_event=1"))[
        "items"
    ]
    message = delivery["event"]["event"]["message"]
    return {"type": message["message_type"], **json.loads(message["content"])}


@pytest.fixture
async def h11_sandbox() -> AsyncIterator[SandboxHarness]:
    # h11 keeps the header names' case, as Feishu's gateway does; lark-oapi's download reads
    # Content-Type and Content-Disposition case-sensitively.
    async with (
        SandboxServer(http="h11") as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        yield SandboxHarness(server=server, http=http)


async def test_person_sends_every_media_type_and_the_bot_downloads_it(
    h11_sandbox: SandboxHarness,
) -> None:
    sandbox = h11_sandbox
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    client = lark_client(sandbox, app)
    blob = bytes(range(256)) * 400
    b64 = base64.b64encode(blob).decode()

    image = await _person_posts(
        sandbox,
        chat,
        user,
        {"message_type": "image", "data_base64": base64.b64encode(PNG).decode()},
    )
    content = await _event_content(sandbox, image["event_ids"][0])
    assert set(content) == {"type", "image_key"} and content["image_key"].startswith("img_v3_")
    doc = await _person_posts(
        sandbox, chat, user, {"message_type": "file", "data_base64": b64, "file_name": "数据.bin"}
    )
    doc_content = await _event_content(sandbox, doc["event_ids"][0])
    assert doc_content["file_name"] == "数据.bin"
    voice = await _person_posts(
        sandbox, chat, user, {"message_type": "audio", "data_base64": b64, "duration": 2500}
    )
    assert (await _event_content(sandbox, voice["event_ids"][0]))["duration"] == 2500
    stored = await sandbox.control(
        "POST", "/files", json={"kind": "image", "data_base64": base64.b64encode(PNG).decode()}
    )
    video = await _person_posts(
        sandbox,
        chat,
        user,
        {"message_type": "media", "data_base64": b64, "file_name": "clip.mp4", "duration": 9000,
         "image_key": stored["key"]},
    )  # fmt: skip
    video_content = await _event_content(sandbox, video["event_ids"][0])
    assert set(video_content) == {"type", "file_key", "image_key", "file_name", "duration"}
    sticker = await _person_posts(sandbox, chat, user, {"message_type": "sticker"})
    sticker_key = (await _event_content(sandbox, sticker["event_ids"][0]))["file_key"]
    post = await _person_posts(
        sandbox, chat, user, {"message_type": "post", "text": "look", "image_keys": [stored["key"]]}
    )
    post_content = await _event_content(sandbox, post["event_ids"][0])
    assert post_content["content"][1] == [{"tag": "img", "image_key": stored["key"]}]

    def run() -> dict[str, Any]:
        ok_file = sdk_download(client, doc["message_id"], doc_content["file_key"], "file")
        return {
            "file": (ok_file.code, ok_file.file.read(), ok_file.file_name),
            "image": sdk_download(client, image["message_id"], content["image_key"], "image"),
            "cover": sdk_download(client, video["message_id"], stored["key"], "image").code,
            "post_image": sdk_download(client, post["message_id"], stored["key"], "image").code,
            "wrong_type": sdk_download(client, image["message_id"], content["image_key"], "file"),
            "not_in_msg": sdk_download(client, doc["message_id"], stored["key"], "image").code,
            "sticker": sdk_download(client, sticker["message_id"], sticker_key, "file").code,
        }

    got = await asyncio.to_thread(run)
    assert got["file"][0] == 0 and got["file"][1] == blob
    assert got["file"][2] == "数据.bin"  # the SDK decodes filename* (RFC 5987)
    assert got["image"].file.read() == PNG
    assert got["cover"] == 0 and got["post_image"] == 0
    assert got["wrong_type"].code == 234001
    assert got["not_in_msg"] == 234003 and got["sticker"] == 234043
    token = await sandbox.token(app)
    raw = await sandbox.http.get(
        f"/open-apis/im/v1/messages/{doc['message_id']}/resources/{doc_content['file_key']}",
        params={"type": "file"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert raw.headers["content-disposition"] == (
        "attachment; filename=\"__.bin\"; filename*=UTF-8''%E6%95%B0%E6%8D%AE.bin"
    )
    assert raw.headers["content-length"] == str(len(blob))

    # A bot that is not in the message's chat may not read it; over 100 MB is refused.
    outsider = lark_client(sandbox, await sandbox.create_app("Outsider"))
    far = await asyncio.to_thread(
        sdk_download, outsider, doc["message_id"], doc_content["file_key"], "file"
    )
    assert far.code == 234004
    await sandbox.control("PATCH", "/settings", json={"resource_download_limit": 1000})
    big = await asyncio.to_thread(
        sdk_download, client, doc["message_id"], doc_content["file_key"], "file"
    )
    assert big.code == 234037


async def test_download_faults_fail_slow_and_cut(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    blob = b"z" * 300_000
    doc = await _person_posts(
        sandbox,
        chat,
        user,
        {"message_type": "file", "data_base64": base64.b64encode(blob).decode()},
    )
    key = (await _event_content(sandbox, doc["event_ids"][0]))["file_key"]
    token = await sandbox.token(app)
    url = f"/open-apis/im/v1/messages/{doc['message_id']}/resources/{key}"
    auth = {"Authorization": f"Bearer {token}"}

    await sandbox.control(
        "POST",
        "/faults",
        json={"kind": "fail_api", "api": "im.message.resource.get", "code": 234001},
    )
    failed = await sandbox.http.get(url, params={"type": "file"}, headers=auth)
    assert failed.status_code == 400 and failed.json()["code"] == 234001

    await sandbox.control("POST", "/faults", json={"kind": "slow_download", "delay_s": 0.6})
    started = time.monotonic()
    slow = await sandbox.http.get(url, params={"type": "file"}, headers=auth)
    assert slow.content == blob and time.monotonic() - started >= 0.6

    await sandbox.control("POST", "/faults", json={"kind": "cut_download", "after_bytes": 100_000})
    cut_error: Exception | None = None
    try:
        await sandbox.http.get(url, params={"type": "file"}, headers=auth)
    except httpx.HTTPError as exc:  # fewer bytes than Content-Length, then the socket closes
        cut_error = exc
    assert cut_error is not None
    assert (await sandbox.control("GET", "/faults"))["downloads"] == []
    whole = await sandbox.http.get(url, params={"type": "file"}, headers=auth)
    assert whole.content == blob


async def test_bad_media_input_is_named(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    bad = await sandbox.http.post(
        f"/_sandbox/api/chats/{chat}/messages",
        json={"user_id": user, "message_type": "file", "data_base64": "***"},
    )
    assert bad.status_code == 400 and "data_base64" in bad.json()["detail"]
    missing = await sandbox.http.post(
        f"/_sandbox/api/chats/{chat}/messages",
        json={"user_id": user, "message_type": "image", "image_key": "img_v3_missing"},
    )
    assert missing.status_code == 404 and "img_v3_missing" in missing.json()["detail"]

    async def nothing_stored() -> bool:
        return not (await sandbox.control("GET", "/resources"))["items"]

    assert await eventually(nothing_stored)


async def test_raw_upload_streams_to_disk_and_the_folder_goes_with_the_sandbox() -> None:
    blob = bytes(range(256)) * 12_000  # 3 MB
    async with (
        SandboxServer() as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        harness = SandboxHarness(server=server, http=http)
        app = await harness.create_app()
        user = await harness.create_user()
        chat = await harness.p2p(user, app["app_id"])

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(blob), 100_000):
                yield blob[start : start + 100_000]

        stored = await http.post(
            "/_sandbox/api/files",
            params={"kind": "file", "file_name": "big.bin", "duration": "7"},
            content=body(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert stored.status_code == 200, stored.text
        meta = stored.json()
        assert meta["size"] == len(blob) and meta["sha256"] == hashlib.sha256(blob).hexdigest()
        assert meta["duration"] == 7 and meta["mime_type"] == "application/octet-stream"
        posted = await _person_posts(
            harness, chat, user, {"message_type": "file", "file_key": meta["key"]}
        )
        assert json.loads(posted["content"]) == {"file_key": meta["key"], "file_name": "big.bin"}
        back = await http.get(f"/_sandbox/api/resources/{meta['key']}")
        assert back.content == blob
        path = server.sandbox.resources[meta["key"]].path
        assert path.read_bytes() == blob
        bad = await http.post(
            "/_sandbox/api/files", params={"kind": "video"}, content=b"x",
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert bad.status_code == 400 and "kind" in bad.json()["detail"]
    assert not path.exists() and not path.parent.exists()

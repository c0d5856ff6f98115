"""Images and files: upload (image.create, file.create) and download (message_resource.get).

Upload codes follow image.create's error table: 234001 invalid param, 234006 too large (files
30 MB, images 10 MB), 234010 empty file; 234011 (image format not recognised) is the same
family's number for that case. The download doc confirms its limits (100 MB, no stickers) but
its error table was not at hand: 234003 the key is not in the message, 234004 the app is not in
the message's chat, 234037 over the download limit and 234043 unsupported type are the numbers
of that family as commonly reported — a client should key on `code != 0` and the HTTP 400.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rudder.sandbox import render
from rudder.sandbox.envelope import access_denied, authorize, fail
from rudder.sandbox.envelope import ok as ok_response
from rudder.sandbox.resource_store import (
    FILE_TYPES,
    UPLOAD_API,
    Resource,
    image_mime,
    keys_in_content,
    store,
    take_stream_fault,
)

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox
    from rudder.sandbox.state import App

INVALID_PARAM = 234001
TOO_LARGE = 234006
EMPTY_FILE = 234010
BAD_IMAGE = 234011
NOT_IN_MESSAGE = 234003
APP_NOT_IN_CHAT = 234004
DOWNLOAD_TOO_LARGE = 234037
UNSUPPORTED_TYPE = 234043
# Send side (message.create / reply): a key this app did not upload, or of the wrong kind.
SEND_INVALID = 230001
NOT_RESOURCE_OWNER = 230017
FILE_TYPE_MISMATCH = 230055

UPLOAD_SCOPES = ("im:resource", "im:resource:upload")
DOWNLOAD_SCOPES = ("im:message", "im:message:readonly", "im:message.history:readonly")
CHUNK = 64 * 1024


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def _upload_form(
    request: Request, api: str, limit: int
) -> tuple[Sandbox, App, dict[str, Any]] | Response:
    sandbox = _sandbox(request)
    app = authorize(sandbox, request, api)
    if isinstance(app, Response):
        return app
    if not app.has_scope(*UPLOAD_SCOPES):
        return access_denied(UPLOAD_SCOPES)
    declared = request.headers.get("content-length", "")
    # Refuse an oversized body before reading it (the multipart framing adds a little).
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        return fail(TOO_LARGE, "The file size exceed the max value.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return fail(INVALID_PARAM, "Invalid request param: the body must be multipart/form-data.")
    fields = parse_multipart(request.headers["content-type"], await request.body())
    if fields is None:
        return fail(INVALID_PARAM, "Invalid request param: malformed multipart body.")
    return sandbox, app, fields


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any] | None:
    """Every part as raw bytes (file parts) or text, by name; None when the framing is broken.

    Starlette's form parser turns a part without a filename into text, but the SDKs send the
    image/file part without one (lark-oapi's MultipartEncoder of a bare stream), so the bytes
    would be decoded; the standard library's MIME parser keeps every part's bytes as sent.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=default_policy).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        return None
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        if name in ("image", "file"):
            fields[name] = data
            fields[name + ".filename"] = part.get_filename() or ""
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields


def _size_errors(data: object, limit: int) -> Response | None:
    if not isinstance(data, bytes):
        return fail(INVALID_PARAM, "Invalid request param: the file part is required.")
    if not data:
        return fail(EMPTY_FILE, "File's size can't be 0.")
    if len(data) > limit:
        return fail(TOO_LARGE, "The file size exceed the max value.")
    return None


async def upload_image(request: Request) -> Response:
    """POST /open-apis/im/v1/images (multipart: image_type, image) → {image_key}."""
    limit = _sandbox(request).settings.image_upload_limit
    form = await _upload_form(request, "im.image.create", limit)
    if isinstance(form, Response):
        return form
    sandbox, app, fields = form
    if fields.get("image_type") not in ("message", "avatar"):
        return fail(INVALID_PARAM, "Invalid request param: image_type must be message or avatar.")
    data = fields.get("image")
    error = _size_errors(data, limit)
    if error is not None:
        return error
    assert isinstance(data, bytes)
    mime = image_mime(data)
    if mime is None:
        return fail(BAD_IMAGE, "Can't recognize the image format.")
    name = str(fields.get("image.filename") or "image")
    resource = store(sandbox, "image", data, name, mime, owner_app_id=app.app_id)
    sandbox.touch()
    await _slow_upload(sandbox, app.app_id)
    return ok_response({"image_key": resource.key})


async def upload_file(request: Request) -> Response:
    """POST /open-apis/im/v1/files (multipart: file_type, file_name, duration?, file) → {file_key}."""
    limit = _sandbox(request).settings.file_upload_limit
    form = await _upload_form(request, "im.file.create", limit)
    if isinstance(form, Response):
        return form
    sandbox, app, fields = form
    file_type = fields.get("file_type")
    if file_type not in FILE_TYPES:
        return fail(
            INVALID_PARAM,
            f"Invalid request param: file_type must be one of {', '.join(FILE_TYPES)}.",
        )
    file_name = fields.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        return fail(INVALID_PARAM, "Invalid request param: file_name is required.")
    duration: int | None = None
    raw_duration = fields.get("duration")
    if raw_duration not in (None, ""):
        if not isinstance(raw_duration, str) or not raw_duration.isdigit():
            return fail(INVALID_PARAM, "Invalid request param: duration must be an integer (ms).")
        duration = int(raw_duration)
    data = fields.get("file")
    error = _size_errors(data, limit)
    if error is not None:
        return error
    assert isinstance(data, bytes)
    resource = store(
        sandbox, "file", data, file_name, None, str(file_type), duration, owner_app_id=app.app_id
    )
    sandbox.touch()
    await _slow_upload(sandbox, app.app_id)
    return ok_response({"file_key": resource.key})


async def _slow_upload(sandbox: Sandbox, app_id: str) -> None:
    fault = take_stream_fault(sandbox, UPLOAD_API, app_id)
    if fault is not None and fault.delay_s > 0:
        await asyncio.sleep(fault.delay_s)


def content_disposition(file_name: str) -> str:
    ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    ascii_name = "".join(c if c.isprintable() else "_" for c in ascii_name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"


async def _stream(resource: Resource, truncate_after: int | None) -> AsyncIterator[bytes]:
    for piece in resource.chunks(truncate_after, CHUNK):
        yield piece
        await asyncio.sleep(0)
    if truncate_after is not None:
        # Cut the connection mid-body: the client sees fewer bytes than Content-Length.
        raise ConnectionAbortedError("download cut by an injected fault")


def feishu_case(response: Response) -> Response:
    """Header names as Feishu spells them (Content-Type, Content-Disposition, …)."""
    response.raw_headers = [(k.title(), v) for k, v in response.raw_headers]
    return response


async def get_message_resource(request: Request) -> Response:
    """GET /open-apis/im/v1/messages/:message_id/resources/:file_key?type=image|file."""
    return feishu_case(await _message_resource(request))


async def _message_resource(request: Request) -> Response:
    sandbox = _sandbox(request)
    api = "im.message.resource.get"
    app = authorize(sandbox, request, api)
    if isinstance(app, Response):
        return app
    if not app.has_scope(*DOWNLOAD_SCOPES):
        return access_denied(DOWNLOAD_SCOPES)
    kind = request.query_params.get("type", "")
    if kind not in ("image", "file"):
        return fail(INVALID_PARAM, "Invalid request param: type must be image or file.")
    message = sandbox.messages.get(request.path_params["message_id"])
    if message is None:
        return fail(INVALID_PARAM, "Invalid request param: message_id not found.")
    chat = sandbox.chats.get(message.chat_id)
    if chat is None or app.app_id not in chat.app_ids:
        return fail(APP_NOT_IN_CHAT, "App is not in the chat of the message.")
    key = request.path_params["file_key"]
    carried = dict(keys_in_content(message.msg_type, render.parse_content(message.content)))
    resource = sandbox.resources.get(key)
    if key not in carried or resource is None:
        return fail(NOT_IN_MESSAGE, "File not in msg.")
    if message.msg_type == "sticker":
        return fail(UNSUPPORTED_TYPE, "Sticker resources cannot be downloaded.")
    if carried[key] != kind:
        return fail(INVALID_PARAM, f"Invalid request param: the resource is not of type {kind}.")
    if resource.size > sandbox.settings.resource_download_limit:
        return fail(DOWNLOAD_TOO_LARGE, "The file size exceeds the download limit.")
    _record_download(sandbox, app.app_id, message.message_id, key, kind)
    fault = take_stream_fault(sandbox, api, app.app_id)
    if fault is not None and fault.delay_s > 0:
        await asyncio.sleep(fault.delay_s)
    headers = {
        "Content-Length": str(resource.size),
        "Content-Disposition": content_disposition(resource.file_name),
    }
    truncate = fault.truncate_after if fault is not None else None
    return StreamingResponse(
        _stream(resource, truncate), media_type=resource.mime_type, headers=headers
    )


def _record_download(sandbox: Sandbox, app_id: str, message_id: str, key: str, kind: str) -> None:
    """Log the download with its place relative to the ack of the event carrying the message
    (`GET /_sandbox/api/downloads`): Rudder must ack first and download after."""
    acked = sandbox.deliveries.acked_message(app_id, message_id)
    sandbox.resource_gets.append(
        {
            "app_id": app_id,
            "message_id": message_id,
            "file_key": key,
            "type": kind,
            "at": sandbox.clock.now(),
            "order": sandbox.next_order(),
            "event_acked": acked is not None,
            "ack_order": acked.ack_order if acked is not None else None,
            "acked_at": acked.acked_at if acked is not None else None,
        }
    )


def check_media(sandbox: Sandbox, app: App, msg_type: str, content: str) -> Response | None:
    """A bot's image/file/audio/media/post names keys this app uploaded, of the right kind."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return None  # check_content already answered
    if not isinstance(parsed, dict):
        return None
    required = {"image": "image_key", "file": "file_key", "audio": "file_key", "media": "file_key"}
    field = required.get(msg_type)
    if field is not None and not isinstance(parsed.get(field), str):
        return fail(SEND_INVALID, f"invalid message content: {field} is required")
    for key, kind in keys_in_content(msg_type, parsed):
        resource = sandbox.resources.get(key)
        if resource is None or resource.kind != kind:
            return fail(SEND_INVALID, f"invalid message content: unknown {kind} key {key}")
        # Stickers cannot be uploaded: a bot sends one it received (send doc), else its own.
        if msg_type != "sticker" and resource.owner_app_id != app.app_id:
            return fail(NOT_RESOURCE_OWNER, "The bot is not the owner of the resource.")
        wanted = {"audio": "opus", "media": "mp4"}.get(msg_type)
        if wanted and kind == "file" and resource.file_type != wanted:
            return fail(FILE_TYPE_MISMATCH, f"file type mismatch: {msg_type} needs {wanted}")
    return None


_M = "/open-apis/im/v1"
routes = [
    Route(_M + "/images", upload_image, methods=["POST"]),
    Route(_M + "/files", upload_file, methods=["POST"]),
    Route(
        _M + "/messages/{message_id}/resources/{file_key}", get_message_resource, methods=["GET"]
    ),
]

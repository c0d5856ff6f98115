"""Test-control API for media: store bytes as a person's upload, read any resource back.

A person's image, file, voice note, video, sticker or post with images is posted through
`POST /_sandbox/api/chats/{chat_id}/messages`; its bytes come from `POST /_sandbox/api/files`
(a key) or inline as `data_base64`.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rudder.sandbox.control import endpoint
from rudder.sandbox.core import SandboxError
from rudder.sandbox.envelope import control_error, json_response
from rudder.sandbox.resource_store import (
    FILE_TYPES,
    PLACEHOLDER_PNG,
    Resource,
    ResourceKind,
    store,
    store_stream,
)
from rudder.sandbox.resources import content_disposition

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

MEDIA_TYPES = ("image", "file", "audio", "media", "sticker")
_FILE_TYPE_OF = {"audio": "opus", "media": "mp4"}
_DEFAULT_NAMES = {
    "image": "image.png",
    "file": "file.txt",
    "audio": "voice.opus",
    "media": "video.mp4",
    "sticker": "sticker.png",
}


def _decode(body: dict[str, Any], key: str = "data_base64") -> bytes | None:
    raw = body.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SandboxError(f"{key} must be a base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise SandboxError(f"{key} is not valid base64") from None


def _duration(body: dict[str, Any]) -> int | None:
    value = body.get("duration")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SandboxError("duration must be a non-negative integer (milliseconds)")
    return value


def _store_from_body(
    sandbox: Sandbox, body: dict[str, Any], kind: ResourceKind, msg_type: str
) -> Resource:
    data = _decode(body)
    name = body.get("file_name")
    if name is not None and (not isinstance(name, str) or not name):
        raise SandboxError("file_name must be a non-empty string")
    mime = body.get("mime_type")
    if mime is not None and not isinstance(mime, str):
        raise SandboxError("mime_type must be a string")
    if data is None:
        data = PLACEHOLDER_PNG if kind == "image" else b"sandbox file\n"
    file_type = body.get("file_type") or _FILE_TYPE_OF.get(msg_type, "stream")
    if file_type not in FILE_TYPES:
        raise SandboxError("file_type must be one of " + ", ".join(FILE_TYPES))
    return store(
        sandbox,
        kind,
        data,
        name or _DEFAULT_NAMES.get(msg_type, "file"),
        mime,
        "" if kind == "image" else str(file_type),
        _duration(body),
    )


def _person_resource(sandbox: Sandbox, key: object, kind: ResourceKind) -> Resource:
    resource = sandbox.resources.get(key) if isinstance(key, str) else None
    if resource is None or resource.kind != kind:
        raise SandboxError(f"unknown {kind} key {key!r}", 404, "not_found")
    return resource


def user_content(sandbox: Sandbox, body: dict[str, Any], msg_type: str) -> dict[str, Any] | None:
    """The content of a person's media message built from keys or inline bytes; None if not media."""
    if msg_type == "post":
        keys = body.get("image_keys")
        if keys is None:
            return None
        if not isinstance(keys, list):
            raise SandboxError("image_keys must be a list of image keys")
        paragraphs: list[list[dict[str, Any]]] = []
        text = body.get("text")
        if isinstance(text, str) and text:
            paragraphs.append([{"tag": "text", "text": text, "style": []}])
        for key in keys:
            paragraphs.append(
                [{"tag": "img", "image_key": _person_resource(sandbox, key, "image").key}]
            )
        title = body.get("title")
        return {"title": title if isinstance(title, str) else "", "content": paragraphs}
    if msg_type not in MEDIA_TYPES or body.get("content") is not None:
        return None
    if msg_type == "image":
        key = body.get("image_key")
        image = (
            _person_resource(sandbox, key, "image")
            if key is not None
            else _store_from_body(sandbox, body, "image", msg_type)
        )
        return {"image_key": image.key}
    key = body.get("file_key")
    resource = (
        _person_resource(sandbox, key, "file")
        if key is not None
        else _store_from_body(sandbox, body, "file", msg_type)
    )
    if msg_type == "sticker":
        return {"file_key": resource.key}
    if msg_type == "audio":
        return {"file_key": resource.key, "duration": resource.duration or 0}
    content: dict[str, Any] = {"file_key": resource.key, "file_name": resource.file_name}
    if msg_type == "media":
        cover = body.get("image_key")
        if cover is not None:
            content["image_key"] = _person_resource(sandbox, cover, "image").key
        content["duration"] = resource.duration or 0
    return content


async def upload(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    kind = body.get("kind", "file")
    if kind not in ("image", "file"):
        raise SandboxError("kind must be image or file")
    if body.get("data_base64") is None:
        raise SandboxError("data_base64 is required")
    resource = _store_from_body(sandbox, body, "image" if kind == "image" else "file", "file")
    sandbox.touch()
    return resource.public()


async def list_resources(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    owner = request.query_params.get("app_id")
    items = [r.public() for r in sandbox.resources.values() if not owner or r.owner_app_id == owner]
    return {"items": items}


async def get_resource(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    resource = sandbox.resources.get(request.path_params["key"])
    if resource is None:
        raise SandboxError("unknown resource key", 404, "not_found")
    headers = {"Content-Disposition": content_disposition(resource.file_name)}
    headers["Content-Length"] = str(resource.size)
    return StreamingResponse(resource.chunks(), media_type=resource.mime_type, headers=headers)


async def upload_raw(request: Request) -> Response:
    """POST /files with a raw (non-JSON) body: streamed to disk; metadata in the query."""
    sandbox: Sandbox = request.app.state.sandbox
    q = request.query_params
    kind = q.get("kind", "file")
    file_type = q.get("file_type") or "stream"
    duration = q.get("duration")
    if kind not in ("image", "file") or file_type not in FILE_TYPES:
        return control_error(
            400,
            "invalid_request",
            "kind must be image or file, file_type one of " + ", ".join(FILE_TYPES),
        )
    if duration is not None and not duration.isdigit():
        return control_error(400, "invalid_request", "duration must be an integer (milliseconds)")
    meta = {
        "file_name": q.get("file_name") or _DEFAULT_NAMES["image" if kind == "image" else "file"],
        "mime_type": q.get("mime_type") or None,
        "file_type": "" if kind == "image" else file_type,
        "duration": int(duration) if duration is not None else None,
    }
    resource = await store_stream(
        sandbox, "image" if kind == "image" else "file", request.stream(), meta
    )
    sandbox.touch()
    return json_response(resource.public())


async def list_downloads(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    """Every message_resource.get served, in order, with the ack of its message's event."""
    q = request.query_params
    items = [
        d
        for d in sandbox.resource_gets
        if (not q.get("app_id") or d["app_id"] == q["app_id"])
        and (not q.get("message_id") or d["message_id"] == q["message_id"])
    ]
    return {"items": items}


_json_upload = endpoint(upload)


async def upload_any(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("application/json"):
        return await _json_upload(request)
    return await upload_raw(request)


_A = "/_sandbox/api"
routes = [
    Route(_A + "/files", upload_any, methods=["POST"]),
    Route(_A + "/resources", endpoint(list_resources), methods=["GET"]),
    Route(_A + "/resources/{key}", endpoint(get_resource), methods=["GET"]),
    Route(_A + "/downloads", endpoint(list_downloads), methods=["GET"]),
]

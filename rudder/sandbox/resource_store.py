"""Stored bytes behind image_key / file_key, and which keys a message's content names."""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

ResourceKind = Literal["image", "file"]

# The file types `POST /open-apis/im/v1/files` accepts (file.create doc).
FILE_TYPES = ("opus", "mp4", "pdf", "doc", "xls", "ppt", "stream")
FILE_TYPE_MIME = {
    "opus": "audio/opus",
    "mp4": "video/mp4",
    "pdf": "application/pdf",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
}

# The image formats image.create accepts: JPEG, PNG, WEBP, GIF, TIFF, BMP, ICO (by magic bytes).
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
)

# A 1x1 transparent PNG: what a user "sends" when a test posts an image without bytes.
PLACEHOLDER_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000005000153a3a3c50000000049454e44ae426082"
)


def image_mime(data: bytes) -> str | None:
    """The MIME type of a supported image format, or None when the bytes are not one."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    return None


@dataclass(slots=True)
class Resource:
    key: str
    kind: ResourceKind
    data: bytes
    file_name: str
    mime_type: str
    created_at: float
    file_type: str = ""  # for files: opus|mp4|pdf|doc|xls|ppt|stream
    duration: int | None = None  # ms, audio and video
    owner_app_id: str | None = None  # uploaded by this app; None = sent by a person
    sha256: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_type": self.file_type,
            "duration": self.duration,
            "size": len(self.data),
            "sha256": self.sha256,
            "owner_app_id": self.owner_app_id,
        }


@dataclass(slots=True)
class StreamFault:
    """Slow (``delay_s`` before the first byte) or cut (after ``truncate_after`` bytes) a stream."""

    api: str
    remaining: int
    delay_s: float = 0.0
    truncate_after: int | None = None
    app_id: str | None = None


def new_key(kind: ResourceKind) -> str:
    # Real keys look like img_v3_02ab_<uuid> / file_v3_00ab_<uuid>.
    prefix = "img_v3_" if kind == "image" else "file_v3_"
    return f"{prefix}{secrets.token_hex(2)}_{uuid.uuid4()}"


def store(
    sandbox: Sandbox,
    kind: ResourceKind,
    data: bytes,
    file_name: str,
    mime_type: str | None = None,
    file_type: str = "",
    duration: int | None = None,
    owner_app_id: str | None = None,
) -> Resource:
    if mime_type is None:
        mime_type = (image_mime(data) if kind == "image" else None) or (
            FILE_TYPE_MIME.get(file_type)
            or mimetypes.guess_type(file_name)[0]
            or "application/octet-stream"
        )
    resource = Resource(
        key=new_key(kind),
        kind=kind,
        data=data,
        file_name=file_name,
        mime_type=mime_type,
        created_at=sandbox.clock.now(),
        file_type=file_type,
        duration=duration,
        owner_app_id=owner_app_id,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    sandbox.resources[resource.key] = resource
    return resource


def keys_in_content(msg_type: str, content: dict[str, Any]) -> list[tuple[str, ResourceKind]]:
    """Every (key, download type) a message of ``msg_type`` carries, in order."""
    keys: list[tuple[str, ResourceKind]] = []

    def add(value: object, kind: ResourceKind) -> None:
        if isinstance(value, str) and value and (value, kind) not in keys:
            keys.append((value, kind))

    if msg_type == "image":
        add(content.get("image_key"), "image")
    elif msg_type in ("file", "audio", "sticker"):
        add(content.get("file_key"), "file")
    elif msg_type == "media":
        add(content.get("file_key"), "file")
        add(content.get("image_key"), "image")  # the video's cover
    elif msg_type == "post":
        for element in _post_elements(content):
            if element.get("tag") == "img":
                add(element.get("image_key"), "image")
            elif element.get("tag") == "media":
                add(element.get("file_key"), "file")
                add(element.get("image_key"), "image")
    return keys


def _post_elements(content: dict[str, Any]) -> list[dict[str, Any]]:
    bodies = [content] if "content" in content else list(content.values())
    elements: list[dict[str, Any]] = []
    for body in bodies:
        paragraphs = body.get("content") if isinstance(body, dict) else None
        if not isinstance(paragraphs, list):
            continue
        for paragraph in paragraphs:
            if isinstance(paragraph, list):
                elements.extend(e for e in paragraph if isinstance(e, dict))
    return elements


def take_stream_fault(sandbox: Sandbox, api: str, app_id: str) -> StreamFault | None:
    for fault in sandbox.stream_faults:
        if fault.remaining > 0 and fault.api == api and fault.app_id in (None, app_id):
            fault.remaining -= 1
            sandbox.stream_faults = [f for f in sandbox.stream_faults if f.remaining > 0]
            return fault
    return None

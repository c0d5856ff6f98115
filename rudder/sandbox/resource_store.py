"""Stored bytes behind image_key / file_key, and which keys a message's content names."""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
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
    """One stored blob. The bytes live in a file under the sandbox's blob folder, so a test
    sending many large files keeps the process's memory flat."""

    key: str
    kind: ResourceKind
    path: Path
    size: int
    sha256: str
    file_name: str
    mime_type: str
    created_at: float
    file_type: str = ""  # for files: opus|mp4|pdf|doc|xls|ppt|stream
    duration: int | None = None  # ms, audio and video
    owner_app_id: str | None = None  # uploaded by this app; None = sent by a person

    def read(self) -> bytes:
        return self.path.read_bytes()

    def chunks(self, limit: int | None = None, chunk: int = 64 * 1024) -> Iterator[bytes]:
        """The bytes in pieces, stopping after ``limit`` bytes when given."""
        left = self.size if limit is None else min(limit, self.size)
        with self.path.open("rb") as handle:
            while left > 0:
                piece = handle.read(min(chunk, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece

    def public(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_type": self.file_type,
            "duration": self.duration,
            "size": self.size,
            "sha256": self.sha256,
            "owner_app_id": self.owner_app_id,
        }


UPLOAD_API = "im.upload"  # the slow_upload fault: image.create and file.create


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


class BlobFolder:
    """Where the sandbox keeps resource bytes: a temporary folder removed on close."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    def new_path(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="rudder-sandbox-blobs-"))
        return self._dir / secrets.token_hex(16)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _guess_mime(kind: ResourceKind, head: bytes, file_name: str, file_type: str) -> str:
    return (image_mime(head) if kind == "image" else None) or (
        FILE_TYPE_MIME.get(file_type)
        or mimetypes.guess_type(file_name)[0]
        or "application/octet-stream"
    )


def _register(
    sandbox: Sandbox,
    kind: ResourceKind,
    path: Path,
    size: int,
    digest: str,
    head: bytes,
    meta: dict[str, Any],
) -> Resource:
    file_name = str(meta.get("file_name") or "file")
    file_type = str(meta.get("file_type") or "")
    resource = Resource(
        key=new_key(kind),
        kind=kind,
        path=path,
        size=size,
        sha256=digest,
        file_name=file_name,
        mime_type=meta.get("mime_type") or _guess_mime(kind, head, file_name, file_type),
        created_at=sandbox.clock.now(),
        file_type=file_type,
        duration=meta.get("duration"),
        owner_app_id=meta.get("owner_app_id"),
    )
    sandbox.resources[resource.key] = resource
    return resource


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
    path = sandbox.blobs.new_path()
    path.write_bytes(data)
    meta = {
        "file_name": file_name,
        "mime_type": mime_type,
        "file_type": file_type,
        "duration": duration,
        "owner_app_id": owner_app_id,
    }
    digest = hashlib.sha256(data).hexdigest()
    return _register(sandbox, kind, path, len(data), digest, data[:16], meta)


async def store_stream(
    sandbox: Sandbox, kind: ResourceKind, stream: AsyncIterator[bytes], meta: dict[str, Any]
) -> Resource:
    """Write a body to disk as it arrives (never whole in memory)."""
    path = sandbox.blobs.new_path()
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("wb") as handle:
        async for piece in stream:
            if len(head) < 16:
                head += piece[: 16 - len(head)]
            digest.update(piece)
            handle.write(piece)
            size += len(piece)
    return _register(sandbox, kind, path, size, digest.hexdigest(), head, meta)


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

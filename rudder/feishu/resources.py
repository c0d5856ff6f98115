"""Feishu's resource APIs: download a message's image or file, upload an image or a file.

- `GET /open-apis/im/v1/messages/:message_id/resources/:file_key?type=image|file` answers with
  the bytes (an error is JSON with a code); read as a stream, never whole in memory.
- `POST /open-apis/im/v1/images` (multipart `image_type=message`, `image`) → `image_key`;
  `POST /open-apis/im/v1/files` (multipart `file_type`, `file_name`, `duration?`, `file`) →
  `file_key`. Limits: images 10 MB, files 30 MB, never empty (reference; image.create, file.create).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from rudder.feishu import pacing
from rudder.feishu.client import BotClient, _decode
from rudder.feishu.errors import FeishuError, FeishuTransportError

IMAGE_UPLOAD_MAX = 10 * 1024 * 1024
FILE_UPLOAD_MAX = 30 * 1024 * 1024
DOWNLOAD_CHUNK = 64 * 1024


class ResourceError(Exception):
    """A download that did not deliver the whole resource; `str` is for people."""


async def download(
    bot: BotClient,
    message_id: str,
    key: str,
    download_type: str,
    timeout_s: float,
) -> AsyncIterator[bytes]:
    """The resource's bytes as they arrive. Raises FeishuError for Feishu's refusals and
    ResourceError when the body stops short of its Content-Length."""
    path = f"/open-apis/im/v1/messages/{message_id}/resources/{key}"
    for attempt in (1, 2):
        await pacing.pacer(bot.app_id).take(pacing.api_key("GET", path))
        token = await bot.tenant_token(force=attempt == 2)
        request = bot.http.build_request(
            "GET",
            bot.open.url(path),
            params={"type": download_type},
            headers={**bot.open.headers, "Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=5.0),
        )
        try:
            response = await bot.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FeishuTransportError(f"{type(exc).__name__} calling {path}", path=path) from exc
        try:
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            if response.status_code >= 400 or media_type == "application/json":
                body = await response.aread()
                try:
                    _decode(httpx.Response(response.status_code, content=body), path)
                except FeishuError as exc:
                    if exc.token_invalid and attempt == 1:
                        continue
                    raise
                raise FeishuError(-1, "unexpected JSON answer to a download", path=path)
            expected = response.headers.get("content-length")
            got = 0
            try:
                async for piece in response.aiter_bytes(DOWNLOAD_CHUNK):
                    got += len(piece)
                    yield piece
            except httpx.HTTPError as exc:
                raise ResourceError(f"the download broke off ({type(exc).__name__})") from None
            if expected is not None and expected.isdigit() and got != int(expected):
                raise ResourceError(f"the download stopped at {got} of {expected} bytes")
            return
        finally:
            await response.aclose()


async def _upload(
    bot: BotClient, path: str, data: dict[str, str], field: str, name: str, source: Path
) -> dict[str, Any]:
    for attempt in (1, 2):
        await pacing.pacer(bot.app_id).take(pacing.api_key("POST", path))
        token = await bot.tenant_token(force=attempt == 2)
        try:
            with source.open("rb") as handle:
                response = await bot.http.post(
                    bot.open.url(path),
                    data=data,
                    files={field: (name, handle, "application/octet-stream")},
                    headers={**bot.open.headers, "Authorization": f"Bearer {token}"},
                    timeout=httpx.Timeout(120.0, connect=5.0),
                )
        except httpx.HTTPError as exc:
            raise FeishuTransportError(f"{type(exc).__name__} calling {path}", path=path) from exc
        try:
            body = _decode(response, path)
        except FeishuError as exc:
            if exc.token_invalid and attempt == 1:
                continue
            raise
        return dict(body.get("data") or {})
    raise AssertionError("unreachable")


async def upload_image(bot: BotClient, source: Path, name: str) -> str:
    data = await _upload(
        bot, "/open-apis/im/v1/images", {"image_type": "message"}, "image", name, source
    )
    key = data.get("image_key")
    if not isinstance(key, str) or not key:
        raise FeishuError(-1, "no image_key in the answer", path="/open-apis/im/v1/images")
    return key


async def upload_file(
    bot: BotClient, source: Path, name: str, file_type: str, duration_ms: int | None = None
) -> str:
    fields = {"file_type": file_type, "file_name": name}
    if duration_ms is not None:
        fields["duration"] = str(duration_ms)
    data = await _upload(bot, "/open-apis/im/v1/files", fields, "file", name, source)
    key = data.get("file_key")
    if not isinstance(key, str) or not key:
        raise FeishuError(-1, "no file_key in the answer", path="/open-apis/im/v1/files")
    return key


def content_for(msg_type: str, key: str, name: str) -> dict[str, Any]:
    """The `content` of a bot's image/file/audio/media message (send side)."""
    if msg_type == "image":
        return {"image_key": key}
    return {"file_key": key, "file_name": name} if msg_type == "file" else {"file_key": key}


__all__ = [
    "FILE_UPLOAD_MAX",
    "IMAGE_UPLOAD_MAX",
    "ResourceError",
    "content_for",
    "download",
    "upload_file",
    "upload_image",
]

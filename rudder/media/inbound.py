"""A received message's attachments: downloaded after the ack, streamed to disk, capped, stored.

Called by routing (rudder/feishu/routing.py) for a bound sender's message, before the message
is posted: each resource is fetched with `GET …/messages/:id/resources/:key?type=image|file`
under a per-type cap, a per-message total and a timeout. What can't be fetched is still
recorded (status `refused` or `failed`, with the reason), the message still reaches the agent,
and the chat is told.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rudder import texts
from rudder.db.models import Attachment
from rudder.feishu.client import BotClient
from rudder.feishu.errors import FeishuError
from rudder.feishu.resources import ResourceError, download
from rudder.media import voice
from rudder.media.blobs import TooLarge, spool
from rudder.media.config import MB, MediaConfig
from rudder.media.keys import ResourceRef
from rudder.media.sniff import sniff

log = logging.getLogger(__name__)

FEISHU_DOWNLOAD_TOO_LARGE = 234037
NAME_MAX = 200
_EXT = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "audio/ogg": ".opus",
    "video/mp4": ".mp4",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass
class Fetched:
    """One resource of the message, ready to be stored as an attachment row."""

    ref: ResourceRef
    name: str
    status: str  # stored | refused | failed
    mime_type: str = "application/octet-stream"
    size: int = 0
    sha256: str | None = None
    blob_key: str | None = None
    reason: str | None = None
    # A voice message: its PCM for speech-to-text (dropped once sent), then the transcript, or
    # why there is none (rudder/media/speech.py).
    pcm: bytes | None = None
    transcript: str | None = None
    transcript_note: str | None = None

    @property
    def stored(self) -> bool:
        return self.status == "stored"


def safe_name(name: str | None, fallback: str) -> str:
    """A file name with no directory parts or control characters (never empty, never dots)."""
    cleaned = _UNSAFE.sub("_", name or "").strip().lstrip(".")
    return (cleaned or fallback)[:NAME_MAX]


def _default_name(ref: ResourceRef, mime: str, index: int) -> str:
    ext = _EXT.get(mime, ".bin" if mime != "text/plain" else ".txt")
    stem = {"image": "image", "cover": "cover", "audio": "voice", "media": "video"}.get(
        ref.kind, "file"
    )
    return f"{stem}-{index + 1}{ext}" if index else f"{stem}{ext}"


def _mb(limit: int) -> str:
    return f"{limit / MB:g} MB"


async def fetch_all(
    bot: BotClient,
    media: MediaConfig,
    message_id: str,
    refs: tuple[ResourceRef, ...],
    *,
    decode_voice: bool = False,
) -> list[Fetched]:
    """Every resource of the message, in order; never raises for a resource's own failure.
    With `decode_voice`, a voice message's audio is also decoded to PCM for speech-to-text."""
    results: list[Fetched] = []
    left = media.max_message
    for index, ref in enumerate(refs):
        fetched = await _fetch_one(bot, media, message_id, ref, index, left, decode_voice)
        if fetched.stored:
            left -= fetched.size
        results.append(fetched)
    return results


async def _fetch_one(
    bot: BotClient,
    media: MediaConfig,
    message_id: str,
    ref: ResourceRef,
    index: int,
    left: int,
    decode_voice: bool = False,
) -> Fetched:
    what = texts.MEDIA_WHAT.get(ref.kind, "file").split(":")[0]
    given = safe_name(ref.name, "") if ref.name else ""
    label = given or what
    if ref.kind == "sticker":
        return Fetched(ref, "sticker", "refused", reason=texts.MEDIA_STICKER)
    cap = media.cap_for(ref.download_type)
    limit, over_total = (cap, False) if cap <= left else (max(left, 0), True)
    too_large = (
        texts.MEDIA_MESSAGE_TOO_LARGE.format(limit=_mb(media.max_message))
        if over_total
        else texts.MEDIA_TOO_LARGE.format(limit=_mb(cap), what=what)
    )
    if limit <= 0:
        return Fetched(ref, label, "refused", reason=too_large)
    try:
        chunks = download(bot, message_id, ref.key, ref.download_type, media.fetch_timeout_s)
        # The timeout bounds the download; storing it (database chunks) is not part of it.
        async with spool(_within(chunks, media.fetch_timeout_s), media.store.spool_dir, limit) as (
            spooled
        ):
            mime = sniff(spooled.head)
            pcm, note = (
                await _voice_pcm(spooled.path, ref, mime)
                if decode_voice and ref.kind == "audio"
                else (None, None)
            )
            blob_key = await media.store.keep(spooled)
    except TooLarge:
        return Fetched(ref, label, "refused", reason=too_large)
    except TimeoutError:
        reason = texts.MEDIA_FETCH_TIMEOUT.format(seconds=f"{media.fetch_timeout_s:g}")
        return Fetched(ref, label, "failed", reason=reason)
    except FeishuError as exc:
        if exc.code == FEISHU_DOWNLOAD_TOO_LARGE:
            return Fetched(ref, label, "refused", reason=texts.MEDIA_FEISHU_TOO_LARGE)
        log.info("resource %s of %s: %s", ref.key, message_id, exc)
        detail = f"Feishu answered code {exc.code}" if exc.code != -1 else "no answer from Feishu"
        return Fetched(ref, label, "failed", reason=texts.MEDIA_FETCH_FAILED.format(detail=detail))
    except ResourceError as exc:
        return Fetched(ref, label, "failed", reason=texts.MEDIA_FETCH_FAILED.format(detail=exc))
    except OSError:
        log.exception("resource %s of %s could not be stored", ref.key, message_id)
        return Fetched(ref, label, "failed", reason=texts.MEDIA_NOT_STORED)
    name = given or _default_name(ref, mime, index)
    return Fetched(
        ref,
        name,
        "stored",
        mime_type=mime,
        size=spooled.size,
        sha256=spooled.sha256,
        blob_key=blob_key,
        pcm=pcm,
        transcript_note=note,
    )


async def _voice_pcm(path: Path, ref: ResourceRef, mime: str) -> tuple[bytes | None, str | None]:
    """The voice message's PCM, or why it can't be transcribed (decoded in a thread: CPU)."""
    if ref.duration_ms is not None and ref.duration_ms > voice.MAX_SECONDS * 1000:
        return None, texts.MEDIA_SPEECH_TOO_LONG.format(seconds=voice.MAX_SECONDS)
    if mime != "audio/ogg":
        return None, texts.MEDIA_SPEECH_NOT_OGG
    try:
        return await asyncio.to_thread(voice.to_pcm, path), None
    except voice.NotTranscribable as exc:
        return None, str(exc)


async def _within(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """`chunks`, all of them within `seconds` (TimeoutError after that)."""
    deadline = asyncio.get_running_loop().time() + seconds
    iterator = aiter(chunks)
    try:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError
            try:
                piece = await asyncio.wait_for(anext(iterator), left)
            except StopAsyncIteration:
                return
            yield piece
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def body_for(text: str, fetched: list[Fetched]) -> str:
    """The message as the agent reads it: its text, or a short label when it has none, and a
    line for each attachment it does not get."""
    parts = [text] if text else []
    if not text:
        labels = []
        for f in fetched:
            template = texts.MEDIA_WHAT.get(f.ref.kind, texts.MEDIA_WHAT["file"])
            labels.append(texts.MEDIA_ONLY_BODY.format(what=template.format(name=f.name)))
        parts.append(" ".join(labels))
    for f in fetched:
        if not f.stored and f.ref.kind != "sticker":
            parts.append(texts.MEDIA_MISSING_FOR_AGENT.format(name=f.name, reason=f.reason))
        elif f.transcript:
            parts.append(texts.MEDIA_TRANSCRIPT_FOR_AGENT.format(text=f.transcript))
        elif f.transcript_note:
            parts.append(texts.MEDIA_NOT_TRANSCRIBED_FOR_AGENT.format(reason=f.transcript_note))
    return "\n".join(p for p in parts if p)


def notice_for(fetched: list[Fetched]) -> str | None:
    """What the chat is told about attachments that did not make it (None: all did)."""
    lines = [
        texts.MEDIA_NOTICE_LINE.format(name=f.name, reason=f.reason)
        for f in fetched
        if not f.stored and f.ref.kind != "sticker"
    ]
    return texts.MEDIA_NOTICE.format(lines="\n".join(lines)) if lines else None


def summary(fetched: list[Fetched]) -> str:
    """For the inbound event's reason: how many were fetched and which were not."""
    if not fetched:
        return ""
    stored = sum(1 for f in fetched if f.stored)
    missing = [f"{f.name}: {f.reason}" for f in fetched if not f.stored]
    text = f"; {stored} of {len(fetched)} attachment(s) fetched"
    text += " (not: " + "; ".join(missing) + ")" if missing else ""
    voiced = [f for f in fetched if f.transcript or f.transcript_note]
    for f in voiced:
        text += (
            f"; {f.name} transcribed"
            if f.transcript
            else f"; {f.name} not transcribed: {f.transcript_note}"
        )
    return text


def rows_of(fetched: Sequence[Fetched]) -> list[Attachment]:
    """Unsaved rows for a received message's resources (routing fills in the message)."""
    return [
        Attachment(
            direction="in",
            kind=f.ref.kind,
            name=f.name,
            mime_type=f.mime_type,
            size=f.size,
            sha256=f.sha256,
            blob_key=f.blob_key,
            status=f.status,
            reason=f.reason,
            external_key=f.ref.key,
            duration_ms=f.ref.duration_ms,
            transcript=f.transcript,
        )
        for f in fetched
    ]

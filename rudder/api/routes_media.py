"""An attachment's bytes, behind the same authorisation as its conversation (docs/media.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_conversation
from rudder.db.models import Attachment, Run
from rudder.domain.errors import Forbidden, NotFound
from rudder.media import links
from rudder.media.sniff import INLINE_TYPES
from rudder.services import Services

router = APIRouter(prefix="/api")


def disposition(kind: str, name: str) -> str:
    ascii_name = "".join(c if c.isalnum() or c in "._- " else "_" for c in name) or "file"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@router.get("/conversations/{conversation_id}/attachments/{attachment_id}")
async def get_attachment(
    conversation_id: str,
    attachment_id: str,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> StreamingResponse:
    conv = await load_conversation(session, actor, conversation_id)
    row = await session.get(Attachment, attachment_id)
    media = services.runs.media
    # Another conversation's attachment is "not found" here, whoever asks.
    if row is None or row.conversation_id != conv.id or media is None:
        raise NotFound("attachment not found")
    return await _bytes_of(services, row)


async def _bytes_of(services: Services, row: Attachment) -> StreamingResponse:
    """The attachment's bytes, streamed from the blob store, with the headers that keep a
    browser from running or sniffing them."""
    media = services.runs.media
    assert media is not None
    if row.status != "stored" or not row.blob_key:
        raise NotFound("attachment not available: " + (row.reason or row.status))
    chunks = media.store.chunks(row.blob_key)
    try:
        first = await anext(chunks)
    except (StopAsyncIteration, FileNotFoundError):
        raise NotFound("attachment not available") from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for piece in chunks:
            yield piece

    inline = row.mime_type in INLINE_TYPES
    media_type = row.mime_type if inline else "application/octet-stream"
    headers = {
        "Content-Disposition": disposition("inline" if inline else "attachment", row.name),
        "Content-Length": str(row.size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    return StreamingResponse(body(), media_type=media_type, headers=headers)


@router.get("/runs/{run_id}/attachments/{attachment_id}", responses={403: {}, 404: {}})
async def get_run_attachment(
    run_id: str,
    attachment_id: str,
    session: SessionDep,
    services: ServicesDep,
    token: str = "",
) -> StreamingResponse:
    """A file of the message a running `http` agent answers, by the signed link it was given
    (media/links.py): no session, the token is the credential. Forged, expired, another run's or
    another attachment's tokens, and links of a finished run, are all refused the same way."""
    if not links.valid(services.box, run_id, attachment_id, token):
        raise Forbidden("this download link is not valid (forged, expired or for another file)")
    run = await session.get(Run, run_id)
    row = await session.get(Attachment, attachment_id)
    if run is None or run.finished_at is not None:
        raise Forbidden("this download link is not valid any more: its run has ended")
    if (
        row is None
        or services.runs.media is None
        or run.trigger_message_id is None
        or row.message_id != run.trigger_message_id
        or row.conversation_id != run.conversation_id
    ):
        raise NotFound("attachment not found")
    return await _bytes_of(services, row)

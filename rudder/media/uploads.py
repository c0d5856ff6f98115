"""Files a person attaches to a message in a local conversation (the web composer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from starlette.datastructures import UploadFile

from rudder import texts
from rudder.db.models import Attachment
from rudder.media.blobs import CHUNK, TooLarge, spool
from rudder.media.config import MB, MediaConfig
from rudder.media.inbound import safe_name
from rudder.media.sniff import is_image, sniff

MAX_FILES = 10


class UploadRefused(Exception):
    """`str` is for the person who uploaded."""


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while piece := await upload.read(CHUNK):
        yield piece


async def store_uploads(media: MediaConfig, uploads: Sequence[UploadFile]) -> list[Attachment]:
    """Unsaved attachment rows for the uploads (bytes already in the blob store)."""
    files = [u for u in uploads if u.filename]
    if len(files) > MAX_FILES:
        raise UploadRefused(texts.MEDIA_UPLOAD_TOO_MANY.format(count=MAX_FILES))
    rows: list[Attachment] = []
    left = media.max_message
    for upload in files:
        name = safe_name(upload.filename, "file")
        limit = min(media.max_file, left)
        try:
            async with spool(_chunks(upload), media.store.spool_dir, limit) as spooled:
                mime = sniff(spooled.head)
                if spooled.size == 0:
                    raise UploadRefused(texts.MEDIA_UPLOAD_EMPTY.format(name=name))
                blob_key = await media.store.keep(spooled)
        except (TooLarge, UploadRefused) as exc:
            for row in rows:  # nothing of a refused message is kept
                if row.blob_key:
                    await media.store.delete(row.blob_key)
            if isinstance(exc, UploadRefused):
                raise
            raise UploadRefused(
                texts.MEDIA_UPLOAD_TOO_LARGE.format(name=name, limit=f"{limit / MB:g} MB")
            ) from None
        left -= spooled.size
        rows.append(
            Attachment(
                direction="in",
                kind="image" if is_image(mime) else "file",
                name=name,
                mime_type=mime,
                size=spooled.size,
                sha256=spooled.sha256,
                blob_key=blob_key,
                status="stored",
            )
        )
    return rows

"""A small blob store for attachment bytes: files under a directory, or chunks in the database.

Every write goes through a spool file first (`spool`), streamed and hashed as it arrives, so
no attachment is ever whole in memory; `keep` then moves it into the store. Which store a
deployment uses (docs/media.md):
- SQLite (the embedded default): files under `RUDDER_HOME/media`.
- PostgreSQL: rows of `media_blob_chunks` (256 KiB each) in the database every instance and
  worker already reaches, written in the same database that holds the attachment rows.
- `RUDDER_MEDIA_DIR` set: files under that directory on either (on PostgreSQL it must be one
  directory shared by every instance, e.g. a network mount).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import BlobChunk, utcnow
from rudder.media.sniff import HEAD_BYTES

CHUNK = 256 * 1024


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Spooled:
    path: Path
    size: int
    sha256: str
    head: bytes


@contextlib.asynccontextmanager
async def spool(
    chunks: AsyncIterator[bytes], directory: Path, max_bytes: int | None = None
) -> AsyncIterator[Spooled]:
    """Write `chunks` to a temporary file (removed on exit), refusing more than `max_bytes`."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="spool-", dir=directory)
    path = Path(name)
    try:
        digest, size, head = hashlib.sha256(), 0, b""
        with os.fdopen(fd, "wb") as handle:
            async for piece in chunks:
                size += len(piece)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(max_bytes)
                if len(head) < HEAD_BYTES:
                    head += piece[: HEAD_BYTES - len(head)]
                digest.update(piece)
                handle.write(piece)
        yield Spooled(path, size, digest.hexdigest(), head)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # a download cut short closes its connection now
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def file_chunks(path: Path, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(chunk):
            yield piece


class BlobStore(Protocol):
    spool_dir: Path

    async def keep(self, spooled: Spooled) -> str:
        """Move a spooled file into the store; its key."""
        ...

    def chunks(self, key: str) -> AsyncIterator[bytes]: ...

    async def delete(self, key: str) -> None: ...

    async def keys_older_than(self, seconds: float) -> list[str]: ...


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.spool_dir = root / "spool"

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError("bad blob key")
        return self.root / key[:2] / key

    async def keep(self, spooled: Spooled) -> str:
        key = uuid.uuid4().hex
        target = self._path(key)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.link(spooled.path, target)  # the spool file is removed by its context
        except OSError:
            shutil.copyfile(spooled.path, target)
        os.chmod(target, 0o600)
        return key

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        async for piece in file_chunks(path):
            yield piece

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def keys_older_than(self, seconds: float) -> list[str]:
        """Keys of blobs written more than `seconds` ago (for the orphan sweep)."""
        return await asyncio.to_thread(self._old_keys, time.time() - seconds)

    def _old_keys(self, cutoff: float) -> list[str]:
        found: list[str] = []
        if not os.path.isdir(self.root):
            return found
        for folder in os.scandir(self.root):
            if folder.is_dir() and len(folder.name) == 2:
                found += [e.name for e in os.scandir(folder.path) if e.stat().st_mtime < cutoff]
        return found


class DatabaseBlobStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], spool_dir: Path) -> None:
        self.sessions = sessions
        self.spool_dir = spool_dir

    async def keep(self, spooled: Spooled) -> str:
        key = uuid.uuid4().hex
        seq = 0
        try:
            async for piece in file_chunks(spooled.path):
                # One chunk per transaction: memory holds one chunk, not the file.
                async with self.sessions() as session, session.begin():
                    session.add(BlobChunk(blob_key=key, seq=seq, data=piece))
                seq += 1
        except BaseException:
            await self.delete(key)
            raise
        return key

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        seq = 0
        while True:
            async with self.sessions() as session:
                data = await session.scalar(
                    select(BlobChunk.data).where(BlobChunk.blob_key == key, BlobChunk.seq == seq)
                )
            if data is None:
                if seq == 0:
                    raise FileNotFoundError(key)
                return
            yield bytes(data)
            seq += 1

    async def delete(self, key: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(delete(BlobChunk).where(BlobChunk.blob_key == key))

    async def keys_older_than(self, seconds: float) -> list[str]:
        cutoff = utcnow() - timedelta(seconds=seconds)
        async with self.sessions() as session:
            keys = await session.scalars(
                select(BlobChunk.blob_key)
                .where(BlobChunk.seq == 0, BlobChunk.created_at < cutoff)
                .limit(1000)
            )
            return list(keys)


async def copy_out(store: BlobStore, key: str, target: Path) -> None:
    """Stream a blob into a file (created owner-only)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        async for piece in store.chunks(key):
            handle.write(piece)


def iter_file(path: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(chunk):
            yield piece

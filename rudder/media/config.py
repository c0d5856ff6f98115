"""The media settings a running Rudder uses: its blob store, run directories and limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.config import Settings
from rudder.media.blobs import BlobStore, DatabaseBlobStore, FileBlobStore

MB = 1024 * 1024
_KEY = "media"


@dataclass
class MediaConfig:
    store: BlobStore
    runs_dir: Path  # each run's own directory is runs_dir/<run id>
    max_image: int
    max_file: int
    max_message: int
    fetch_timeout_s: float
    retention_days: float
    # Where an `http` agent downloads attachments too large to inline (media/links.py).
    public_url: str = "http://127.0.0.1:3100"

    def cap_for(self, download_type: str) -> int:
        return self.max_image if download_type == "image" else self.max_file


def media_config(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> MediaConfig:
    home = settings.home_dir
    store: BlobStore
    if settings.media_dir is not None:
        store = FileBlobStore(settings.media_dir.expanduser())
    elif settings.is_sqlite:
        store = FileBlobStore(home / "media")
    else:
        store = DatabaseBlobStore(sessions, home / "media-spool")
    return MediaConfig(
        store=store,
        runs_dir=home / "runs",
        max_image=int(settings.media_max_image_mb * MB),
        max_file=int(settings.media_max_file_mb * MB),
        max_message=int(settings.media_max_message_mb * MB),
        fetch_timeout_s=settings.media_fetch_timeout_s,
        retention_days=settings.media_retention_days,
        public_url=settings.effective_public_url,
    )

"""RUDDER_MEDIA_RETENTION_DAYS: attachment bytes older than that are removed, hourly.

The rows stay (name, size, sha256, status `expired`), so a conversation still says what was
sent. Blobs no attachment points at (a crash between storing and posting) go a day later. Every instance may run the sweep; removing is idempotent. Run directories a crash left
behind (no run of that id is still running) are removed at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

from sqlalchemy import select

from rudder.db.models import Run
from rudder.media.attachments import expire, remove_orphans
from rudder.services import Services

log = logging.getLogger(__name__)

EVERY_S = 3600.0


async def _loop(services: Services) -> None:
    await _clean_run_dirs(services)
    while True:
        media = services.runs.media
        if media is not None:
            try:
                removed = await expire(services.sessions, media)
                if removed:
                    log.info("media retention: removed the bytes of %d attachment(s)", removed)
                orphans = await remove_orphans(services.sessions, media)
                if orphans:
                    log.info("media: removed %d blob(s) no attachment points at", orphans)
            except Exception:
                log.exception("media retention sweep failed; the next one tries again")
        await asyncio.sleep(EVERY_S)


async def _clean_run_dirs(services: Services) -> None:
    media = services.runs.media
    if media is None or not media.runs_dir.is_dir():
        return
    names = [p.name for p in media.runs_dir.iterdir() if p.is_dir()]
    if not names:
        return
    async with services.sessions() as session:
        running = set(
            await session.scalars(
                select(Run.id).where(Run.id.in_(names), Run.status.in_(("running", "queued")))
            )
        )
    for name in names:
        if name not in running:
            shutil.rmtree(media.runs_dir / name, ignore_errors=True)


def start(services: Services) -> None:
    if services.components.media_retention is None:
        services.components.media_retention = asyncio.create_task(
            _loop(services), name="media-retention"
        )


async def stop(services: Services) -> None:
    task, services.components.media_retention = services.components.media_retention, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

"""An agent's attachment events, checked and stored (media/outbound.py), on both databases."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rudder import texts
from rudder.db.models import Attachment, utcnow
from rudder.media import attachments as attachments_module
from rudder.media import outbound as media_outbound
from rudder.media import rundir
from rudder.media.attachments import expire, remove_orphans
from rudder.media.blobs import spool
from rudder.media.config import MediaConfig
from rudder.services import Services
from tests.helpers import default_org_and_agent, wait_run
from tests.media.media_agent import PNG
from tests.media.support import stored_attachment


async def _setup(client: httpx.AsyncClient, services: Services) -> tuple[MediaConfig, Any]:
    org, agent = await default_org_and_agent(client)
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
    runs = (await client.get(f"/api/agents/{agent['id']}/runs")).json()
    run = await wait_run(client, runs[0]["id"])
    media = services.runs.media
    assert media is not None
    return media, run


async def test_inline_and_path_attachments_are_stored_and_bad_ones_refused(
    client: httpx.AsyncClient, services: Services
) -> None:
    media, run = await _setup(client, services)
    run_dir = rundir.create(media, run["id"])
    (run_dir / "chart.png").write_bytes(PNG)
    (run_dir / "empty.txt").write_bytes(b"")

    async def take(**data: Any) -> Any:
        return await media_outbound.take(
            services.sessions,
            media,
            run_id=run["id"],
            conversation_id=run["conversation_id"],
            reply_message_id=run["reply_message_id"],
            run_dir=Path(run_dir),
            data=data,
        )

    inline = await take(name="r.txt", data_base64=base64.b64encode(b"report").decode())
    assert (inline.status, inline.kind, inline.mime_type) == ("stored", "file", "text/plain")
    assert inline.sha256 == hashlib.sha256(b"report").hexdigest()
    image = await take(path="chart.png")
    assert (image.status, image.kind, image.mime_type, image.size) == (
        "stored",
        "image",
        "image/png",
        len(PNG),
    )
    bad = await take(name="x", data_base64="%%%not base64")
    empty = await take(path="empty.txt")
    nothing = await take()
    assert [(r.status, r.reason) for r in (bad, empty, nothing)] == [
        ("refused", texts.MEDIA_OUT_BAD_EVENT),
        ("refused", texts.MEDIA_OUT_EMPTY),
        ("refused", texts.MEDIA_OUT_BAD_EVENT),
    ]
    for _ in range(media_outbound.MAX_PER_RUN):
        await take(path="chart.png")
    over = await take(path="chart.png")
    assert over.reason == texts.MEDIA_OUT_TOO_MANY.format(count=media_outbound.MAX_PER_RUN)

    # The web conversation lists them on the reply, with URLs that serve the bytes.
    listed = (await client.get(f"/api/conversations/{run['conversation_id']}/messages")).json()
    reply = next(m for m in listed if m["id"] == run["reply_message_id"])
    stored = [a for a in reply["attachments"] if a["status"] == "stored"]
    assert stored[0]["name"] == "r.txt"
    body = await client.get(stored[1]["url"])
    assert body.status_code == 200 and body.content == PNG
    download = await client.get(stored[0]["url"])
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    rundir.remove(run_dir)


async def test_retention_removes_old_bytes_and_keeps_the_row(
    client: httpx.AsyncClient, services: Services
) -> None:
    media, run = await _setup(client, services)
    att = await stored_attachment(services, run["conversation_id"], run["trigger_message_id"], PNG)
    fresh = await stored_attachment(
        services, run["conversation_id"], run["trigger_message_id"], PNG
    )
    async with services.sessions() as session, session.begin():
        row = await session.get(Attachment, att)
        assert row is not None
        row.created_at = utcnow() - timedelta(days=media.retention_days + 1)
        old_key = row.blob_key
    assert await expire(services.sessions, media) == 1
    async with services.sessions() as session:
        gone, kept = await session.get(Attachment, att), await session.get(Attachment, fresh)
    assert gone is not None and (gone.status, gone.blob_key) == ("expired", None)
    assert kept is not None and kept.status == "stored"
    assert old_key is not None
    try:
        async for _ in media.store.chunks(old_key):
            raise AssertionError("the bytes are still there")
    except FileNotFoundError:
        pass
    r = await client.get(f"/api/conversations/{run['conversation_id']}/attachments/{att}")
    assert r.status_code == 404


async def test_blobs_no_attachment_points_at_are_removed(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    media, run = await _setup(client, services)
    kept = await stored_attachment(services, run["conversation_id"], run["trigger_message_id"], PNG)

    async def one() -> AsyncIterator[bytes]:
        yield b"left behind by a crash"

    async with spool(one(), media.store.spool_dir) as spooled:
        orphan = await media.store.keep(spooled)
    monkeypatch.setattr(attachments_module, "ORPHAN_AFTER_S", -5.0)  # "a day" is now
    assert await remove_orphans(services.sessions, media) == 1
    with pytest.raises(FileNotFoundError):
        async for _ in media.store.chunks(orphan):
            pass
    r = await client.get(f"/api/conversations/{run['conversation_id']}/attachments/{kept}")
    assert r.status_code == 200 and r.content == PNG

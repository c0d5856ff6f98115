"""A local chat's file uploads: stored as the message's attachments, with limits."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy import select

from rudder import texts
from rudder.db.models import Attachment
from rudder.media.uploads import MAX_FILES
from rudder.services import Services
from tests.helpers import default_org_and_agent
from tests.media.media_agent import PNG

FETCH = {"X-Requested-With": "fetch"}


async def _conversation(client: httpx.AsyncClient) -> str:
    _, agent = await default_org_and_agent(client)
    created = await client.post("/messenger/new", data={"agent_id": agent["id"]})
    assert created.status_code == 303
    return str(created.headers["location"].rsplit("/", 1)[1])


async def test_uploads_become_attachments_and_limits_hold(
    client: httpx.AsyncClient, services: Services
) -> None:
    conv = await _conversation(client)
    url = f"/messenger/{conv}/messages"
    sent = await client.post(
        url,
        data={"body": ""},
        files=[("files", ("a.png", PNG, "image/png")), ("files", ("n.txt", b"note", "text/plain"))],
        headers=FETCH,
    )
    assert sent.status_code == 204, sent.text
    async with services.sessions() as session:
        rows = list(await session.scalars(select(Attachment).order_by(Attachment.name)))
    assert [(r.name, r.kind, r.mime_type, r.sha256) for r in rows] == [
        ("a.png", "image", "image/png", hashlib.sha256(PNG).hexdigest()),
        ("n.txt", "file", "text/plain", hashlib.sha256(b"note").hexdigest()),
    ]
    listed = (await client.get(f"/api/conversations/{conv}/messages")).json()
    assert listed[0]["body"] == "[file: a.png] [file: n.txt]"
    assert [a["name"] for a in listed[0]["attachments"]] == ["a.png", "n.txt"]

    media = services.runs.media
    assert media is not None
    media.max_file = 10
    big = await client.post(
        url, data={"body": "x"}, files=[("files", ("big.bin", b"z" * 11, "x/y"))], headers=FETCH
    )
    assert big.status_code == 413
    assert big.text == texts.MEDIA_UPLOAD_TOO_LARGE.format(
        name="big.bin", limit=f"{10 / 2**20:g} MB"
    )
    empty = await client.post(
        url, data={"body": "x"}, files=[("files", ("e.txt", b"", "text/plain"))], headers=FETCH
    )
    assert empty.status_code == 413 and "empty" in empty.text
    many = [("files", (f"f{i}.txt", b"1", "text/plain")) for i in range(MAX_FILES + 1)]
    too_many = await client.post(url, data={"body": "x"}, files=many, headers=FETCH)
    assert too_many.status_code == 413
    nothing = await client.post(url, data={"body": " "}, headers=FETCH)
    assert nothing.status_code == 422
    async with services.sessions() as session:
        assert len(list(await session.scalars(select(Attachment)))) == 2  # none of the refused
    assert not any(media.store.spool_dir.glob("spool-*"))

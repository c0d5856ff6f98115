"""Attacks on media: an agent asking to send files outside its run's directory (../, absolute
paths, symlinks out), hostile file names from Feishu, and attachment URLs asked for through
someone else's conversation or by another agent's token."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Attachment, Conversation
from rudder.domain import auth
from rudder.media import rundir
from rudder.runtimes import DEFAULT_AGENT_RUNTIME as RUNTIME
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.hostile.conftest import count
from tests.media.media_agent import PNG
from tests.media.support import media_chat, stored_attachment
from tests.routing.dialogue import say


async def test_an_agent_cannot_send_files_from_outside_its_run_directory(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    trigger = await say(
        rig, chat.chat_id, chat.user_id, "send traversal, send absolute, send symlink"
    )
    await chat.routed_row()

    async def refused() -> list[Attachment] | None:
        async with rig.services.sessions() as session:
            rows = list(
                await session.scalars(select(Attachment).where(Attachment.direction == "out"))
            )
        return rows if len(rows) == 3 else None

    rows = await wait_for(refused, timeout=20)
    assert [r.status for r in rows] == ["refused"] * 3
    assert {r.reason for r in rows} == {texts.MEDIA_OUT_OUTSIDE}
    assert all(r.blob_key is None for r in rows)
    count("media: attachment paths outside the run refused", len(rows))

    # The chat hears which files were not sent; no image or file message goes out.
    async def told() -> list[dict[str, object]] | None:
        items = [m for m in await chat.bot_items() if m.get("parent_id") == trigger]
        notes = [m for m in items if "was not sent" in str(m.get("text"))]
        return items if len(notes) == 3 else None

    items = await wait_for(told, timeout=20)
    assert not [m for m in items if m["msg_type"] in ("image", "file", "audio")]
    assert (await rig.control("GET", f"/resources?app_id={chat.app['app_id']}"))["items"] == []
    async with rig.services.sessions() as session:
        logged = list(
            await session.scalars(select(ActivityLog).where(ActivityLog.action == "media.refused"))
        )
    assert len(logged) == 3


async def test_a_hostile_file_name_stays_inside_the_run_directory(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    data = b"plain text\n"
    await chat.send("file", data, file_name="../../../../tmp/evil\x07.sh")
    await chat.routed_row()
    await chat.wait_bot_text(hashlib.sha256(data).hexdigest())
    async with rig.services.sessions() as session:
        row = await session.scalar(select(Attachment).where(Attachment.direction == "in"))
    assert row is not None and "/" not in row.name and "\x07" not in row.name
    assert not row.name.startswith(".")
    count("media: hostile inbound file names neutralised")


async def test_attachment_urls_hold_only_through_their_own_conversation(rig: FeishuRig) -> None:
    org, agent = await default_org_and_agent(rig.client)
    convs = []
    for _ in range(2):
        conv = (
            await rig.client.post(
                f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
            )
        ).json()
        msg = (
            await rig.client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
        ).json()
        convs.append((conv["id"], msg["id"]))
    (conv_a, msg_a), (conv_b, _) = convs
    att = await stored_attachment(rig.services, conv_a, msg_a, PNG)

    ok = await rig.client.get(f"/api/conversations/{conv_a}/attachments/{att}")
    assert ok.status_code == 200 and ok.content == PNG
    assert ok.headers["content-type"] == "image/png"
    assert ok.headers["x-content-type-options"] == "nosniff"

    # Conversation B is readable, the attachment is A's: not found through B.
    through_b = await rig.client.get(f"/api/conversations/{conv_b}/attachments/{att}")
    assert through_b.status_code == 404 and PNG not in through_b.content

    # An agent token of another agent of the same organization reaches neither.
    other = await rig.client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Other", "runtime_type": RUNTIME[0], "runtime_config": RUNTIME[1]},
    )
    assert other.status_code == 201, other.text
    async with rig.services.sessions() as session, session.begin():
        _, token = await auth.issue_token(
            session, org_id=org["id"], name="other", agent_id=other.json()["id"]
        )
    headers = {"Authorization": f"Bearer {token}"}
    for conv in (conv_a, conv_b):
        r = await rig.client.get(f"/api/conversations/{conv}/attachments/{att}", headers=headers)
        assert r.status_code in (403, 404) and PNG not in r.content
    # Made-up ids and path tricks are not found either.
    for bad in ("..%2F..%2Fsecrets.key", "0" * 32, att + "x"):
        r = await rig.client.get(f"/api/conversations/{conv_a}/attachments/{bad}")
        assert r.status_code == 404
    count("media: foreign attachment URL requests refused", 6)
    async with rig.services.sessions() as session:
        assert await session.get(Conversation, conv_a) is not None


def test_a_path_swapped_for_a_symlink_after_the_check_is_refused(tmp_path: Path) -> None:
    """The agent may still be running when Rudder reads its file: the open file is checked."""
    run_dir = tmp_path / "run"
    (run_dir / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("secret")
    (outside / "ok.txt").write_text("secret")
    (run_dir / "ok.txt").write_text("mine")
    (run_dir / "sub" / "f.txt").write_text("mine")
    checked = rundir.resolve_outbound(run_dir, "ok.txt")
    nested = rundir.resolve_outbound(run_dir, "sub/f.txt")
    assert isinstance(checked, Path) and isinstance(nested, Path)
    # Swapped after the check: the file for a symlink, the folder for a symlink to outside.
    (run_dir / "ok.txt").unlink()
    (run_dir / "ok.txt").symlink_to(outside / "ok.txt")
    (run_dir / "sub").rename(tmp_path / "moved")
    (run_dir / "sub").symlink_to(outside)
    for path in (checked, nested):
        assert rundir.open_inside(run_dir, path) == texts.MEDIA_OUT_OUTSIDE
    count("media: paths swapped for symlinks after the check refused", 2)
    untouched = rundir.resolve_outbound(run_dir, "../outside/f.txt")
    assert untouched == texts.MEDIA_OUT_OUTSIDE
    fine = tmp_path / "run" / "fine.txt"
    fine.write_text("ok")
    handle = rundir.open_inside(run_dir, fine)
    assert not isinstance(handle, str)
    with handle:
        assert handle.read() == b"ok"

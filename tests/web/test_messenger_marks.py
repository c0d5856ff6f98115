"""Messenger's marks: unread per member (stored, so it holds across devices), failed runs, and
the shell's link to the sandbox's pages when Rudder talks to the offline sandbox."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from rudder.config import Settings
from rudder.db.models import Conversation, ConversationRead, Run, User, utcnow
from rudder.domain import conversations as convs
from rudder.services import Services
from rudder.web import reads
from rudder.web.templating import sandbox_url
from tests.helpers import wait_run
from tests.web.conftest import first_agent, insert_bound_conversation


def _entry(page: str, conv_id: str) -> str:
    """The sidebar entry of one conversation."""
    found = re.search(rf'<li><a href="/messenger/{conv_id}".*?</li>', page, re.S)
    assert found, conv_id
    return found.group(0)


async def test_unread_until_opened_and_again_on_news(
    client: httpx.AsyncClient, services: Services
) -> None:
    org_id, agent_id = await first_agent(client)
    conv_id = await insert_bound_conversation(services, org_id, agent_id)
    assert 'data-testid="unread"' in _entry((await client.get("/messenger")).text, conv_id)

    opened = await client.get(f"/messenger/{conv_id}")
    assert opened.status_code == 200
    assert 'data-testid="unread"' not in _entry(opened.text, conv_id)
    assert 'data-testid="unread"' not in _entry((await client.get("/messenger")).text, conv_id)

    # Something new arrives (e.g. from Feishu) while nobody looks: unread again.
    async with services.sessions() as session, session.begin():
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        await convs.append_message(session, conv, role="user", body="one more thing")
    assert 'data-testid="unread"' in _entry((await client.get("/messenger")).text, conv_id)

    # The open page reports messages that arrived while it was shown.
    seen = await client.post(f"/messenger/{conv_id}/seen", headers={"X-Requested-With": "fetch"})
    assert seen.status_code == 204
    assert 'data-testid="unread"' not in _entry((await client.get("/messenger")).text, conv_id)
    assert (await client.post("/messenger/nope/seen")).status_code == 404


async def test_read_marks_are_per_member(client: httpx.AsyncClient, services: Services) -> None:
    org_id, agent_id = await first_agent(client)
    conv_id = await insert_bound_conversation(services, org_id, agent_id)
    async with services.sessions() as session:
        other = User(email="grace@example.com", name="Grace")
        session.add(other)
        await session.flush()
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        await reads.mark_seen(session, other.id, conv_id)
        await reads.mark_seen(session, other.id, conv_id)  # again: updates the one row
        await session.commit()
        assert await reads.unread_ids(session, other.id, [conv]) == set()
        assert await reads.unread_ids(session, None, [conv]) == set()
        # An older mark than the last message is unread.
        await reads.mark_seen(session, other.id, conv_id, at=utcnow() - timedelta(days=1))
        assert await reads.unread_ids(session, other.id, [conv]) == {conv_id}
    # Grace having read it does not mark it read for the owner.
    assert 'data-testid="unread"' in _entry((await client.get("/messenger")).text, conv_id)


async def test_own_messages_do_not_make_a_conversation_unread(
    client: httpx.AsyncClient, services: Services
) -> None:
    _, agent_id = await first_agent(client)
    created = await client.post("/messenger/new", data={"agent_id": agent_id})
    conv_id = created.headers["location"].rsplit("/", 1)[1]
    sent = await client.post(
        f"/messenger/{conv_id}/messages", data={"body": "hi"}, headers={"X-Requested-With": "fetch"}
    )
    assert sent.status_code == 204
    mine = (await client.get(f"/api/conversations/{conv_id}/messages")).json()[0]
    async with services.sessions() as session:
        read = await session.scalar(
            select(ConversationRead).where(ConversationRead.conversation_id == conv_id)
        )
        assert read is not None
        assert read.last_seen_at >= datetime.fromisoformat(mine["created_at"]).replace(tzinfo=UTC)
    # The reply arrives later: it is news unless the open page reports it seen (conversation.js).


async def test_failed_runs_are_marked(client: httpx.AsyncClient, services: Services) -> None:
    _, agent_id = await first_agent(client)
    # A name that never resolves: every run of this agent fails, nothing is sent.
    saved = await client.post(
        f"/agents/{agent_id}/configuration",
        data={
            "runtime_type": "http",
            "runtime_config": '{"url": "http://agent.example:9/agent"}',
            "status": "active",
        },
    )
    assert saved.status_code == 303
    created = await client.post("/messenger/new", data={"agent_id": agent_id})
    conv_id = created.headers["location"].rsplit("/", 1)[1]
    sent = await client.post(
        f"/messenger/{conv_id}/messages", data={"body": "hi"}, headers={"X-Requested-With": "fetch"}
    )
    assert sent.status_code == 204
    run_id = (await client.get(f"/api/conversations/{conv_id}/messages")).json()[0]["run_id"]
    assert (await wait_run(client, run_id))["status"] == "failed"
    page = (await client.get("/messenger")).text
    assert 'data-testid="failed-run"' in _entry(page, conv_id)
    thread = (await client.get(f"/messenger/{conv_id}")).text
    assert 'data-status="failed"' in thread and 'class="err"' in thread

    # A later run that succeeds clears the mark: it tells of the latest run.
    async with services.sessions() as session, session.begin():
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        session.add(
            Run(
                org_id=conv.org_id,
                agent_id=conv.agent_id,
                conversation_id=conv_id,
                status="succeeded",
                created_at=utcnow() + timedelta(seconds=1),
            )
        )
    assert 'data-testid="failed-run"' not in _entry((await client.get("/messenger")).text, conv_id)


async def test_sandbox_link_only_with_a_loopback_sandbox(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert 'data-testid="sandbox-link"' not in (await client.get("/agents")).text
    settings.feishu_base_url = "http://127.0.0.1:3200"
    page = (await client.get("/agents")).text
    assert 'href="http://127.0.0.1:3200/_sandbox/"' in page
    assert 'data-testid="sandbox-link"' in (await client.get("/messenger")).text
    settings.feishu_base_url = "https://open.feishu.cn"
    assert 'data-testid="sandbox-link"' not in (await client.get("/agents")).text


def test_sandbox_url() -> None:
    assert sandbox_url(None) is None
    assert sandbox_url("") is None
    assert sandbox_url("http://127.0.0.1:3200/") == "http://127.0.0.1:3200/_sandbox/"
    assert sandbox_url("http://localhost:3200") == "http://localhost:3200/_sandbox/"
    assert sandbox_url("http://[::1]:3200") == "http://[::1]:3200/_sandbox/"
    assert sandbox_url("http://127.8.0.1") == "http://127.8.0.1/_sandbox/"
    assert sandbox_url("https://open.feishu.cn") is None
    assert sandbox_url("http://10.0.0.5:3200") is None
    assert sandbox_url("ftp://127.0.0.1") is None
    assert sandbox_url("http://[::1") is None

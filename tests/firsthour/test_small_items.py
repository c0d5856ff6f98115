"""The first hour's smaller items, each seen by a newcomer: slash-command failure with its reason
and Retry, Disconnect's notice, a run's page in words, the Runs tab lit on a run, Markdown in the
web conversation (and nothing of an agent's HTML), one name per person in a conversation."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from sqlalchemy import select

from rudder import texts
from rudder.db.models import Message, Run, User
from rudder.domain import conversations as convs
from rudder.markdown_html import to_html
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_run
from tests.web.conftest import e, first_agent, insert_bound_conversation

HX = {"HX-Request": "true"}


async def _one_run(client: httpx.AsyncClient, agent_id: str) -> str:
    created = await client.post("/messenger/new", data={"agent_id": agent_id})
    conv_id = created.headers["location"].rsplit("/", 1)[1]
    await client.post(
        f"/messenger/{conv_id}/messages",
        data={"body": "hello"},
        headers={"X-Requested-With": "fetch"},
    )
    messages = (await client.get(f"/api/conversations/{conv_id}/messages")).json()
    run_id = str(messages[0]["run_id"])
    await wait_run(client, run_id)
    return run_id


async def _manual(rig: FeishuRig, agent_id: str, app: dict[str, Any]) -> httpx.Response:
    return await rig.client.post(
        f"/api/agents/{agent_id}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )


async def test_slash_failure_says_why_once_and_retry_registers(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Slashless", "brand": "feishu"})
    await rig.control(
        "POST",
        "/faults",
        json={
            "kind": "fail_api",
            "api": "application.app_slash_command.create",
            "code": 99991672,
            "http_status": 400,
            "msg": "Access denied: application:application.bot.menu:write",
            "count": 5,
        },
    )
    assert (await _manual(rig, agent["id"], app)).status_code == 200
    panel = (await rig.client.get(f"/agents/{agent['id']}/integrations/panel", headers=HX)).text
    steps = e(texts.SLASH_MANUAL_STEPS.format(product="Feishu CN"))
    assert panel.count(steps) == 1  # the instructions once, not twice
    reason = re.search(r'data-testid="slash-reason">([^<]+)<', panel)
    assert reason is not None and "Access denied" in html.unescape(reason.group(1))
    assert 'data-testid="slash-retry"' in panel

    # Still failing: Retry answers with the reason again, and nothing else changes.
    again = await rig.client.post(f"/agents/{agent['id']}/integrations/slash/retry", headers=HX)
    assert again.status_code == 200 and 'data-testid="slash-reason"' in again.text
    await rig.control("DELETE", "/faults")
    fixed = await rig.client.post(f"/agents/{agent['id']}/integrations/slash/retry", headers=HX)
    assert fixed.status_code == 200 and "registered" in fixed.text
    assert 'data-testid="slash-retry"' not in fixed.text
    commands = await rig.control("GET", f"/apps/{app['app_id']}/slash_commands")
    assert {c["command"] for c in commands["items"]} == {"new", "stop"}


async def test_disconnect_says_the_app_still_exists(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Helper Bot", "brand": "feishu"})
    assert (await _manual(rig, agent["id"], app)).status_code == 200
    r = await rig.client.post(f"/agents/{agent['id']}/integrations/disconnect")
    assert r.status_code == 303
    page = await rig.client.get(r.headers["location"])
    notice = texts.WEB_DISCONNECTED.format(bot="Helper Bot", product="Feishu CN")
    assert notice in html.unescape(page.text)
    # Only right after a Disconnect, and never while connected.
    plain = await rig.client.get(f"/agents/{agent['id']}/integrations")
    assert 'data-testid="disconnected-notice"' not in plain.text


async def test_run_page_says_how_it_ended_and_lights_the_runs_tab(
    client: httpx.AsyncClient,
) -> None:
    _, agent_id = await first_agent(client)
    run_id = await _one_run(client, agent_id)
    page = await client.get(f"/agents/{agent_id}/runs/{run_id}")
    assert page.status_code == 200
    assert re.search(r'<a href="/agents/\w+/runs" aria-current="page">Runs</a>', page.text)
    assert f'data-testid="run-outcome">{e(texts.RUN_PAGE_SUCCEEDED)}<' in page.text
    # Events are one line each, the raw payload folded away beside it.
    assert 'data-testid="run-events"' in page.text and "<summary" in page.text
    assert "{&#34;" not in page.text.split('data-testid="run-events"')[1].split("<details>")[0]


async def test_a_stopped_and_a_failed_run_say_why(client: httpx.AsyncClient) -> None:
    _, agent_id = await first_agent(client)
    run_id = await _one_run(client, agent_id)
    app = client._transport.app  # type: ignore[attr-defined]
    services = app.state.services
    async with services.sessions() as session, session.begin():
        run = await session.get(Run, run_id)
        assert run is not None
        run.status, run.error = "cancelled", "The run took longer than 600 s and was stopped."
    page = (await client.get(f"/agents/{agent_id}/runs/{run_id}")).text
    assert e(texts.RUN_PAGE_STOPPED_BECAUSE.format(reason=run.error)) in page
    async with services.sessions() as session, session.begin():
        run = await session.get(Run, run_id)
        assert run is not None
        run.status, run.error = "failed", "the runtime failed: exit 3"
    page = (await client.get(f"/agents/{agent_id}/runs/{run_id}")).text
    assert e(texts.RUN_PAGE_FAILED.format(reason="the runtime failed: exit 3")) in page


def test_markdown_is_rendered_and_no_html_of_the_agent_survives() -> None:
    out = to_html(
        "**bold** and `code`\n\n- one\n- two\n\n<script>alert(1)</script>"
        '<img src=x onerror="alert(1)">\n\n[click](javascript:alert(1)) [ok](https://example.com)'
    )
    assert "<strong>bold</strong>" in out and "<code>code</code>" in out and "<li>one</li>" in out
    assert "<script" not in out and "<img" not in out and 'href="javascript:' not in out
    assert (
        '<a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">' in out
    )


async def test_web_conversation_renders_markdown_and_names_people_once(
    client: httpx.AsyncClient,
) -> None:
    org_id, agent_id = await first_agent(client)
    app = client._transport.app  # type: ignore[attr-defined]
    services = app.state.services
    conv_id = await insert_bound_conversation(services, org_id, agent_id)
    async with services.sessions() as session, session.begin():
        me = await session.scalar(select(User))
        assert me is not None
        conv = await convs.get_conversation(session, conv_id)
        reply = await convs.append_message(
            session, conv, role="assistant", body="**Done** <b>raw</b>"
        )
        reply.status = "completed"
        # The viewer's own message from Feishu (their Feishu account is bound to them).
        mine = await convs.append_message(session, conv, role="user", body="me via Feishu")
        mine.author_user_id, mine.external_sender_id = me.id, "ou_me"
        own_id = mine.id
    page = (await client.get(f"/messenger/{conv_id}")).text
    assert "<strong>Done</strong> &lt;b&gt;raw&lt;/b&gt;" in page
    node = page.split(f'data-message-id="{own_id}"')[1]
    assert re.match(r'[^>]*><span class="who">You · via Feishu</span>', node)
    # The live stream re-renders with the same words: the viewer's id and names are on the page.
    assert f'data-viewer-id="{me.id}"' in page
    async with services.sessions() as session:
        stored = await session.get(Message, reply.id)
        assert stored is not None and stored.body == "**Done** <b>raw</b>"  # stored as written

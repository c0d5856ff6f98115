"""The HTML pages through the in-process transport: they render, validate, and 404 cleanly."""

from __future__ import annotations

import httpx

from rudder import texts
from rudder.services import Services
from tests.helpers import wait_run
from tests.web.conftest import e, first_agent, insert_bound_conversation


async def test_shell_and_agent_list(client: httpx.AsyncClient) -> None:
    home = await client.get("/")
    assert home.status_code == 200 and e(texts.EXAMPLE_AGENT_LABEL) in home.text
    page = await client.get("/agents")
    assert page.status_code == 200
    for item in ("Agents", "Messenger", "Members", "Settings", 'name="org_id"'):
        assert item in page.text
    assert e(texts.EXAMPLE_AGENT_LABEL) in page.text
    assert "htmx.min.js" in page.text
    assert (await client.get("/static/htmx.min.js")).status_code == 200


async def test_agent_tabs_render(client: httpx.AsyncClient) -> None:
    _, agent_id = await first_agent(client)
    for tab, marker in [
        ("", "Runtime"),
        ("/configuration", "Runtime settings (JSON)"),
        ("/runs", texts.WEB_NO_RUNS),
        ("/integrations", "Feishu CN"),
    ]:
        page = await client.get(f"/agents/{agent_id}{tab}")
        assert page.status_code == 200, tab
        assert e(marker) in page.text, tab
    integrations = (await client.get(f"/agents/{agent_id}/integrations")).text
    assert "Lark Global" in integrations and "Connect with existing app credentials" in integrations


async def test_unknown_ids_answer_html_404(client: httpx.AsyncClient) -> None:
    _, agent_id = await first_agent(client)
    for path, text in [
        ("/agents/nope", texts.WEB_AGENT_NOT_FOUND),
        ("/agents/nope/integrations", texts.WEB_AGENT_NOT_FOUND),
        ("/agents/nope/configuration", texts.WEB_AGENT_NOT_FOUND),
        (f"/agents/{agent_id}/runs/nope", texts.WEB_RUN_NOT_FOUND),
        ("/messenger/nope", texts.WEB_CONVERSATION_NOT_FOUND),
    ]:
        page = await client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert e(text) in page.text
    assert (await client.post("/messenger/nope/fork")).status_code == 404


async def test_configuration_shows_validation_errors(client: httpx.AsyncClient) -> None:
    _, agent_id = await first_agent(client)
    url = f"/agents/{agent_id}/configuration"
    page = await client.get(url)
    assert e(texts.WEB_EXAMPLE_AGENT_HINT) in page.text  # the example agent is clearly labelled

    broken = await client.post(url, data={"runtime_type": "process", "runtime_config": "{oops"})
    assert broken.status_code == 422
    assert "Runtime settings are not valid JSON" in broken.text
    assert "{oops" in broken.text  # what was typed is kept

    listed = await client.post(url, data={"runtime_type": "process", "runtime_config": "[1]"})
    assert listed.status_code == 422 and "must be a JSON object" in listed.text

    unknown = await client.post(url, data={"runtime_type": "nope", "runtime_config": "{}"})
    assert unknown.status_code == 422 and "unknown runtime" in unknown.text

    missing = await client.post(url, data={"runtime_type": "http", "runtime_config": "{}"})
    assert missing.status_code == 422 and "errors" in missing.text

    saved = await client.post(
        url,
        data={
            "runtime_type": "http",
            "runtime_config": '{"url": "http://agent.example:9/agent"}',
            "status": "active",
        },
    )
    assert saved.status_code == 303
    after = await client.get(saved.headers["location"])
    assert e(texts.WEB_SAVED) in after.text and "agent.example:9/agent" in after.text
    assert texts.WEB_EXAMPLE_AGENT_HINT not in after.text  # no longer the example


async def test_members_list_and_add(client: httpx.AsyncClient) -> None:
    page = await client.get("/members")
    assert page.status_code == 200 and "owner" in page.text
    bad = await client.post("/members", data={"email": "nope", "name": "", "role": "king"})
    assert bad.status_code == 422
    for text in (
        texts.WEB_MEMBER_EMAIL_INVALID,
        texts.WEB_MEMBER_NAME_REQUIRED,
        texts.WEB_MEMBER_ROLE_INVALID,
    ):
        assert e(text) in bad.text
    ok = await client.post(
        "/members", data={"email": "grace@example.com", "name": "Grace", "role": "member"}
    )
    assert ok.status_code == 303
    listed = await client.get(ok.headers["location"])
    assert "grace@example.com" in listed.text and e(texts.WEB_MEMBER_ADDED) in listed.text
    again = await client.post(
        "/members", data={"email": "grace@example.com", "name": "Grace", "role": "member"}
    )
    assert again.status_code == 422 and "already a member" in again.text


async def test_settings_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/settings")
    assert page.status_code == 200
    assert "local" in page.text and "http://rudder.test" in page.text


async def test_switch_org(client: httpx.AsyncClient) -> None:
    other = (await client.post("/api/orgs", json={"name": "Second Org"})).json()
    switched = await client.post("/switch-org", data={"org_id": other["id"]})
    assert switched.status_code == 303
    page = await client.get("/agents")
    assert e(texts.WEB_NO_AGENTS) in page.text  # the new org has no agents yet
    await client.post("/switch-org", data={"org_id": "not-mine"})
    assert e(texts.WEB_NO_AGENTS) in (await client.get("/agents")).text  # ignored


async def test_messenger_local_conversation(client: httpx.AsyncClient) -> None:
    _, agent_id = await first_agent(client)
    created = await client.post("/messenger/new", data={"agent_id": agent_id})
    assert created.status_code == 303
    url = created.headers["location"]
    page = await client.get(url)
    assert page.status_code == 200 and 'id="composer"' in page.text
    assert 'data-testid="source-badge"' not in page.text

    empty = await client.post(url + "/messages", data={"body": "  "})
    assert empty.status_code == 422 and e(texts.WEB_MESSAGE_EMPTY) in empty.text
    sent = await client.post(
        url + "/messages", data={"body": "hello"}, headers={"X-Requested-With": "fetch"}
    )
    assert sent.status_code == 204
    conv_id = url.rsplit("/", 1)[1]
    messages = (await client.get(f"/api/conversations/{conv_id}/messages")).json()
    await wait_run(client, messages[0]["run_id"])
    page = await client.get(url)
    assert "hello" in page.text and page.text.count('class="msg') == 2

    runs = await client.get(f"/agents/{agent_id}/runs")
    run_id = messages[0]["run_id"]
    assert run_id[:10] in runs.text
    detail = await client.get(f"/agents/{agent_id}/runs/{run_id}")
    assert detail.status_code == 200 and "succeeded" in detail.text
    assert 'data-testid="transcript"' in detail.text


async def test_bound_conversation_is_read_only_and_forks(
    client: httpx.AsyncClient, services: Services
) -> None:
    org_id, agent_id = await first_agent(client)
    conv_id = await insert_bound_conversation(services, org_id, agent_id)
    listing = await client.get("/messenger")
    assert "Feishu · p2p" in listing.text

    page = await client.get(f"/messenger/{conv_id}")
    assert e(texts.BOUND_CONVERSATION_READ_ONLY) in page.text
    assert 'id="composer"' not in page.text and 'data-testid="fork"' in page.text
    refused = await client.post(
        f"/messenger/{conv_id}/messages", data={"body": "hi"}, headers={"X-Requested-With": "fetch"}
    )
    assert refused.status_code == 409 and refused.text == texts.BOUND_CONVERSATION_READ_ONLY

    forked = await client.post(f"/messenger/{conv_id}/fork")
    assert forked.status_code == 303
    copy = await client.get(forked.headers["location"])
    assert 'id="composer"' in copy.text and "Hi Ada!" in copy.text
    assert e(texts.WEB_FORKED_FROM) in copy.text and f'href="/messenger/{conv_id}"' in copy.text

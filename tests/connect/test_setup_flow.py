"""Connect an agent to Feishu CN or Lark Global through a short-lived setup session."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Integration, Secret, SetupSession, utcnow
from rudder.feishu.registration import BOT_EVENTS
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for


async def _start(rig: FeishuRig, region: str = "feishu") -> tuple[dict[str, Any], dict[str, Any]]:
    _, agent = await default_org_and_agent(rig.client)
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": region}
    )
    assert r.status_code == 201, r.text
    return agent, r.json()


async def _status(rig: FeishuRig, setup_id: str, wanted: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await rig.client.get(f"/api/integration-setups/{setup_id}")).json()
        return body if body["status"] == wanted else None

    result: dict[str, Any] = await wait_for(check, timeout=15)
    return result


async def test_connect_feishu_end_to_end(rig: FeishuRig) -> None:
    agent, setup = await _start(rig)
    assert setup["status"] == "pending" and setup["user_code"]
    url = urlparse(setup["verification_url"])
    query = parse_qs(url.query)
    # On the sandbox the link names the host it stands for: Feishu's open host.
    assert url.path == "/_hosts/open.feishu.cn/page/cli"
    assert query["user_code"] == [setup["user_code"]]
    assert query["name"] == [agent["name"]]  # the bot name is prefilled
    # The confirm page (what the person sees) shows the prefilled name and the requested events.
    page = await rig.sb.get(url.path + "?" + url.query)
    assert agent["name"] in page.text and BOT_EVENTS[0] in page.text

    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"user_name": "Ada"}
    )
    done = await _status(rig, setup["setup_id"], "connected")
    assert done["error"] is None
    assert done["region"] == "feishu" and done["connected_region"] == "feishu"
    assert done["outcome"] == texts.SETUP_CONNECTED.format(product="Feishu CN")
    registration = await rig.control("GET", f"/registrations/{setup['user_code']}")
    assert registration["begin_brand"] == "feishu" and set(registration["polls"]) == {"feishu"}

    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["status"] == "connected" and integration["region"] == "feishu"
    assert integration["app_id"].startswith("cli_") and integration["bot_open_id"].startswith("ou_")
    assert (
        integration["bot_name"] == agent["name"] and integration["transport"] == "long_connection"
    )
    assert integration["slash_commands"]["state"] == "registered"
    # The app holds what the preset asked for, names of people and chats included.
    granted = (await rig.control("GET", f"/apps/{integration['app_id']}"))["scopes"]
    assert {"contact:user.base:readonly", "im:chat:readonly", "im:message"} <= set(granted)
    # And the card callback: the reply card's Stop and New conversation buttons work.
    app_info = await rig.control("GET", f"/apps/{integration['app_id']}")
    assert app_info["callback_types"] == ["card.action.trigger"]
    commands = await rig.control("GET", f"/apps/{integration['app_id']}/slash_commands")
    names = {
        c["command"]
        for c in (commands.get("items", commands) if isinstance(commands, dict) else commands)
    }
    assert {"new", "stop"} <= names

    # The app secret is stored encrypted, and nowhere in the API's answers.
    app = await rig.control("GET", f"/apps/{integration['app_id']}")
    assert app["app_secret"] not in str(integration)
    async with rig.services.sessions() as session:
        row = await session.scalar(select(Integration))
        assert row is not None and row.app_secret_id
        secret = await session.get(Secret, row.app_secret_id)
        assert secret is not None and app["app_secret"].encode() not in secret.ciphertext


async def _registration(rig: FeishuRig, user_code: str) -> dict[str, Any]:
    result: dict[str, Any] = await rig.control("GET", f"/registrations/{user_code}")
    return result


async def test_connect_lark_global_begins_on_feishu_and_switches(rig: FeishuRig) -> None:
    """As the official SDKs do: begin and first polls on Feishu, the secret from Lark."""
    agent, setup = await _start(rig, "lark")
    url = urlparse(setup["verification_url"])
    # The link is on the chosen product's host, though the code was begun on Feishu's.
    assert url.path == "/_hosts/open.larksuite.com/page/cli"
    assert (await _registration(rig, setup["user_code"]))["begin_brand"] == "feishu"
    # The person opens the Lark page, signed in to their Lark tenant, and approves there.
    page = await rig.sb.get(url.path + "?" + url.query)
    assert 'value="lark" selected' in page.text
    await rig.control("POST", f"/registrations/{setup['user_code']}/approve", json={})
    done = await _status(rig, setup["setup_id"], "connected")
    assert done["region"] == "lark" and done["connected_region"] == "lark"
    assert done["outcome"] == texts.SETUP_CONNECTED.format(product="Lark Global")
    registration = await _registration(rig, setup["user_code"])
    assert registration["brand"] == "lark"
    assert registration["polls"]["feishu"] >= 1 and registration["polls"]["lark"] == 1
    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["status"] == "connected" and integration["region"] == "lark"
    async with rig.services.sessions() as session:
        row = await session.get(SetupSession, setup["setup_id"])
        assert row is not None and row.poll_host == "lark"
    panel = (
        await rig.client.get(
            f"/agents/{agent['id']}/integrations/panel", headers={"HX-Request": "true"}
        )
    ).text
    assert "on Lark Global" in panel and 'data-testid="setup-switched"' not in panel


async def test_a_lark_tenant_approving_a_feishu_setup_gets_a_lark_bot(rig: FeishuRig) -> None:
    """Chose Feishu CN, a Lark Global tenant approved: the SDKs complete it as a Lark app."""
    agent, setup = await _start(rig, "feishu")
    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"brand": "lark"}
    )
    done = await _status(rig, setup["setup_id"], "connected")
    assert done["error"] is None
    assert done["region"] == "feishu" and done["connected_region"] == "lark"
    assert done["outcome"] == texts.SETUP_ENDED_ON_OTHER.format(
        actual="Lark Global", chosen="Feishu CN"
    )
    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["status"] == "connected" and integration["region"] == "lark"
    # Its token works on the Lark open host only: the bot really is a Lark app.
    app = await rig.control("GET", f"/apps/{integration['app_id']}")
    assert app["brand"] == "lark" and integration["bot_open_id"] == app["bot_open_id"]
    async with rig.services.sessions() as session:
        logged = list(
            await session.scalars(
                select(ActivityLog).where(ActivityLog.entity_id == setup["setup_id"])
            )
        )
    by_action = {a.action: a.details for a in logged}
    assert by_action["feishu.setup_switched"] == {"region": "feishu", "poll_host": "lark"}
    assert by_action["feishu.setup_connected"] == {"region": "lark"}
    # The Integrations tab says so too.
    panel = (
        await rig.client.get(
            f"/agents/{agent['id']}/integrations/panel", headers={"HX-Request": "true"}
        )
    ).text
    assert 'data-testid="setup-switched"' in panel and "on Lark Global" in panel
    assert html.escape(done["outcome"]) in panel


async def test_a_feishu_tenant_approving_a_lark_setup_gets_a_feishu_bot(rig: FeishuRig) -> None:
    agent, setup = await _start(rig, "lark")
    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"brand": "feishu"}
    )
    done = await _status(rig, setup["setup_id"], "connected")
    assert done["connected_region"] == "feishu"
    assert done["outcome"] == texts.SETUP_ENDED_ON_OTHER.format(
        actual="Feishu CN", chosen="Lark Global"
    )
    assert set((await _registration(rig, setup["user_code"]))["polls"]) == {"feishu"}
    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["region"] == "feishu"


async def test_denied(rig: FeishuRig) -> None:
    _, setup = await _start(rig)
    await rig.control("POST", f"/registrations/{setup['user_code']}/deny")
    denied = await _status(rig, setup["setup_id"], "denied")
    assert "declined" in denied["error"]


async def test_setup_expires_and_can_start_again(rig: FeishuRig) -> None:
    agent, setup = await _start(rig)
    # Never longer than ten minutes, whatever the registration code allows.
    assert setup["expires_at"] <= (utcnow() + timedelta(minutes=10, seconds=5)).isoformat()
    # The registration code lapses on the platform (sandbox clock jumps past expires_in).
    await rig.control("POST", "/clock", json={"advance_s": 4000})
    expired = await _status(rig, setup["setup_id"], "expired")
    assert expired["error"] == texts.SETUP_EXPIRED
    again = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
    )
    assert again.status_code == 201 and again.json()["status"] == "pending"


async def test_a_new_setup_replaces_the_pending_one(rig: FeishuRig) -> None:
    agent, first = await _start(rig)
    second = (
        await rig.client.post(
            f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
        )
    ).json()
    old = (await rig.client.get(f"/api/integration-setups/{first['setup_id']}")).json()
    assert old["status"] == "failed" and old["error"] == texts.SETUP_REPLACED
    assert second["status"] == "pending"


async def test_setup_validation(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    bad = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "mars"}
    )
    assert bad.status_code == 422 and "region" in bad.json()["detail"]
    assert (await rig.client.get("/api/integration-setups/nope")).status_code == 404

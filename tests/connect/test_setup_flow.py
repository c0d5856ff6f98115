"""Connect an agent to Feishu CN or Lark Global through a short-lived setup session."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Integration, Secret, utcnow
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
    assert url.path == "/page/cli" and query["user_code"] == [setup["user_code"]]
    assert query["name"] == [agent["name"]]  # the bot name is prefilled
    # The confirm page (what the person sees) shows the prefilled name and the requested events.
    page = await rig.sb.get(url.path + "?" + url.query)
    assert agent["name"] in page.text and BOT_EVENTS[0] in page.text

    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"user_name": "Ada"}
    )
    done = await _status(rig, setup["setup_id"], "connected")
    assert done["error"] is None

    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["status"] == "connected" and integration["region"] == "feishu"
    assert integration["app_id"].startswith("cli_") and integration["bot_open_id"].startswith("ou_")
    assert (
        integration["bot_name"] == agent["name"] and integration["transport"] == "long_connection"
    )
    assert integration["slash_commands"]["state"] == "registered"
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


async def test_connect_lark_global(rig: FeishuRig) -> None:
    agent, setup = await _start(rig, "lark")
    assert "/page/cli" in setup["verification_url"]
    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"brand": "lark"}
    )
    await _status(rig, setup["setup_id"], "connected")
    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["region"] == "lark"


async def test_wrong_product_is_caught(rig: FeishuRig) -> None:
    """Chose Feishu CN, but a Lark Global tenant approved: the setup says which to pick."""
    agent, setup = await _start(rig, "feishu")
    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"brand": "lark"}
    )
    failed = await _status(rig, setup["setup_id"], "failed")
    assert failed["error"] == texts.SETUP_WRONG_PRODUCT.format(
        actual="Lark Global", chosen="Feishu CN"
    )
    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert integration["status"] == "disconnected"


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

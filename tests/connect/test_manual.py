"""Manual credentials, the wrong product, disconnect."""

from __future__ import annotations

from sqlalchemy import select

from rudder.db.models import Integration, Secret
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent


async def test_manual_connect_and_disconnect(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Helper Bot", "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "connected" and body["bot_name"] == "Helper Bot"
    assert body["bot_open_id"] == app["bot_open_id"]
    assert app["app_secret"] not in r.text

    gone = await rig.client.delete(f"/api/agents/{agent['id']}/integrations/feishu")
    assert gone.status_code == 200 and gone.json()["status"] == "disconnected"
    async with rig.services.sessions() as session:
        row = await session.scalar(select(Integration))
        assert row is not None and row.app_secret_id is None  # the secret is deleted
        assert (await session.scalar(select(Secret).where(Secret.name.like("feishu/%")))) is None
    again = await rig.client.delete(f"/api/agents/{agent['id']}/integrations/feishu")
    assert again.status_code == 200  # disconnecting twice is harmless


async def test_wrong_product_manual_is_caught(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Lark Bot", "brand": "lark"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 422
    assert "Feishu CN" in r.json()["detail"] and "Lark Global" in r.json()["detail"]
    ok = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "lark", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert ok.status_code == 200 and ok.json()["region"] == "lark"


async def test_bad_secret_and_bad_input(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "B", "brand": "feishu"})
    wrong = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": "nope"},
    )
    assert wrong.status_code == 422 and app["app_id"] in wrong.json()["detail"]
    malformed = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": "not an id", "app_secret": "x"},
    )
    assert malformed.status_code == 422 and "app_id" in malformed.json()["detail"]
    webhook_needs_token = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={
            "region": "feishu",
            "app_id": app["app_id"],
            "app_secret": app["app_secret"],
            "transport": "webhook",
        },
    )
    assert (
        webhook_needs_token.status_code == 422
        and "verification_token" in webhook_needs_token.json()["detail"]
    )
    status = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert status["status"] == "disconnected"


async def test_one_app_one_agent(rig: FeishuRig) -> None:
    org, agent = await default_org_and_agent(rig.client)
    other = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/agents",
            json={
                "name": "Second",
                "runtime_type": "http",
                "runtime_config": {"url": "http://agent.example:9/"},
            },
        )
    ).json()
    app = await rig.control("POST", "/apps", json={"name": "Shared", "brand": "feishu"})
    creds = {"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]}
    assert (
        await rig.client.post(f"/api/agents/{agent['id']}/integrations/feishu/manual", json=creds)
    ).status_code == 200
    clash = await rig.client.post(
        f"/api/agents/{other['id']}/integrations/feishu/manual", json=creds
    )
    assert clash.status_code == 409 and agent["name"] in clash.json()["detail"]

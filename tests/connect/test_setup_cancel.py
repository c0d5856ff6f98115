"""A pending setup can be cancelled or switched; an abandoned code approved anyway leaves no
silent bot; a Feishu that can't be reached is said in words; the wrong product is preselected."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Integration, SetupSession
from rudder.feishu import setup as setups
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for

HX = {"HX-Request": "true"}


async def _start(rig: FeishuRig, agent_id: str, region: str = "feishu") -> dict[str, Any]:
    r = await rig.client.post(
        f"/api/agents/{agent_id}/integrations/feishu/setup", json={"region": region}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _setup(rig: FeishuRig, setup_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await rig.client.get(f"/api/integration-setups/{setup_id}")).json()
    return body


async def _integration(rig: FeishuRig, agent_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await rig.client.get(f"/api/agents/{agent_id}/integrations/feishu")
    ).json()
    return body


async def _apps(rig: FeishuRig) -> list[dict[str, Any]]:
    found = await rig.control("GET", "/apps")
    items: list[dict[str, Any]] = found.get("items", found) if isinstance(found, dict) else found
    return items


async def test_cancel_in_the_web_panel_ends_the_setup(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    setup = await _start(rig, agent["id"])
    panel = (await rig.client.get(f"/agents/{agent['id']}/integrations/panel", headers=HX)).text
    # The pending panel offers Cancel and the other product, and links through Rudder.
    assert 'data-testid="setup-cancel"' in panel and "Use Lark Global instead" in panel
    assert f'href="http://rudder.test/connect/{setup["setup_id"]}"' in panel

    r = await rig.client.post(
        f"/agents/{agent['id']}/integrations/setup/{setup['setup_id']}/cancel", headers=HX
    )
    assert r.status_code == 200
    assert 'data-testid="setup-ended"' in r.text and 'data-status="cancelled"' in r.text
    ended = await _setup(rig, setup["setup_id"])
    assert ended["status"] == "cancelled" and ended["error"].startswith("Cancelled by")
    # The short link of a cancelled setup says so instead of sending anyone to approve it.
    link = await rig.client.get(f"/connect/{setup['setup_id']}")
    assert link.status_code == 410 and "cancelled" in link.text
    # Cancelling twice says why nothing happened.
    again = await rig.client.post(f"/api/integration-setups/{setup['setup_id']}/cancel")
    assert again.status_code == 409
    assert again.json()["detail"] == texts.SETUP_NOT_PENDING.format(status="cancelled")
    async with rig.services.sessions() as session:
        actions = set(await session.scalars(select(ActivityLog.action)))
    assert "feishu.setup_cancelled" in actions


async def test_switch_product_replaces_the_pending_setup(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    first = await _start(rig, agent["id"], "feishu")
    r = await rig.client.post(
        f"/agents/{agent['id']}/integrations/connect", data={"region": "lark"}, headers=HX
    )
    assert r.status_code == 200 and "Lark Global" in r.text
    assert (await _setup(rig, first["setup_id"]))["status"] == "failed"
    async with rig.services.sessions() as session:
        newest = await session.scalar(select(SetupSession).where(SetupSession.status == "pending"))
    assert newest is not None and newest.region == "lark"


async def test_a_cancelled_code_approved_anyway_connects_the_free_agent(rig: FeishuRig) -> None:
    """The app exists in Feishu once approved: better a working bot than a silent one."""
    _, agent = await default_org_and_agent(rig.client)
    setup = await _start(rig, agent["id"])
    r = await rig.client.post(f"/api/integration-setups/{setup['setup_id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    await rig.control("POST", f"/registrations/{setup['user_code']}/approve", json={})

    async def connected() -> dict[str, Any] | None:
        found = await _integration(rig, agent["id"])
        return found if found["status"] == "connected" else None

    integration = await wait_for(connected, timeout=15)
    registration = await rig.control("GET", f"/registrations/{setup['user_code']}")
    assert integration["app_id"] == registration["app_id"]
    done = await _setup(rig, setup["setup_id"])
    assert done["status"] == "connected"
    assert done["error"] == texts.SETUP_LATE_APPROVAL_CONNECTED.format(product="Feishu CN")
    async with rig.services.sessions() as session:
        row = await session.get(SetupSession, setup["setup_id"])
        assert row is not None and row.device_code_ciphertext is None  # the code is forgotten


async def test_a_replaced_code_approved_after_the_newer_one_is_named_to_delete(
    rig: FeishuRig,
) -> None:
    _, agent = await default_org_and_agent(rig.client)
    first = await _start(rig, agent["id"])
    second = await _start(rig, agent["id"])
    await rig.control("POST", f"/registrations/{second['user_code']}/approve", json={})

    async def status_of(setup_id: str, wanted: str) -> bool:
        return bool((await _setup(rig, setup_id))["status"] == wanted)

    await wait_for(lambda: status_of(second["setup_id"], "connected"), timeout=15)
    connected_app = (await _integration(rig, agent["id"]))["app_id"]
    # Someone approves the first (replaced) code from an old tab.
    await rig.control("POST", f"/registrations/{first['user_code']}/approve", json={})
    orphan_app = (await rig.control("GET", f"/registrations/{first['user_code']}"))["app_id"]

    async def orphan_named() -> str | None:
        found = await _setup(rig, first["setup_id"])
        return found["error"] if orphan_app in (found["error"] or "") else None

    message = await wait_for(orphan_named, timeout=15)
    assert message == texts.SETUP_ORPHAN_APP.format(product="Feishu CN", app_id=orphan_app)
    # The agent keeps the bot it has; the orphan is named on the Integrations tab.
    assert (await _integration(rig, agent["id"]))["app_id"] == connected_app
    panel = (await rig.client.get(f"/agents/{agent['id']}/integrations/panel", headers=HX)).text
    assert message in html.unescape(panel) and 'data-testid="orphan-app"' in panel
    async with rig.services.sessions() as session:
        logged = await session.scalar(
            select(ActivityLog).where(ActivityLog.action == setups.ORPHAN_ACTION)
        )
        count = len(list(await session.scalars(select(Integration))))
    assert logged is not None and logged.details["app_id"] == orphan_app
    assert count == 1


async def test_abandoned_codes_are_watched_again_after_a_restart(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    setup = await _start(rig, agent["id"])
    await rig.client.post(f"/api/integration-setups/{setup['setup_id']}/cancel")
    poller = setups.poller(rig.services)
    await poller.close()  # as if the process stopped
    poller._tasks.clear()
    await rig.control("POST", f"/registrations/{setup['user_code']}/approve", json={})
    await poller.resume()

    async def connected() -> bool:
        return bool((await _integration(rig, agent["id"]))["status"] == "connected")

    await wait_for(connected, timeout=15)


async def test_an_unreachable_feishu_is_said_in_words(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    # Nothing listens there: the name resolves, the connection is refused.
    rig.services.settings.feishu_base_url = "http://127.0.0.1:9"
    r = await rig.client.post(
        f"/agents/{agent['id']}/integrations/connect", data={"region": "feishu"}, headers=HX
    )
    assert r.status_code == 422
    expected = texts.SETUP_START_UNREACHABLE.format(product="Feishu CN")
    assert expected in html.unescape(r.text) and "rudder start --sandbox" in r.text
    assert "Errno" not in r.text and "127.0.0.1:9" not in r.text
    api = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "lark"}
    )
    assert api.status_code == 422
    assert api.json()["detail"] == texts.SETUP_START_UNREACHABLE.format(product="Lark Global")


async def test_a_lark_app_given_as_feishu_preselects_lark(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Lark Bot", "brand": "lark"})
    r = await rig.client.post(
        f"/agents/{agent['id']}/integrations/manual",
        data={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 422
    expected = texts.CREDENTIALS_ON_OTHER_PRODUCT.format(
        app_id=app["app_id"], product="Feishu CN", other="Lark Global"
    )
    assert expected in html.unescape(r.text)
    manual = r.text[r.text.index("/integrations/manual") :]
    checked = re.search(r'name="region" value="(\w+)" checked', manual)
    assert checked is not None and checked.group(1) == "lark"
    # A secret that is wrong on both products is not called the other product's.
    bad = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": "wrong"},
    )
    assert bad.status_code == 422 and "is a Lark Global app" not in bad.json()["detail"]


async def test_an_unknown_setup_cannot_be_cancelled(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    setup = await _start(rig, agent["id"])
    unknown = await rig.client.post("/api/integration-setups/nope/cancel")
    assert unknown.status_code == 404
    page = await rig.client.post(f"/agents/{agent['id']}/integrations/setup/nope/cancel")
    assert page.status_code == 404
    assert (await _setup(rig, setup["setup_id"]))["status"] == "pending"

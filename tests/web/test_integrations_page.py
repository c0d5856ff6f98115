"""The Integrations tab against the sandbox: Connect, live status, expiry, manual credentials."""

from __future__ import annotations

from rudder import texts
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.web.conftest import e, first_agent

HTMX = {"HX-Request": "true"}


async def _whole_second_polls(rig: FeishuRig) -> None:
    # The registration client reads `interval` as whole seconds, so the rig's 0.05 s becomes
    # 0 s, the sandbox answers slow_down and the wait grows by 5 s; 1 s keeps the tests quick.
    await rig.sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})


async def _panel(rig: FeishuRig, agent_id: str) -> str:
    return (await rig.client.get(f"/agents/{agent_id}/integrations/panel", headers=HTMX)).text


async def test_connect_shows_link_and_qr_then_connected(rig: FeishuRig) -> None:
    await _whole_second_polls(rig)
    _, agent_id = await first_agent(rig.client)
    missing = await rig.client.post(
        f"/agents/{agent_id}/integrations/connect", data={}, headers=HTMX
    )
    assert missing.status_code == 422 and e(texts.WEB_CHOOSE_REGION) in missing.text

    started = await rig.client.post(
        f"/agents/{agent_id}/integrations/connect", data={"region": "feishu"}, headers=HTMX
    )
    assert started.status_code == 200
    assert 'id="authorize-link"' in started.text and 'target="_blank"' in started.text
    assert "<svg" in started.text and 'hx-trigger="every 1s"' in started.text
    assert "Open Feishu CN to authorize" in started.text
    regs = await rig.control("GET", "/registrations?status=pending")
    code = regs["items"][0]["user_code"]
    assert code in started.text

    await rig.control("POST", f"/registrations/{code}/approve", json={"user_name": "Ada"})

    async def connected() -> str | None:
        text = await _panel(rig, agent_id)
        return text if 'data-status="connected"' in text else None

    panel = await wait_for(connected, timeout=15)
    assert "every 1s" not in panel  # polling stops once connected
    for item in ("Feishu CN", "Long connection", "registered", "Disconnect", "cli_"):
        assert item in panel
    assert e(texts.WEB_NO_INBOUND_EVENTS) in panel

    page = await rig.client.get(f"/agents/{agent_id}/integrations")
    assert "Connect with existing app credentials" not in page.text  # only when not connected
    gone = await rig.client.post(f"/agents/{agent_id}/integrations/disconnect")
    assert gone.status_code == 303
    assert 'data-status="disconnected"' in await _panel(rig, agent_id)


async def test_expired_setup_offers_start_again(rig: FeishuRig) -> None:
    await _whole_second_polls(rig)
    _, agent_id = await first_agent(rig.client)
    await rig.client.post(
        f"/agents/{agent_id}/integrations/connect", data={"region": "lark"}, headers=HTMX
    )
    await rig.control("POST", "/clock", json={"advance_s": 4000})

    async def expired() -> str | None:
        text = await _panel(rig, agent_id)
        return text if 'data-status="expired"' in text else None

    panel = await wait_for(expired, timeout=15)
    assert e(texts.SETUP_EXPIRED) in panel and "Start again" in panel
    assert 'value="lark" checked' in panel  # the product chosen before stays chosen


async def test_manual_form_shows_errors(rig: FeishuRig) -> None:
    await _whole_second_polls(rig)
    _, agent_id = await first_agent(rig.client)
    url = f"/agents/{agent_id}/integrations/manual"
    bad = await rig.client.post(url, data={"region": "feishu", "app_id": "nope", "app_secret": ""})
    assert bad.status_code == 422
    assert "app_id" in bad.text and "app_secret" in bad.text
    assert 'value="nope"' in bad.text  # kept for correcting
    webhook = await rig.client.post(
        url,
        data={
            "region": "feishu",
            "app_id": "cli_abc123",
            "app_secret": "s",
            "transport": "webhook",
        },
    )
    assert webhook.status_code == 422 and e(texts.WEB_WEBHOOK_NEEDS_TOKEN) in webhook.text
    unknown = await rig.client.post(
        url, data={"region": "feishu", "app_id": "cli_abc123", "app_secret": "wrong"}
    )
    assert unknown.status_code == 422 and "cli_abc123" in unknown.text

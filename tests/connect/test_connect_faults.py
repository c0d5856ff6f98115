"""Connect: already connected, restart mid-setup, hosts per region, secrets never logged."""

from __future__ import annotations

import logging

import httpx
import pytest

from rudder.feishu import registration
from rudder.feishu.client import BotClient
from rudder.feishu.regions import Region
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for


async def test_second_connect_needs_reconnect(rig: FeishuRig) -> None:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "A", "brand": "feishu"})
    creds = {"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]}
    url = f"/api/agents/{agent['id']}/integrations/feishu"
    assert (await rig.client.post(url + "/manual", json=creds)).status_code == 200
    again = await rig.client.post(url + "/setup", json={"region": "feishu"})
    assert again.status_code == 409 and "already connected" in again.json()["detail"]
    assert (await rig.client.post(url + "/manual", json=creds)).status_code == 409
    assert (
        await rig.client.post(url + "/setup", json={"region": "feishu", "reconnect": True})
    ).status_code == 201


def _capture() -> tuple[list[httpx.Request], httpx.AsyncClient]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("tenant_access_token/internal"):
            return httpx.Response(
                200, json={"code": 0, "tenant_access_token": "t-1", "expire": 7200}
            )
        if request.url.path == "/oauth/v1/app/registration":
            return httpx.Response(
                200, json={"device_code": "d", "user_code": "U", "interval": 5, "expires_in": 600}
            )
        return httpx.Response(200, json={"code": 0, "bot": {"open_id": "ou_1", "app_name": "b"}})

    return seen, httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("region", "suffix"), [(Region.FEISHU, "feishu.cn"), (Region.LARK, "larksuite.com")]
)
async def test_every_request_goes_to_its_region(region: Region, suffix: str) -> None:
    seen, http = _capture()
    async with http:
        bot = BotClient(http, region, "cli_0123456789abcdef", "s")
        await bot.bot_info()
        link = registration.verification_url(region, "U", name="N", desc="D")
    assert seen and all(r.url.host.endswith(suffix) for r in seen), [str(r.url) for r in seen]
    assert link.startswith(f"https://open.{suffix}/page/cli?")
    # Registration begins on Feishu's accounts host whichever product (as the official SDKs do).
    seen, http = _capture()
    async with http:
        await registration.begin(http)
        await registration.poll(http, region, "d")
    assert [r.url.host for r in seen] == ["accounts.feishu.cn", f"accounts.{suffix}"]
    # Through an override origin the intended host travels in a header.
    seen, http = _capture()
    async with http:
        await BotClient(
            http, region, "cli_0123456789abcdef", "s", base_url_override="http://127.0.0.1:9"
        ).bot_info()
    assert all(
        r.url.host == "127.0.0.1" and r.headers["X-Rudder-Original-Host"].endswith(suffix)
        for r in seen
    )


async def test_app_secret_is_never_logged_or_returned(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, agent = await default_org_and_agent(rig.client)
    setup = (
        await rig.client.post(
            f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
        )
    ).json()
    await rig.control("POST", f"/registrations/{setup['user_code']}/approve", json={})

    async def connected() -> bool:
        return bool(
            (await rig.client.get(f"/api/integration-setups/{setup['setup_id']}")).json()["status"]
            == "connected"
        )

    await wait_for(connected, timeout=15)
    integration = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    app = await rig.control("GET", f"/apps/{integration['app_id']}")
    secret = app["app_secret"]
    responses = [
        await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu"),
        await rig.client.get(f"/api/integration-setups/{setup['setup_id']}"),
        await rig.client.get(f"/api/orgs/{agent['org_id']}/secrets"),
        await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu/activity"),
    ]
    assert all(secret not in r.text for r in responses)
    assert secret not in caplog.text


async def test_setup_resumes_after_restart(rig: FeishuRig) -> None:
    from rudder.feishu import setup as setups
    from rudder.server import create_app

    _, agent = await default_org_and_agent(rig.client)
    setup = (
        await rig.client.post(
            f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
        )
    ).json()
    await setups.shutdown(rig.services)  # the process "dies" while the person is still deciding
    await rig.control("POST", f"/registrations/{setup['user_code']}/approve", json={})
    second = create_app(rig.services.settings)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://rudder.test") as client:

            async def connected() -> bool:
                body = (await client.get(f"/api/integration-setups/{setup['setup_id']}")).json()
                return bool(body["status"] == "connected")

            await wait_for(connected, timeout=15)


async def test_unreachable_platform_fails_the_setup_clearly(rig: FeishuRig) -> None:
    from rudder import texts

    _, agent = await default_org_and_agent(rig.client)
    setup = (
        await rig.client.post(
            f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
        )
    ).json()
    await rig.sandbox.stop()  # Feishu goes away mid-setup

    async def failed() -> dict[str, str] | None:
        body = (await rig.client.get(f"/api/integration-setups/{setup['setup_id']}")).json()
        return body if body["status"] == "failed" else None

    body = await wait_for(failed, timeout=20)
    assert body["error"].startswith(
        texts.SETUP_UNREACHABLE.split("{detail}")[0].format(product="Feishu CN")
    )
    status = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
    assert status["status"] == "disconnected" and status["id"] is None  # nothing half-saved


def _answers(*bodies: dict[str, object]) -> tuple[list[httpx.Request], httpx.AsyncClient]:
    seen: list[httpx.Request] = []
    queue = list(bodies)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = queue.pop(0)
        return httpx.Response(400 if "error" in body else 200, json=body)

    return seen, httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_poll_reads_answers_in_the_sdks_order() -> None:
    lark_info = {"open_id": "ou_1", "tenant_brand": "lark"}
    seen, http = _answers(
        # Named a Lark tenant: switch first, whatever else the answer holds (node SDK, CLI).
        {"error": "authorization_pending", "user_info": lark_info},
        {"client_id": "cli_1", "client_secret": "s", "user_info": lark_info},
        # On Feishu after no switch: a Feishu tenant's app.
        {"client_id": "cli_2", "client_secret": "t", "user_info": {"tenant_brand": "feishu"}},
        # No secret and no error: keep polling (node SDK, CLI).
        {"client_id": "cli_3"},
        # A host issuing an app of the other brand's tenant contradicts itself.
        {"client_id": "cli_4", "client_secret": "u", "user_info": {"tenant_brand": "feishu"}},
    )
    async with http:
        first = await registration.poll(http, Region.FEISHU, "d")
        second = await registration.poll(http, Region.LARK, "d", switched=True)
        third = await registration.poll(http, Region.FEISHU, "d")
        fourth = await registration.poll(http, Region.FEISHU, "d")
        fifth = await registration.poll(http, Region.LARK, "d", switched=True)
    assert first.state is registration.PollState.SWITCH_TO_LARK
    assert (second.state, second.client_secret, second.tenant_brand) == (
        registration.PollState.APPROVED,
        "s",
        "lark",
    )
    assert (third.state, third.tenant_brand) == (registration.PollState.APPROVED, "feishu")
    assert fourth.state is registration.PollState.PENDING
    assert fifth.state is registration.PollState.ERROR and "feishu tenant" in fifth.detail
    assert [r.url.host for r in seen] == [
        "accounts.feishu.cn",
        "accounts.larksuite.com",
        "accounts.feishu.cn",
        "accounts.feishu.cn",
        "accounts.larksuite.com",
    ]


async def test_a_switched_setup_resumes_on_the_lark_host(rig: FeishuRig) -> None:
    """The switch is stored: after a restart polling goes on where it was, on Lark's host."""
    from rudder.db.models import SetupSession
    from rudder.feishu import setup as setups
    from rudder.server import create_app

    _, agent = await default_org_and_agent(rig.client)
    setup = (
        await rig.client.post(
            f"/api/agents/{agent['id']}/integrations/feishu/setup", json={"region": "feishu"}
        )
    ).json()
    await setups.shutdown(rig.services)
    async with rig.services.sessions() as session, session.begin():
        row = await session.get(SetupSession, setup["setup_id"])
        assert row is not None and row.poll_host == "feishu"  # begun on Feishu's host
        row.poll_host = "lark"  # the switch was recorded just before the process died
    await rig.control(
        "POST", f"/registrations/{setup['user_code']}/approve", json={"brand": "lark"}
    )
    before = (await rig.control("GET", f"/registrations/{setup['user_code']}"))["polls"]
    second = create_app(rig.services.settings)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://rudder.test") as client:

            async def connected() -> dict[str, str] | None:
                body = (await client.get(f"/api/integration-setups/{setup['setup_id']}")).json()
                return body if body["status"] == "connected" else None

            done = await wait_for(connected, timeout=15)
    assert done["connected_region"] == "lark"
    after = (await rig.control("GET", f"/registrations/{setup['user_code']}"))["polls"]
    assert after.get("feishu", 0) == before.get("feishu", 0) and after["lark"] >= 1

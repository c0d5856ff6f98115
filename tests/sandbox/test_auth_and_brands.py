"""Tokens (rotation rule, error codes) and Feishu/Lark brand enforcement."""

from __future__ import annotations

from tests.sandbox.conftest import SandboxHarness

TOKEN = "/open-apis/auth/v3/tenant_access_token/internal"
FEISHU = {"X-Rudder-Original-Host": "open.feishu.cn"}
LARK = {"X-Rudder-Original-Host": "open.larksuite.com"}


async def test_token_is_reused_until_30_minutes_are_left_then_rotated(
    sandbox: SandboxHarness,
) -> None:
    app = await sandbox.create_app()
    creds = {"app_id": app["app_id"], "app_secret": app["app_secret"]}
    first = (await sandbox.http.post(TOKEN, json=creds)).json()
    assert first["expire"] == 7200 and first["tenant_access_token"].startswith("t-")
    await sandbox.control("POST", "/clock", json={"advance_s": 3600})
    same = (await sandbox.http.post(TOKEN, json=creds)).json()
    assert same["tenant_access_token"] == first["tenant_access_token"]
    assert 3590 <= same["expire"] <= 3600
    await sandbox.control("POST", "/clock", json={"advance_s": 2000})  # 20 min left
    rotated = (await sandbox.http.post(TOKEN, json=creds)).json()
    assert (
        rotated["tenant_access_token"] != first["tenant_access_token"] and rotated["expire"] == 7200
    )
    for token in (first["tenant_access_token"], rotated["tenant_access_token"]):  # both valid
        info = await sandbox.http.get(
            "/open-apis/bot/v3/info", headers={"Authorization": f"Bearer {token}"}
        )
        assert info.json()["code"] == 0
    await sandbox.control("POST", "/clock", json={"advance_s": 1700})  # the old one is past 2 h
    old = await sandbox.http.get(
        "/open-apis/bot/v3/info",
        headers={"Authorization": f"Bearer {first['tenant_access_token']}"},
    )
    assert old.json()["code"] == 99991663


async def test_app_access_token_carries_a_tenant_token(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    body = (
        await sandbox.http.post(
            "/open-apis/auth/v3/app_access_token/internal",
            json={"app_id": app["app_id"], "app_secret": app["app_secret"]},
        )
    ).json()
    assert body["code"] == 0 and body["app_access_token"] and body["tenant_access_token"]


async def test_token_errors(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    bad_secret = await sandbox.http.post(
        TOKEN, json={"app_id": app["app_id"], "app_secret": "nope"}
    )
    assert bad_secret.status_code == 200
    assert bad_secret.json() == {"code": 10014, "msg": "app secret invalid"}
    unknown = await sandbox.http.post(
        TOKEN, json={"app_id": "cli_0000000000000000", "app_secret": "x"}
    )
    assert unknown.json() == {"code": 10014, "msg": "app id not exists"}
    for garbage in (b"{", b"[]", b'{"app_id": 5}'):
        response = await sandbox.http.post(TOKEN, content=garbage)
        assert response.status_code < 500 and response.json()["code"] != 0


async def test_missing_invalid_and_expired_tokens(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    missing = await sandbox.http.get("/open-apis/bot/v3/info")
    assert (missing.status_code, missing.json()["code"]) == (400, 99991661)
    garbage = await sandbox.http.get(
        "/open-apis/bot/v3/info", headers={"Authorization": "Bearer t-garbage"}
    )
    assert garbage.json()["code"] == 99991663
    token = await sandbox.token(app)
    auth = {"Authorization": f"Bearer {token}"}
    info = (await sandbox.http.get("/open-apis/bot/v3/info", headers=auth)).json()
    assert info["bot"]["open_id"] == app["bot_open_id"] and "data" not in info
    assert (await sandbox.control("POST", "/tokens/expire", json={"app_id": app["app_id"]}))[
        "expired"
    ] >= 1
    expired = await sandbox.http.get("/open-apis/bot/v3/info", headers=auth)
    assert expired.json()["code"] == 99991663
    assert await sandbox.token(app) != token


async def test_a_lark_app_is_unknown_on_feishu_hosts_and_vice_versa(
    sandbox: SandboxHarness,
) -> None:
    lark_app = await sandbox.create_app(brand="lark")
    feishu_app = await sandbox.create_app(brand="feishu")
    for app, wrong, right in ((lark_app, FEISHU, LARK), (feishu_app, LARK, FEISHU)):
        creds = {"app_id": app["app_id"], "app_secret": app["app_secret"]}
        refused = (await sandbox.http.post(TOKEN, json=creds, headers=wrong)).json()
        assert refused == {"code": 10014, "msg": "app id not exists"}
        token = await sandbox.token(app, headers=right)
        auth = {"Authorization": f"Bearer {token}"}
        assert (await sandbox.http.get("/open-apis/bot/v3/info", headers={**auth, **right})).json()[
            "code"
        ] == 0
        on_wrong = await sandbox.http.get("/open-apis/bot/v3/info", headers={**auth, **wrong})
        assert on_wrong.json()["code"] == 99991663
        endpoint = await sandbox.http.post(
            "/callback/ws/endpoint",
            json={"AppID": app["app_id"], "AppSecret": app["app_secret"]},
            headers=wrong,
        )
        assert endpoint.json()["code"] != 0
        # Without the header (the SDK pointed straight at the sandbox) every brand is served.
        assert (await sandbox.http.get("/open-apis/bot/v3/info", headers=auth)).json()["code"] == 0


async def test_api_rate_limit_is_429_with_ratelimit_headers(sandbox: SandboxHarness) -> None:
    await sandbox.control("PATCH", "/settings", json={"api_per_second": 3})
    app = await sandbox.create_app()
    auth = {"Authorization": f"Bearer {await sandbox.token(app)}"}
    answers = [await sandbox.http.get("/open-apis/bot/v3/info", headers=auth) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["code"] == 99991400
    assert limited.headers["x-ogw-ratelimit-limit"] == "3"
    assert int(limited.headers["x-ogw-ratelimit-reset"]) >= 1
    assert limited.headers["content-type"] == "application/json; charset=utf-8"
    # The limit is per app: another app is unaffected.
    other = await sandbox.create_app()
    other_auth = {"Authorization": f"Bearer {await sandbox.token(other)}"}
    assert (await sandbox.http.get("/open-apis/bot/v3/info", headers=other_auth)).status_code == 200


async def test_injected_api_fault(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    auth = {"Authorization": f"Bearer {await sandbox.token(app)}"}
    await sandbox.control(
        "POST",
        "/faults",
        json={"kind": "fail_api", "api": "bot.info", "code": 99991663, "count": 2},
    )
    codes = [
        (await sandbox.http.get("/open-apis/bot/v3/info", headers=auth)).json()["code"]
        for _ in range(3)
    ]
    assert codes == [99991663, 99991663, 0]

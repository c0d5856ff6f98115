"""Cross-site requests are refused; our own pages, Bearer tokens and Feishu's webhook are not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.datastructures import Headers

from rudder.config import DeploymentMode
from rudder.security import csrf_problem
from tests.auth.conftest import BASE_URL, People, build_app, login, make_settings

EVIL = {"Origin": "https://evil.example"}


def agent(name: str) -> dict[str, object]:
    return {
        "name": name,
        "runtime_type": "http",
        "runtime_config": {"url": "http://agent.example:9/x"},
    }


async def signed_in(client: httpx.AsyncClient, email: str) -> httpx.AsyncClient:
    assert (await login(client, email)).status_code == 200
    return client


async def test_a_cross_origin_form_post_is_refused_and_a_same_origin_one_accepted(
    client: httpx.AsyncClient, people: People
) -> None:
    await signed_in(client, people.ada)
    form = {"email": "new@example.com", "name": "New", "role": "member"}
    r = await client.post("/members", data=form, headers=EVIL)
    assert r.status_code == 403
    assert r.json() == {"error": "csrf", "detail": "Origin 'https://evil.example' is not this site"}
    r = await client.post("/members", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    members = (await client.get(f"/api/orgs/{people.org_id}/members")).json()
    assert "new@example.com" not in {m["email"] for m in members}

    r = await client.post("/members", data=form, headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303
    members = (await client.get(f"/api/orgs/{people.org_id}/members")).json()
    assert "new@example.com" in {m["email"] for m in members}


async def test_json_posts_are_checked_too(client: httpx.AsyncClient, people: People) -> None:
    await signed_in(client, people.ada)
    path = f"/api/orgs/{people.org_id}/agents"
    assert (await client.post(path, json=agent("Forged"), headers=EVIL)).status_code == 403
    r = await client.post(path, json=agent("Mine"))
    assert r.status_code == 201, r.text


async def test_a_signed_in_request_without_origin_or_referer_is_refused(
    app: FastAPI, people: People
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as bare:
        # No cookie, no Origin: not a browser page, nothing ambient to abuse (here: a sign-in).
        assert (await login(bare, people.ada)).status_code == 200
        r = await bare.post(f"/api/orgs/{people.org_id}/api-tokens", json={"name": "x"})
        assert r.status_code == 403 and "Bearer" in r.json()["detail"]


async def test_the_public_url_is_accepted_behind_a_proxy(
    client: httpx.AsyncClient, people: People
) -> None:
    await signed_in(client, people.ada)
    r = await client.post(
        f"/api/orgs/{people.org_id}/api-tokens",
        json={"name": "proxied"},
        headers={"Host": "10.0.0.5:3100", "Origin": BASE_URL},
    )
    assert r.status_code == 201, r.text


async def test_bearer_requests_and_the_feishu_webhook_are_exempt(
    client: httpx.AsyncClient, people: People
) -> None:
    await signed_in(client, people.ada)
    token = (
        await client.post(f"/api/orgs/{people.org_id}/api-tokens", json={"name": "script"})
    ).json()["token"]
    r = await client.post(
        f"/api/orgs/{people.org_id}/agents",
        json=agent("Scripted"),
        headers={**EVIL, "Authorization": f"Bearer {token}", "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/integrations/feishu/no-such-integration/webhook",
        content=b"{}",
        headers={**EVIL, "Content-Type": "application/json"},
    )
    assert r.status_code != 403 and r.json().get("error") != "csrf"


@pytest.fixture
async def local_client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(db_url, tmp_path / "local", DeploymentMode.LOCAL)
    application = build_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
            yield c


async def test_local_mode_has_no_sign_in_but_still_refuses_cross_site_posts(
    local_client: httpx.AsyncClient,
) -> None:
    me = (await local_client.get("/api/auth/me")).json()
    assert me["deployment_mode"] == "local" and me["email"] == "owner@localhost"
    r = await local_client.get("/login?next=/agents")
    assert (r.status_code, r.headers["location"]) == (303, "/agents")
    r = await local_client.post("/api/auth/login", json={"email": "a@b.c", "password": "x"})
    assert r.status_code == 409
    org = (await local_client.get("/api/orgs")).json()[0]
    # Another site's page driving the local owner's browser is refused ...
    r = await local_client.post("/switch-org", data={"org_id": org["id"]}, headers=EVIL)
    assert r.status_code == 403
    # ... while scripts and tests on loopback (no Origin, no Referer) go on, cookie or not.
    assert (await local_client.post("/switch-org", data={"org_id": org["id"]})).status_code == 303
    assert "session" in local_client.cookies
    assert (await local_client.post("/switch-org", data={"org_id": org["id"]})).status_code == 303


@pytest.mark.parametrize(
    ("method", "path", "headers", "strict", "refused"),
    [
        ("GET", "/agents", {"origin": "https://evil.example"}, True, False),
        ("POST", "/x", {"host": "a.test", "origin": "http://a.test"}, True, False),
        ("POST", "/x", {"host": "a.test:80", "origin": "http://a.test"}, True, False),
        ("POST", "/x", {"host": "a.test", "origin": "http://a.test:8080"}, True, True),
        ("POST", "/x", {"host": "a.test", "origin": "https://a.test"}, True, True),
        ("POST", "/x", {"host": "a.test", "origin": "null"}, True, True),
        ("POST", "/x", {"host": "a.test", "sec-fetch-site": "same-site"}, True, True),
        ("POST", "/x", {"host": "a.test", "sec-fetch-site": "none"}, True, False),
        ("POST", "/x", {"host": "a.test", "referer": "http://a.test/p?q"}, True, False),
        ("POST", "/x", {"host": "a.test", "referer": "https://evil.test/a.test"}, False, True),
        ("POST", "/x", {"host": "a.test", "origin": ""}, False, True),
        ("POST", "/x", {"host": "a.test", "cookie": "session=abc"}, True, True),
        ("POST", "/x", {"host": "a.test", "cookie": "session=abc"}, False, False),
        ("POST", "/x", {"host": "a.test", "cookie": "mysession=abc"}, True, False),
        ("POST", "/x", {"host": "a.test"}, True, False),
        ("DELETE", "/x", {"host": "a.test", "origin": "https://public.test"}, True, False),
        ("PUT", "/x", {"host": "a.test", "origin": "https://evil.test"}, False, True),
        (
            "POST",
            "/api/integrations/feishu/abc/webhook",
            {"host": "a.test", "origin": "https://evil.test", "cookie": "session=abc"},
            True,
            False,
        ),
        (
            "POST",
            "/api/integrations/feishu/abc/webhook/extra",
            {"host": "a.test", "origin": "https://evil.test"},
            True,
            True,
        ),
    ],
)
def test_csrf_rules(
    method: str, path: str, headers: dict[str, str], strict: bool, refused: bool
) -> None:
    problem = csrf_problem(
        method, path, Headers(headers), "http", public_url="https://public.test/", strict=strict
    )
    assert (problem is not None) == refused, problem

"""Signing in and out: who gets in, what strangers see, throttling, and session rotation."""

from __future__ import annotations

import base64
import json
import time

import httpx
import itsdangerous
from fastapi import FastAPI

from rudder import texts
from rudder.security import LoginThrottle
from tests.auth.conftest import PASSWORD, SESSION_SECRET, People, login


def session_of(client: httpx.AsyncClient) -> dict[str, object]:
    raw = client.cookies["session"].encode()
    data = itsdangerous.TimestampSigner(SESSION_SECRET).unsign(raw)
    return dict(json.loads(base64.b64decode(data)))


def planted_cookie(content: dict[str, object]) -> str:
    """A validly signed cookie an attacker got into the victim's browser before sign-in."""
    data = base64.b64encode(json.dumps(content).encode())
    return itsdangerous.TimestampSigner(SESSION_SECRET).sign(data).decode()


async def test_nobody_signed_in_gets_401_from_the_api_and_the_login_page_from_pages(
    client: httpx.AsyncClient, people: People
) -> None:
    for path in ("/api/orgs", f"/api/orgs/{people.org_id}/agents", "/api/auth/me"):
        r = await client.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"] == "unauthorized"
    r = await client.get("/agents?tab=all")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/agents%3Ftab%3Dall"
    r = await client.post("/messenger/new", data={"agent_id": people.agent_id})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    # htmx would swap a followed redirect into a fragment; it is told to navigate instead.
    r = await client.get(
        f"/agents/{people.agent_id}/integrations/panel", headers={"HX-Request": "true"}
    )
    assert r.status_code == 401
    assert r.headers["hx-redirect"].startswith("/login?next=/agents/")
    page = await client.get("/login?next=/agents")
    assert page.status_code == 200
    assert 'name="password"' in page.text and 'value="/agents"' in page.text


async def test_sign_in_with_the_form_goes_back_where_the_user_was(
    client: httpx.AsyncClient, people: People
) -> None:
    r = await client.post(
        "/login", data={"email": "Ada@Example.com ", "password": PASSWORD, "next": "/members"}
    )
    assert (r.status_code, r.headers["location"]) == (303, "/members")
    page = await client.get("/members")
    assert page.status_code == 200
    assert "Ada" in page.text and 'action="/logout"' in page.text
    me = (await client.get("/api/auth/me")).json()
    assert me["email"] == people.ada and me["deployment_mode"] == "authenticated"
    assert [(o["id"], o["role"]) for o in me["orgs"]] == [(people.org_id, "owner")]
    # Already signed in: /login sends the user on; an outside `next` is not followed.
    r = await client.get("/login?next=//evil.example/x")
    assert (r.status_code, r.headers["location"]) == (303, "/")

    r = await client.post("/logout")
    assert (r.status_code, r.headers["location"]) == (303, "/login?signed_out=1")
    assert (await client.get("/members")).status_code == 303
    assert texts.AUTH_SIGNED_OUT in (await client.get("/login?signed_out=1")).text


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, people: People
) -> None:
    wrong = await login(client, people.ada, "not the password")
    unknown = await login(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": "unauthorized",
            "detail": texts.AUTH_LOGIN_FAILED,
        }
    )
    form_wrong = await client.post("/login", data={"email": people.ada, "password": "nope"})
    form_unknown = await client.post("/login", data={"email": "x@example.com", "password": "nope"})
    assert form_wrong.status_code == form_unknown.status_code == 401
    assert (
        texts.AUTH_LOGIN_FAILED in form_wrong.text and texts.AUTH_LOGIN_FAILED in form_unknown.text
    )
    assert "session" not in client.cookies


async def test_unknown_email_takes_about_as_long_as_a_wrong_password(
    client: httpx.AsyncClient, people: People
) -> None:
    async def fastest(email: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            await login(client, email, "not the password")
            times.append(time.perf_counter() - start)
        return min(times)

    await login(client, "warm@example.com", "x")  # the dummy hash is made on first use
    wrong, unknown = await fastest(people.ada), await fastest("nobody@example.com")
    # Both pay for one argon2 verification; without it an unknown email answers ~100x faster.
    assert unknown > wrong * 0.3, (unknown, wrong)


async def test_failed_sign_ins_are_throttled_per_email_even_for_the_right_password(
    client: httpx.AsyncClient, people: People
) -> None:
    for _ in range(5):
        assert (await login(client, people.max, "guess")).status_code == 401
    blocked = await login(client, people.max)  # the right password, too late
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_requests"
    assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60
    form = await client.post("/login", data={"email": people.max, "password": PASSWORD})
    assert form.status_code == 429 and "retry-after" in form.headers
    # Another account from the same address is not locked by Max's failures.
    assert (await login(client, people.ada)).status_code == 200


async def test_failed_sign_ins_are_throttled_per_client_address(
    client: httpx.AsyncClient, people: People
) -> None:
    for n in range(20):
        await login(client, f"user{n}@example.com", "guess")
    r = await login(client, people.ada)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_the_throttle_window_slides() -> None:
    now = [1000.0]
    throttle = LoginThrottle(limit=2, window_s=60, clock=lambda: now[0])
    throttle.failed(["k"])
    now[0] += 30
    throttle.failed(["k"])
    assert throttle.retry_after(["k"]) == 30
    now[0] += 31  # the first failure left the window
    assert throttle.retry_after(["k"]) is None
    throttle.failed(["k"])
    assert throttle.retry_after(["k"]) == 29
    throttle.succeeded("k")
    assert throttle.retry_after(["k"]) is None


async def test_sign_in_rotates_the_session_and_sign_out_ends_it(
    client: httpx.AsyncClient, people: People, app: FastAPI
) -> None:
    planted = planted_cookie({"sid": "known-to-the-attacker", "user_id": "x", "org_id": "x"})
    client.cookies.set("session", planted, domain="rudder.test")
    assert (await client.get("/api/auth/me")).status_code == 401

    assert (await login(client, people.ada)).status_code == 200
    signed_in = client.cookies["session"]
    assert signed_in != planted
    content = session_of(client)
    assert content["sid"] != "known-to-the-attacker" and "org_id" not in content
    assert (await client.get("/api/auth/me")).status_code == 200

    # The attacker's planted cookie is still worth nothing.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rudder.test") as attacker:
        attacker.cookies.set("session", planted, domain="rudder.test")
        assert (await attacker.get("/api/auth/me")).status_code == 401

    # Signing in again issues yet another session and ends the previous one.
    assert (await login(client, people.ada)).status_code == 200
    assert client.cookies["session"] != signed_in

    current = client.cookies["session"]
    assert (await client.post("/api/auth/logout")).status_code == 204
    client.cookies.set("session", current, domain="rudder.test")  # a copy kept from before
    assert (await client.get("/api/auth/me")).status_code == 401
    client.cookies.set("session", signed_in, domain="rudder.test")
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_the_session_cookie_is_httponly_and_samesite_lax(
    client: httpx.AsyncClient, people: People
) -> None:
    r = await login(client, people.ada)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_a_new_password_ends_existing_sessions(
    client: httpx.AsyncClient, people: People, app: FastAPI
) -> None:
    from sqlalchemy import select

    from rudder.db.models import User
    from rudder.domain import auth

    assert (await login(client, people.ada)).status_code == 200
    async with app.state.services.sessions() as session, session.begin():
        user = await session.scalar(select(User).where(User.email == people.ada))
        user.password_hash = auth.hash_password("a brand new password")
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_another_organizations_member_gets_404(
    client: httpx.AsyncClient, people: People
) -> None:
    assert (await login(client, people.bob)).status_code == 200
    for path in (
        f"/api/orgs/{people.org_id}",
        f"/api/orgs/{people.org_id}/agents",
        f"/api/orgs/{people.org_id}/members",
        f"/api/orgs/{people.org_id}/api-tokens",
        f"/api/agents/{people.agent_id}",
    ):
        assert (await client.get(path)).status_code == 404, path
    r = await client.post(f"/api/orgs/{people.org_id}/api-tokens", json={"name": "x"})
    assert r.status_code == 404
    page = await client.get(f"/agents/{people.agent_id}")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert (await client.get(f"/api/agents/{people.other_agent_id}")).status_code == 200

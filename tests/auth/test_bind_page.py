"""The bind page in authenticated mode: signed out, a member of another organization, a
cross-site post, and a member who types the code into the plain form."""

from __future__ import annotations

import html

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from rudder import texts
from rudder.db.models import FeishuUserBinding, Integration, User
from rudder.feishu import bindings
from rudder.services import Services
from tests.auth.conftest import People, login


async def _prompt(app: FastAPI, people: People) -> bindings.Issued:
    services: Services = app.state.services
    async with services.sessions() as session, session.begin():
        integration = Integration(
            org_id=people.org_id, agent_id=people.agent_id, region="lark", bot_name="Helper"
        )
        session.add(integration)
        await session.flush()
        return await bindings.issue_code(session, integration, "ou_ada", None, "Ada Feishu")


async def test_the_bind_page_in_authenticated_mode(
    app: FastAPI, client: httpx.AsyncClient, people: People
) -> None:
    prompt = await _prompt(app, people)
    url = f"/bind/feishu/{prompt.link}"

    # Signed out: what the link is for, and where to sign in; no form, and posting binds no one.
    page = await client.get(url)
    assert page.status_code == 200
    assert f'href="/login?next=/bind/feishu/{prompt.link}"' in page.text
    assert 'name="code"' not in page.text
    assert "Ada Feishu" in page.text and "Lark" in page.text
    posted = await client.post(url, data={"code": prompt.confirmation})
    assert posted.status_code == 200 and 'href="/login?next=' in posted.text

    # A member of another organization, even with the code.
    assert (await login(client, people.bob)).status_code == 200
    other = await client.post(url, data={"code": prompt.confirmation})
    assert other.status_code == 403 and texts.FEISHU_BINDING_NOT_MEMBER in other.text

    # Max, a member: a post from another site is refused before anything is looked at.
    assert (await login(client, people.max)).status_code == 200
    forged = await client.post(
        url, data={"code": prompt.confirmation}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403 and forged.json()["error"] == "csrf"
    form = await client.get(url)
    assert 'name="code"' in form.text and form.headers["x-frame-options"] == "DENY"
    empty = await client.post(url, data={"code": ""})
    assert empty.status_code == 422
    assert texts.FEISHU_BINDING_CODE_MISSING.format(product="Lark") in html.unescape(empty.text)
    done = await client.post(url, data={"code": prompt.confirmation})
    assert done.status_code == 200, done.text
    assert texts.FEISHU_BINDING_DONE.format(product="Lark", name="Max") in html.unescape(done.text)

    services: Services = app.state.services
    async with services.sessions() as session:
        bound = await session.scalar(
            select(User.email)
            .join(FeishuUserBinding, FeishuUserBinding.user_id == User.id)
            .where(FeishuUserBinding.open_id == "ou_ada")
        )
    assert bound == people.max

"""One organization never sees another's: every /api route with an id in its path, called with
a member token (and an agent token) of a second organization, answers 404 with nothing of the
first organization in the body. Binding codes are single use, expire, and stay in their org.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from rudder import texts
from rudder.db.models import BindingCode, Integration, utcnow
from rudder.domain import auth, orgs
from rudder.feishu import bindings
from rudder.runtimes import DEFAULT_AGENT_RUNTIME as RUNTIME
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_run
from tests.hostile.conftest import count
from tests.media.media_agent import PNG
from tests.media.support import stored_attachment

# Authenticated by Feishu's signature, not by organization (tests/hostile/test_webhook_forgery).
NOT_ORG_SCOPED = {"/api/integrations/feishu/{integration_id}/webhook"}
# The code is the credential here, whoever holds it; tested on its own below.
CONFIRM = "/api/feishu-bindings/{code}/confirm"
# A signed download link is its own credential (403, the same text, for any other caller):
# tested in test_media_link_attacks.py.
SIGNED_LINK = "/api/runs/{run_id}/attachments/{attachment_id}"
# Live streams never end; their snapshot is the messages list, which the walk reads.
STREAMS = {"/api/conversations/{conversation_id}/events"}


@dataclass
class World:
    ids: dict[str, str]  # org A's ids, by path parameter name
    secrets: list[str]  # org A's secret values: must never appear anywhere
    member_b: str  # bearer token of a member of org B
    agent_b: str  # bearer token of an agent of org B
    user_b: str
    integration: Integration


async def _world(rig: FeishuRig) -> World:
    org, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Iso", "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={
            "region": "feishu",
            "app_id": app["app_id"],
            "app_secret": app["app_secret"],
            "transport": "webhook",
            "encrypt_key": app["encrypt_key"],
            "verification_token": app["verification_token"],
        },
    )
    assert r.status_code == 200, r.text
    other = (await rig.client.get(f"/api/orgs/{org['id']}/agents")).json()
    second = await rig.client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Second", "runtime_type": RUNTIME[0], "runtime_config": RUNTIME[1]},
    )
    assert second.status_code == 201, second.text
    setup = await rig.client.post(
        f"/api/agents/{second.json()['id']}/integrations/feishu/setup", json={"region": "feishu"}
    )
    assert setup.status_code == 201, setup.text
    conv = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
        )
    ).json()
    msg = (
        await rig.client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
    ).json()
    runs = (await rig.client.get(f"/api/agents/{agent['id']}/runs")).json()
    await wait_run(rig.client, runs[0]["id"])
    attachment_id = await stored_attachment(rig.services, conv["id"], msg["id"], PNG)
    owner = (await rig.client.get(f"/api/orgs/{org['id']}/members")).json()[0]
    binding = await rig.client.post(
        f"/api/orgs/{org['id']}/feishu-user-bindings",
        json={"integration_id": r.json()["id"], "open_id": "ou_owner", "user_id": owner["user_id"]},
    )
    assert binding.status_code == 200, binding.text
    skill = await rig.client.post(
        f"/api/orgs/{org['id']}/skills", json={"name": "org-a-skill", "description": "A's"}
    )
    assert skill.status_code == 201, skill.text
    token = await rig.client.post(f"/api/orgs/{org['id']}/api-tokens", json={"name": "script"})
    assert token.status_code in (200, 201), token.text
    secret_value = "sk-live-" + "7" * 24
    put = await rig.client.put(
        f"/api/orgs/{org['id']}/secrets", json={"name": "OPENAI_API_KEY", "value": secret_value}
    )
    assert put.status_code == 200, put.text

    async with rig.services.sessions() as session:
        integration = await session.get(Integration, r.json()["id"])
        assert integration is not None
        code = (await bindings.issue_code(session, integration, "ou_alice", None)).link
        owner_b = await orgs.ensure_user(session, "mallory@b.test", "Mallory")
        org_b = await orgs.create_org(session, "Org B", owner_b)
        _, member_token = await auth.issue_token(
            session, org_id=org_b.id, name="b", user_id=owner_b.id
        )
        from rudder.domain import agents as agents_domain

        agent_b = await agents_domain.create_agent(
            session,
            org_b.id,
            name="B bot",
            runtime_type=RUNTIME[0],
            runtime_config=dict(RUNTIME[1]),
            actor="t",
        )
        _, agent_token = await auth.issue_token(
            session, org_id=org_b.id, name="b-agent", agent_id=agent_b.id
        )
        await session.commit()
        user_b = owner_b.id
    assert other
    return World(
        ids={
            "org_id": org["id"],
            "agent_id": agent["id"],
            "conversation_id": conv["id"],
            "run_id": runs[0]["id"],
            "setup_id": setup.json()["setup_id"],
            "integration_id": integration.id,
            "code": code,
            "message_id": msg["id"],
            "attachment_id": attachment_id,  # media (issue 23)
            "binding_id": binding.json()["id"],
            "token_id": token.json()["id"],
            # Agents host (issue 22): a revision number, a skill of org A, a model's price.
            "rev": "1",
            "name": "org-a-skill",
            "model": "gpt-4o",
            # Per-chat policy of a bot (issue 25).
            "chat_id": "oc_org_a_group",
        },
        secrets=[
            secret_value,
            token.json()["token"],
            app["app_secret"],
            app["encrypt_key"],
            app["verification_token"],
        ],
        member_b=member_token,
        agent_b=agent_token,
        user_b=user_b,
        integration=integration,
    )


def _api_operations(rig: FeishuRig) -> list[tuple[str, str]]:
    paths = rig.app.openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    ]


def _id_routes(rig: FeishuRig) -> list[tuple[str, str]]:
    return [
        (m, p)
        for m, p in _api_operations(rig)
        if "{" in p and p not in NOT_ORG_SCOPED and p not in (CONFIRM, SIGNED_LINK)
    ]


# Minimal valid bodies, so a refusal is about who asks and not about what was sent.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/orgs/{org_id}/members"): {"email": "x@y.z", "name": "X"},
    ("PUT", "/api/orgs/{org_id}/secrets"): {"name": "N", "value": "v"},
    ("POST", "/api/orgs/{org_id}/agents"): {"name": "Z"},
    ("PATCH", "/api/agents/{agent_id}"): {"status": "paused"},
    ("POST", "/api/orgs/{org_id}/conversations"): {"agent_id": "{agent_id}"},
    ("POST", "/api/conversations/{conversation_id}/messages"): {"body": "hi"},
    ("POST", "/api/agents/{agent_id}/integrations/feishu/setup"): {"region": "feishu"},
    ("POST", "/api/agents/{agent_id}/integrations/feishu/manual"): {
        "region": "feishu",
        "app_id": "cli_x",
        "app_secret": "s",
    },
    ("POST", "/api/orgs/{org_id}/feishu-user-bindings"): {
        "integration_id": "{integration_id}",
        "open_id": "ou_x",
        "user_id": "u",
    },
    ("POST", "/api/orgs/{org_id}/api-tokens"): {"name": "t"},
    ("PUT", "/api/agents/{agent_id}/integrations/feishu/chat-policies/{chat_id}"): {
        "answers": False
    },
    ("PUT", "/api/agents/{agent_id}/integrations/feishu/group-context"): {"enabled": True},
    ("POST", "/api/agents/{agent_id}/pause"): {"reason": "manual"},
    ("PATCH", "/api/orgs/{org_id}/budget"): {"budget_monthly_cents": 1},
    ("POST", "/api/orgs/{org_id}/skills"): {"name": "x", "description": "y"},
    ("PUT", "/api/orgs/{org_id}/skills/{name}"): {"name": "org-a-skill", "description": "y"},
    ("PUT", "/api/orgs/{org_id}/model-prices/{model}"): {
        "input_usd_per_mtok": 1,
        "output_usd_per_mtok": 1,
    },
    ("POST", "/api/agents/{agent_id}/integrations/feishu/messages"): {
        "chat_id": "oc_x",
        "text": "hi",
    },
}


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    return template


async def test_another_orgs_tokens_get_404_on_every_id_route(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture
) -> None:
    world = await _world(rig)
    routes = _id_routes(rig)
    assert len(routes) >= 25  # the walk really covers the API
    leaks: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for token_name, token in (("member", world.member_b), ("agent", world.agent_b)):
            for method, path in routes:
                url = _fill(path, world.ids)
                body = _fill(BODIES.get((method, path)), world.ids)
                r = await rig.client.request(
                    method,
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                count(f"isolation: requests as org B's {token_name}")
                text = r.text
                # A route an agent token may not call at all is refused before any lookup
                # (403, the same text for every id): that names nothing either.
                out_of_scope = token_name == "agent" and r.status_code == 403
                if out_of_scope and r.json()["detail"] != texts.AGENT_TOKEN_OUT_OF_SCOPE:
                    leaks.append(f"{token_name} {method} {path}: 403 {text[:200]}")
                elif r.status_code != 404 and not out_of_scope:
                    leaks.append(f"{token_name} {method} {path}: {r.status_code} {text[:200]}")
                for name, value in world.ids.items():
                    if name not in ("code", "rev", "model") and value in text:
                        leaks.append(f"{token_name} {method} {path}: body names org A's {name}")
    count("isolation: id routes checked", len(routes))
    count("isolation: wrong answers", len(leaks))
    assert not leaks, "\n".join(leaks)
    # Nothing of org A changed on the way: the agent is still active, no binding was made.
    agent = (await rig.client.get(f"/api/agents/{world.ids['agent_id']}")).json()
    assert agent["status"] == "active"
    _assert_no_secret_in(caplog, world.secrets)


def _assert_no_secret_in(caplog: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    for record in caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in line, f"secret in a log line of {record.name}"


# -- binding codes -----------------------------------------------------------------------------


async def _redeem(
    rig: FeishuRig, code: str, token: str | None = None, confirmation: str | None = None
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"confirmation_code": confirmation} if confirmation is not None else None
    r = await rig.client.post(f"/api/feishu-bindings/{code}/confirm", headers=headers, json=body)
    count("binding code redemptions tried")
    return r.status_code


async def test_binding_codes_are_single_use_expire_and_stay_in_their_org(rig: FeishuRig) -> None:
    world = await _world(rig)
    async with rig.services.sessions() as session:
        expired = await bindings.issue_code(session, world.integration, "ou_late", None)
        fresh = await bindings.issue_code(session, world.integration, "ou_bob", None)
        await session.execute(
            update(BindingCode)
            .where(BindingCode.code_hash == bindings.code_hash(expired.link))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    right = fresh.confirmation

    # Another organization's member cannot use it, and trying does not use it up.
    assert await _redeem(rig, fresh.link, world.member_b, right) in (403, 404)
    # An agent token can't link anyone, whatever the code (same answer: nothing to learn).
    assert await _redeem(rig, fresh.link, world.agent_b, right) == await _redeem(
        rig, "x", world.agent_b, right
    )
    assert await _redeem(rig, expired.link, confirmation=expired.confirmation) == 404
    assert await _redeem(rig, "not-a-code", confirmation=right) == 404
    assert await _redeem(rig, fresh.link) == 422  # the link alone is not enough
    assert await _redeem(rig, fresh.link, confirmation=right) == 200
    assert await _redeem(rig, fresh.link, confirmation=right) == 409  # single use
    async with rig.services.sessions() as session:
        stored = [
            " ".join(str(v) for v in row)
            for row in await session.execute(
                select(BindingCode.code_hash, BindingCode.confirm_hash)
            )
        ]
    # Only hashes are stored: a copy of the database can't be used to bind anyone.
    assert not any(fresh.link in row for row in stored)
    assert not any(right.replace("-", "") in row or right in row for row in stored)
    assert any(bindings.code_hash(fresh.link) in row for row in stored)


# -- secrets -----------------------------------------------------------------------------------


async def test_secrets_never_appear_in_responses_or_logs(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture
) -> None:
    """Walk every GET of the API and the pages as the owner, with DEBUG logging on."""
    caplog.set_level(logging.DEBUG)
    world = await _world(rig)
    seen = 0
    for method, path in _api_operations(rig):
        if method != "GET" or path in STREAMS:
            continue
        r = await rig.client.get(_fill(path, world.ids), timeout=10)
        seen += 1
        for secret in world.secrets:
            assert secret not in r.text, f"secret in GET {path}"
    for page in ("/", f"/agents/{world.ids['agent_id']}", "/settings"):
        r = await rig.client.get(page)
        seen += 1
        for secret in world.secrets:
            assert secret not in r.text, f"secret in page {page}"
    count("secret scan: responses checked", seen)
    count("secret scan: log records checked", len(caplog.records))
    _assert_no_secret_in(caplog, world.secrets)

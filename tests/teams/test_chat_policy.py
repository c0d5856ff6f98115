"""A bot's per-chat policy in groups: stored, validated, logged, editable in the Integrations tab,
and only by the organization's owners and admins."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, User
from rudder.domain import auth, orgs
from rudder.feishu import chat_policy
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent

GROUP = "oc_team_room_1"


async def _connected(rig: FeishuRig) -> tuple[dict[str, Any], dict[str, Any]]:
    org, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "PM Bot", "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 200, r.text
    return org, agent


def _base(agent: dict[str, Any]) -> str:
    return f"/api/agents/{agent['id']}/integrations/feishu/chat-policies"


async def test_policy_rows_apply_to_their_chat_and_the_star_row_to_the_rest(
    rig: FeishuRig,
) -> None:
    _, agent = await _connected(rig)
    base = _base(agent)
    assert (await rig.client.get(base)).json() == []
    # The bot answers only in allowed groups: "*" says no, this group says yes.
    r = await rig.client.put(f"{base}/*", json={"answers": False})
    assert r.status_code == 200 and r.json()["answers"] is False
    r = await rig.client.put(f"{base}/{GROUP}", json={"answers": True, "require_mention": False})
    assert r.status_code == 200, r.text
    async with rig.services.sessions() as session:
        integration_id = (
            await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")
        ).json()["id"]
        here = await chat_policy.effective(session, integration_id, GROUP)
        elsewhere = await chat_policy.effective(session, integration_id, "oc_other")
    assert here.answers and not here.require_mention and here.source == "chat"
    # A group's new row starts from the bot's default, then takes the fields given.
    assert not elsewhere.answers and elsewhere.source == "bot"
    assert [p["chat_id"] for p in (await rig.client.get(base)).json()] == ["*", GROUP]
    assert (await rig.client.delete(f"{base}/{GROUP}")).status_code == 204
    assert (await rig.client.delete(f"{base}/{GROUP}")).status_code == 404
    async with rig.services.sessions() as session:
        back = await chat_policy.effective(session, integration_id, GROUP)
        logged = list(
            await session.scalars(
                select(ActivityLog.action).where(ActivityLog.action.like("feishu.chat_policy%"))
            )
        )
    assert back.source == "bot" and not back.answers
    assert logged.count("feishu.chat_policy_changed") == 2
    assert logged.count("feishu.chat_policy_cleared") == 1


async def test_bad_policies_say_what_is_wrong_and_change_nothing(rig: FeishuRig) -> None:
    _, agent = await _connected(rig)
    base = _base(agent)
    cases = [
        (f"{base}/not-a-chat", {"quiet": True}, texts.CHAT_POLICY_BAD_CHAT),
        (f"{base}/{GROUP}", {"audience": "tenant"}, texts.CHAT_POLICY_NEEDS_MEMBER),
        (
            f"{base}/{GROUP}",
            {"audience": "tenant", "default_user_id": "u_nobody"},
            texts.CHAT_POLICY_BAD_MEMBER,
        ),
    ]
    for url, body, detail in cases:
        r = await rig.client.put(url, json=body)
        assert r.status_code == 422 and r.json()["detail"] == detail, (body, r.text)
    unknown_field = await rig.client.put(f"{base}/{GROUP}", json={"admin": True})
    assert unknown_field.status_code == 422
    assert (await rig.client.get(base)).json() == []
    # A member of another organization can't be the default either.
    async with rig.services.sessions() as session, session.begin():
        stranger = await orgs.ensure_user(session, "s@x.test", "Stranger")
        await session.flush()
        await orgs.create_org(session, "Elsewhere", stranger)
        stranger_id = stranger.id
    r = await rig.client.put(
        f"{base}/{GROUP}", json={"audience": "tenant", "default_user_id": stranger_id}
    )
    assert r.status_code == 422 and r.json()["detail"] == texts.CHAT_POLICY_BAD_MEMBER
    # The owner can.
    async with rig.services.sessions() as session:
        me = await session.scalar(select(User).order_by(User.created_at))
        assert me is not None
    r = await rig.client.put(
        f"{base}/{GROUP}", json={"audience": "tenant", "default_user_id": me.id}
    )
    assert r.status_code == 200 and r.json()["default_user_id"] == me.id


async def test_members_and_agent_tokens_cannot_change_a_policy(rig: FeishuRig) -> None:
    org, agent = await _connected(rig)
    base = _base(agent)
    async with rig.services.sessions() as session, session.begin():
        _, member = await orgs.add_member(
            session, org["id"], "m@a.test", "Member", "member", "test"
        )
        await session.flush()
        _, member_token = await auth.issue_token(
            session, org_id=org["id"], name="m", user_id=member.id
        )
        _, agent_token = await auth.issue_token(
            session, org_id=org["id"], name="a", agent_id=agent["id"]
        )
    for token in (member_token, agent_token):
        headers = {"Authorization": f"Bearer {token}"}
        r = await rig.client.put(f"{base}/*", json={"answers": False}, headers=headers)
        assert r.status_code == 403, r.text
        page = await rig.client.post(
            f"/agents/{agent['id']}/integrations/chat-policy",
            data={"chat_id": "*", "audience": "members"},
            headers=headers,
        )
        assert page.status_code in (403, 404, 422), page.text
    assert (await rig.client.get(base)).json() == []


async def test_the_integrations_tab_edits_a_groups_policy(rig: FeishuRig) -> None:
    _, agent = await _connected(rig)
    page = await rig.client.get(f"/agents/{agent['id']}/integrations")
    assert 'id="groups"' in page.text and 'data-testid="policy-*"' in page.text
    assert html.escape(texts.WEB_GROUPS_NONE, quote=False) in page.text
    r = await rig.client.post(
        f"/agents/{agent['id']}/integrations/chat-policy",
        data={"chat_id": GROUP, "answers": "1", "quiet": "1", "audience": "members"},
    )
    assert r.status_code == 303
    page = await rig.client.get(f"/agents/{agent['id']}/integrations")
    assert f'data-testid="policy-{GROUP}"' in page.text
    rows = {p["chat_id"]: p for p in (await rig.client.get(_base(agent))).json()}
    assert rows[GROUP]["quiet"] is True and rows[GROUP]["require_mention"] is False
    bad = await rig.client.post(
        f"/agents/{agent['id']}/integrations/chat-policy",
        data={"chat_id": GROUP, "audience": "tenant"},
    )
    assert bad.status_code == 422
    assert html.escape(texts.CHAT_POLICY_NEEDS_MEMBER, quote=False) in bad.text
    reset = await rig.client.post(
        f"/agents/{agent['id']}/integrations/chat-policy", data={"chat_id": GROUP, "reset": "1"}
    )
    assert reset.status_code == 303
    assert GROUP not in {p["chat_id"] for p in (await rig.client.get(_base(agent))).json()}

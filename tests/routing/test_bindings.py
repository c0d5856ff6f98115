"""Member binding, as dialogues: the prompt, the bind page, admin binding, unbinding, re-checks."""

from __future__ import annotations

import html
from datetime import timedelta

from sqlalchemy import select, update

from rudder import texts
from rudder.db.models import BindingCode, Membership, User
from rudder.domain import auth, orgs
from rudder.feishu import bindings
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.routing.dialogue import (
    activity,
    bind,
    binding_prompts,
    bot_texts,
    confirm,
    connected_bot,
    conversations,
    dm,
    group,
    messages,
    open_id_of,
    person,
    prompts,
    say,
    wait_binding,
    wait_prompt,
)


async def test_one_prompt_per_sender_per_ten_minutes(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    ada = await person(rig, "Ada")
    chat = await dm(rig, ada, app)

    await say(rig, chat, ada, "hello?")
    await say(rig, chat, ada, "anyone there?")
    await say(rig, chat, ada, "hello??")
    rows = await activity(rig, agent["id"], 3)
    assert [r["outcome"] for r in rows] == ["held"] * 3
    # Exactly one of the three got the prompt (the long connection may hand concurrent
    # events over in any order); the other two say it was already sent.
    reasons = sorted(r["reason"] for r in rows)
    assert sum(r.endswith("binding prompt sent") for r in reasons) == 1
    assert sum("already sent" in r for r in reasons) == 2
    await wait_prompt(rig, chat)
    assert len(await prompts(rig, chat)) == 1

    # Ten minutes later (the throttle reads the stored codes, so it survives a restart).
    async with rig.services.sessions() as session, session.begin():
        for code in await session.scalars(select(BindingCode)):
            code.created_at -= timedelta(minutes=11)
    await say(rig, chat, ada, "still there?")
    await activity(rig, agent["id"], 4)
    second = await wait_prompt(rig, chat, nth=2)
    first = (await prompts(rig, chat))[0]
    assert first != second
    # Both links work until used: the first one is 11 "minutes" old, still inside its 15.
    assert (await rig.client.get(f"/bind/feishu/{first}")).status_code == 200


async def test_bind_page_names_the_feishu_user_the_bot_and_the_organization(
    rig: FeishuRig,
) -> None:
    agent, app = await connected_bot(rig)
    org, _ = await default_org_and_agent(rig.client)
    ada = await person(rig, "Ada")
    chat = await dm(rig, ada, app)
    await say(rig, chat, ada, "hello")
    prompt = await wait_binding(rig, chat)
    code = prompt.link

    page = await rig.client.get(f"/bind/feishu/{code}")
    assert page.status_code == 200
    # The Feishu user by their Feishu name (contact API), not by an open_id.
    ada_open_id = await open_id_of(rig, ada, app)
    assert ada_open_id not in page.text
    for shown in ("Ada", agent["name"], org["name"], texts.FEISHU_BINDING_CONFIRM):
        assert shown in page.text
    assert texts.FEISHU_BINDING_PAGE_TITLE.format(product="Feishu") in page.text
    assert 'name="code"' in page.text and f'action="/bind/feishu/{code}"' in page.text
    # No script of its own: the form posts without JavaScript; and the page is never framed.
    assert "<script>" not in page.text and "onclick" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"

    for bad in ("nonsense", code[:-2]):
        invalid = await rig.client.get(f"/bind/feishu/{bad}")
        assert invalid.status_code == 404 and texts.FEISHU_BINDING_INVALID in invalid.text

    # Someone from another organization can't take the link, even with its code.
    async with rig.services.sessions() as session, session.begin():
        eve = await orgs.ensure_user(session, "eve@example.com", "Eve")
        other = await orgs.create_org(session, "Elsewhere", eve)
        _, token = await auth.issue_token(session, org_id=other.id, name="t", user_id=eve.id)
    as_eve = {"authorization": f"Bearer {token}"}
    refused = await confirm(rig, prompt, headers=as_eve)
    assert refused.status_code == 403
    assert refused.json()["detail"] == texts.FEISHU_BINDING_NOT_MEMBER
    eve_page = await rig.client.get(f"/bind/feishu/{code}", headers=as_eve)
    assert texts.FEISHU_BINDING_NOT_MEMBER in eve_page.text

    # The link alone is not enough: no code, or a wrong one, is refused and says why.
    missing = await rig.client.post(f"/api/feishu-bindings/{code}/confirm")
    assert missing.status_code == 422
    assert missing.json()["detail"] == texts.FEISHU_BINDING_CODE_MISSING.format(product="Feishu")
    wrong = await rig.client.post(f"/bind/feishu/{code}", data={"code": "AAAA-AAAA"})
    assert wrong.status_code == 422
    assert texts.FEISHU_BINDING_CODE_WRONG.format(
        product="Feishu", left=bindings.MAX_ATTEMPTS - 1
    ) in html.unescape(wrong.text)
    assert 'name="code"' in wrong.text  # the form again, to try once more

    # The member types the code (any case, with or without the dash) into the plain form.
    typed = prompt.confirmation.lower().replace("-", " ")
    done = await rig.client.post(f"/bind/feishu/{code}", data={"code": typed})
    assert done.status_code == 200, done.text
    assert done.headers["x-frame-options"] == "DENY"
    async with rig.services.sessions() as session:
        owner = (await orgs.members(session, agent["org_id"]))[0][1]
    assert texts.FEISHU_BINDING_DONE.format(product="Feishu", name=owner.name) in html.unescape(
        done.text
    )
    # Ada hears it privately too.
    linked = texts.FEISHU_BINDING_LINKED_NOTICE.format(product="Feishu", name=owner.name)
    await wait_for(lambda: _said(rig, chat, linked))

    # Used up: the same member is told it is already linked, not that the link is invalid.
    used = await rig.client.get(f"/bind/feishu/{code}")
    assert used.status_code == 409
    assert texts.FEISHU_BINDING_ALREADY_LINKED.format(product="Feishu") in html.unescape(used.text)
    again = await confirm(rig, prompt)
    assert again.status_code == 409
    assert again.json()["detail"] == texts.FEISHU_BINDING_ALREADY_LINKED.format(product="Feishu")


def _main(page: str) -> str:
    """The page's own content, without the layout's navigation (which names the sandbox)."""
    return page[page.index("<main") : page.index("</main>")]


async def _said(rig: FeishuRig, chat_id: str, text: str) -> bool:
    return text in await bot_texts(rig, chat_id)


async def test_a_lark_bot_speaks_of_lark(rig: FeishuRig) -> None:
    """Issue 20 §4: every binding text names the product the bot is on."""
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Larkbot", "brand": "lark"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "lark", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert r.status_code == 200, r.text

    async def live() -> bool:
        state = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
        return bool(state["connection"] and state["connection"]["status"] == "connected")

    await wait_for(live, timeout=10)
    ada = await person(rig, "Ada")
    team = await group(rig, "Team", [ada], [app])
    await say(rig, team, ada, "hello", mention_app_ids=[app["app_id"]])
    chat = await dm(rig, ada, app)
    prompt = await wait_binding(rig, chat)
    said = [t for t in await bot_texts(rig, chat) if prompt.link in t][0]
    assert "link your Lark account" in said and "Feishu" not in said
    note = texts.FEISHU_BINDING_SENT_PRIVATELY.format(product="Lark")
    await wait_for(lambda: _said(rig, team, note))

    page = await rig.client.get(f"/bind/feishu/{prompt.link}")
    assert texts.FEISHU_BINDING_PAGE_TITLE.format(product="Lark") in html.unescape(page.text)
    assert "Feishu" not in _main(page.text).replace("/bind/feishu/", "")
    done = await rig.client.post(f"/bind/feishu/{prompt.link}", data={"code": prompt.confirmation})
    assert done.status_code == 200, done.text
    assert "in Lark." in done.text and "Feishu" not in _main(done.text)


async def test_admin_binds_from_the_identities_list_and_unbinds(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    org_id = agent["org_id"]
    ada, bob = await person(rig, "Ada"), await person(rig, "Bob")
    ada_chat, bob_chat = await dm(rig, ada, app), await dm(rig, bob, app)
    await say(rig, ada_chat, ada, "hi")
    await bind(rig, ada_chat)
    await say(rig, bob_chat, bob, "hi")
    await activity(rig, agent["id"], 2)
    await say(rig, ada_chat, ada, "me again")  # Ada is now the most recently seen
    await activity(rig, agent["id"], 3)

    seen = (await rig.client.get(f"/api/orgs/{org_id}/feishu-identities")).json()
    bob_open_id = await open_id_of(rig, bob, app)
    assert [(i["open_id"], i["bound"]) for i in seen] == [
        (bob_open_id, False),  # unbound first
        (await open_id_of(rig, ada, app), True),
    ]
    assert seen[0]["user_id"] is None and seen[0]["agent_name"] == agent["name"]
    assert app["bot_open_id"] not in {i["open_id"] for i in seen}

    member = (
        await rig.client.post(
            f"/api/orgs/{org_id}/members", json={"email": "bob@example.com", "name": "Bob R."}
        )
    ).json()
    bound = await rig.client.post(
        f"/api/orgs/{org_id}/feishu-user-bindings",
        json={
            "integration_id": seen[0]["integration_id"],
            "open_id": bob_open_id,
            "user_id": member["user_id"],
        },
    )
    assert bound.status_code == 200, bound.text
    # The prompt Bob was sent is void now: it would rebind him to whoever opens it.
    bob_prompt = (await binding_prompts(rig, bob_chat))[0]
    assert (await rig.client.get(f"/bind/feishu/{bob_prompt.link}")).status_code == 409
    assert (await confirm(rig, bob_prompt)).status_code == 409

    await say(rig, bob_chat, bob, "now?")
    rows = await activity(rig, agent["id"], 4)
    assert rows[0]["outcome"] == "processed", rows[0]
    conv = next(c for c in await conversations(rig, org_id) if c["external_chat_id"] == bob_chat)
    assert (await messages(rig, conv["id"]))[0]["author_user_id"] == member["user_id"]

    # Unbinding is per organization: another organization's id answers 404.
    binding_id = bound.json()["id"]
    other = (await rig.client.post("/api/orgs", json={"name": "Other"})).json()
    elsewhere = await rig.client.delete(
        f"/api/orgs/{other['id']}/feishu-user-bindings/{binding_id}"
    )
    assert elsewhere.status_code == 404
    gone = await rig.client.delete(f"/api/orgs/{org_id}/feishu-user-bindings/{binding_id}")
    assert gone.status_code == 204
    again = await rig.client.delete(f"/api/orgs/{org_id}/feishu-user-bindings/{binding_id}")
    assert again.status_code == 404

    await say(rig, bob_chat, bob, "and now?")
    rows = await activity(rig, agent["id"], 5)
    assert rows[0]["outcome"] == "held" and rows[0]["reason"].endswith("binding prompt sent")
    await wait_prompt(rig, bob_chat, nth=2)


async def test_membership_is_checked_on_every_message(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    org_id = agent["org_id"]
    ada = await person(rig, "Ada")
    chat = await dm(rig, ada, app)
    member = (
        await rig.client.post(
            f"/api/orgs/{org_id}/members", json={"email": "ada@example.com", "name": "Ada L."}
        )
    ).json()
    await say(rig, chat, ada, "hi")
    await activity(rig, agent["id"], 1)
    r = await rig.client.post(
        f"/api/orgs/{org_id}/feishu-user-bindings",
        json={
            "integration_id": (
                await rig.client.get(f"/api/orgs/{org_id}/feishu-identities")
            ).json()[0]["integration_id"],
            "open_id": await open_id_of(rig, ada, app),
            "user_id": member["user_id"],
        },
    )
    assert r.status_code == 200, r.text
    await say(rig, chat, ada, "works?")
    rows = await activity(rig, agent["id"], 2)
    assert rows[0]["outcome"] == "processed"

    # Ada's membership is disabled after she was bound: she is asked to bind again.
    async with rig.services.sessions() as session, session.begin():
        await session.execute(
            update(Membership)
            .where(Membership.user_id == member["user_id"])
            .values(status="disabled")
        )
    await say(rig, chat, ada, "still works?")
    rows = await activity(rig, agent["id"], 3)
    assert rows[0]["outcome"] == "held" and rows[0]["reason"].endswith("binding prompt sent")
    await wait_prompt(rig, chat, nth=2)

    # And removed from the organization altogether: still held, and no second prompt so soon.
    async with rig.services.sessions() as session, session.begin():
        row = await session.scalar(
            select(Membership).where(Membership.user_id == member["user_id"])
        )
        assert row is not None
        await session.delete(row)
    await say(rig, chat, ada, "hello?")
    rows = await activity(rig, agent["id"], 4)
    assert rows[0]["outcome"] == "held" and "already sent" in rows[0]["reason"]
    async with rig.services.sessions() as session:
        assert await session.get(User, member["user_id"]) is not None


async def test_members_page_binds_and_unbinds_feishu_users(rig: FeishuRig) -> None:
    agent, app = await connected_bot(rig)
    ada = await person(rig, "Ada")
    chat = await dm(rig, ada, app)
    await say(rig, chat, ada, "hi")
    await activity(rig, agent["id"], 1)
    ada_open_id = await open_id_of(rig, ada, app)

    page = await rig.client.get("/members")
    assert page.status_code == 200
    assert ada_open_id in page.text and texts.WEB_FEISHU_BIND in page.text
    async with rig.services.sessions() as session:
        owner = (await orgs.members(session, agent["org_id"]))[0][1]
    form = {
        "integration_id": (
            await rig.client.get(f"/api/orgs/{agent['org_id']}/feishu-identities")
        ).json()[0]["integration_id"],
        "open_id": ada_open_id,
        "user_id": owner.id,
    }
    done = await rig.client.post("/members/feishu-bindings", data=form)
    assert done.status_code == 303
    page = await rig.client.get(done.headers["location"])
    assert texts.WEB_FEISHU_BOUND_DONE in page.text and texts.WEB_FEISHU_UNBIND in page.text
    seen = (await rig.client.get(f"/api/orgs/{agent['org_id']}/feishu-identities")).json()
    assert seen[0]["user_id"] == owner.id

    unknown = await rig.client.post("/members/feishu-bindings/nope/delete")
    assert unknown.status_code == 422
    gone = await rig.client.post(f"/members/feishu-bindings/{seen[0]['binding_id']}/delete")
    assert gone.status_code == 303
    page = await rig.client.get(gone.headers["location"])
    assert texts.WEB_FEISHU_UNBOUND_DONE in page.text and texts.WEB_FEISHU_BIND in page.text


async def test_a_group_prompt_that_cannot_be_sent_privately(rig: FeishuRig) -> None:
    """Feishu refuses the private message (e.g. the user is outside the app's availability):
    the group is told to use a direct chat, still without a link, and no throttle holds."""
    agent, app = await connected_bot(rig)
    ada = await person(rig, "Ada")
    team = await group(rig, "Team", [ada], [app])
    await rig.control(
        "POST",
        "/faults",
        json={
            "kind": "fail_api",
            "api": "im.message.create",
            "code": 230013,
            "msg": "Bot has NO availability to this user.",
            "app_id": app["app_id"],
        },
    )
    await say(rig, team, ada, "hello", mention_app_ids=[app["app_id"]])
    rows = await activity(rig, agent["id"], 2)  # the bot-added event, then Ada's message
    assert rows[0]["outcome"] == "held" and "could not be delivered" in rows[0]["reason"]
    note = texts.FEISHU_BINDING_PRIVATE_FAILED.format(product="Feishu")
    await wait_for(lambda: _said(rig, team, note))
    assert await prompts(rig, team) == []

    # Ada opens a direct chat as told: a prompt comes at once, not in ten minutes.
    direct = await dm(rig, ada, app)
    await say(rig, direct, ada, "hello?")
    rows = await activity(rig, agent["id"], 3)
    assert rows[0]["reason"].endswith("binding prompt sent"), rows[0]
    await wait_prompt(rig, direct)

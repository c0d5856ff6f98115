"""Hand-offs under attack: an agent's reply (a prompt-injected one, say) that mentions every bot
many times, or a bot of another organization sitting in the same group. One reply hands the
turn to one agent of its own organization at most; loops are bounded (tests/teams)."""

from __future__ import annotations

from sqlalchemy import select

from rudder.db.models import Membership, User
from rudder.domain import orgs
from tests.conftest import FeishuRig
from tests.hostile.conftest import count
from tests.routing.dialogue import group, say
from tests.teams.crew import crew, finished, recruit, runs_of, said, settled


async def test_a_reply_full_of_mentions_hands_over_once(rig: FeishuRig) -> None:
    c = await crew(rig)
    chat = await group(rig, "Crowd", [c.ada], list(c.apps.values()))
    beta_open_id = c.apps["Beta"]["bot_open_id"]
    flood = " ".join(["@Beta @Gamma @Alpha", f'<at user_id="{beta_open_id}">x</at>'] * 60)
    await say(rig, chat, c.ada, f"echo: {flood}", **c.at("Alpha"))
    await finished(c, "Alpha")
    await settled(c)
    [alpha] = await runs_of(c, "Alpha")
    assert alpha["status"] == "succeeded"
    beta = await runs_of(c, "Beta")
    assert [r["handed_from_run_id"] for r in beta] == [alpha["id"]]
    assert await runs_of(c, "Gamma") == []
    count("hand-off floods held")


async def test_a_bot_of_another_organization_is_never_handed_to(rig: FeishuRig) -> None:
    c = await crew(rig, ("Alpha",))
    async with rig.services.sessions() as session, session.begin():
        owner = await session.scalar(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == c.org_id, Membership.role == "owner")
        )
        assert owner is not None
        other = (await orgs.create_org(session, "Elsewhere", owner)).id
    await recruit(c, "Mallet", org_id=other)
    chat = await group(rig, "Shared room", [c.ada], list(c.apps.values()))
    await say(rig, chat, c.ada, "route: Alpha>Mallet", **c.at("Alpha"))
    await finished(c, "Alpha")
    await settled(c)
    assert [r["status"] for r in await runs_of(c, "Alpha")] == ["succeeded"]
    assert await runs_of(c, "Mallet") == []
    [reply] = await said(c, chat, "Alpha")
    assert "@Mallet your turn" in reply["text"] and reply["mentions"] == []
    count("hand-offs across organizations refused")

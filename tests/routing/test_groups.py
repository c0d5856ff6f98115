"""Two Rudder bots in one group: only the one that is @-mentioned answers."""

from __future__ import annotations

from rudder import texts
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.routing.dialogue import (
    activity,
    bind,
    bot_texts,
    connected_bot,
    conversations,
    dm,
    group,
    person,
    prompts,
    say,
    wait_prompt,
)


async def test_only_the_mentioned_bot_answers(rig: FeishuRig) -> None:
    org, _ = await default_org_and_agent(rig.client)
    runtime_type, runtime_config = DEFAULT_AGENT_RUNTIME
    created = await rig.client.post(
        f"/api/orgs/{org['id']}/agents",
        json={"name": "Reviewer", "runtime_type": runtime_type, "runtime_config": runtime_config},
    )
    assert created.status_code == 201, created.text
    helper, helper_app = await connected_bot(rig)
    reviewer, reviewer_app = await connected_bot(rig, created.json())
    # Both bots see every group message, so ignoring is Rudder's decision, not the platform's.
    for app in (helper_app, reviewer_app):
        await rig.control(
            "PATCH", f"/apps/{app['app_id']}", json={"receive_all_group_messages": True}
        )
    ada = await person(rig, "Ada")
    direct = await dm(rig, ada, helper_app)
    await say(rig, direct, ada, "hi")
    await bind(rig, direct)
    await activity(rig, helper["id"], 1)
    team = await group(rig, "Team", [ada], [helper_app, reviewer_app])
    await activity(rig, helper["id"], 2)  # the bot-added event
    await activity(rig, reviewer["id"], 1)

    # Ada asks the helper bot.
    await say(rig, team, ada, "summarise please", mention_app_ids=[helper_app["app_id"]])
    helper_rows = await activity(rig, helper["id"], 3)
    reviewer_rows = await activity(rig, reviewer["id"], 2)
    assert helper_rows[0]["outcome"] == "processed", helper_rows[0]
    assert reviewer_rows[0]["outcome"] == "ignored"
    assert "does not mention this bot" in reviewer_rows[0]["reason"]

    async def helper_replied() -> bool:
        return any("example agent" in t.lower() for t in await bot_texts(rig, team))

    await wait_for(helper_replied, timeout=20)
    convs = [c for c in await conversations(rig, org["id"]) if c["external_chat_id"] == team]
    assert [c["agent_id"] for c in convs] == [helper["id"]]

    # Now Ada asks the reviewer bot: the helper stays quiet; the reviewer (which Ada has not
    # linked yet) sends her its own binding prompt, privately; the group only hears that.
    await say(rig, team, ada, "review this", mention_app_ids=[reviewer_app["app_id"]])
    helper_rows = await activity(rig, helper["id"], 4)
    reviewer_rows = await activity(rig, reviewer["id"], 3)
    assert helper_rows[0]["outcome"] == "ignored"
    assert reviewer_rows[0]["outcome"] == "held"
    assert reviewer_rows[0]["reason"].endswith("binding prompt sent privately")
    await wait_prompt(rig, await dm(rig, ada, reviewer_app))
    note = texts.FEISHU_BINDING_SENT_PRIVATELY.format(product="Feishu")
    await wait_for(lambda: _says(rig, team, note))
    assert await prompts(rig, team) == []


async def _says(rig: FeishuRig, chat_id: str, text: str) -> bool:
    return text in await bot_texts(rig, chat_id)

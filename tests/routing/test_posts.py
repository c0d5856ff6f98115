"""Rich-text `post` messages: text, links and @mentions are read as text, pictures as attachments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rudder.feishu.events import parse_event
from rudder.feishu.routing import mentions_bot
from tests.conftest import FeishuRig
from tests.helpers import wait_for
from tests.routing.dialogue import (
    activity,
    bind,
    bot_texts,
    connected_bot,
    conversations,
    dm,
    group,
    messages,
    person,
    say,
)

BOT = "ou_bot"


def _envelope(content: dict[str, Any], mentions: list[dict[str, Any]] | None = None) -> bytes:
    message: dict[str, Any] = {
        "message_id": "om_1",
        "chat_id": "oc_1",
        "chat_type": "group",
        "message_type": "post",
        "content": json.dumps(content),
    }
    if mentions is not None:
        message["mentions"] = mentions
    return json.dumps(
        {
            "schema": "2.0",
            "header": {"event_id": "e1", "event_type": "im.message.receive_v1", "app_id": "cli"},
            "event": {"sender": {"sender_id": {"open_id": "ou_ada"}}, "message": message},
        }
    ).encode()


BOT_MENTION = [{"key": "@_user_1", "id": {"open_id": BOT}, "name": "Helper"}]
PARAGRAPHS = [
    [
        {"tag": "at", "user_id": "@_user_1", "user_name": "Helper"},
        {"tag": "text", "text": " please read "},
        {"tag": "a", "text": "the spec", "href": "https://example.com/spec"},
    ],
    [{"tag": "text", "text": "and summarise it"}],
]


def test_a_flat_post_is_its_plain_text_and_its_at_mentions_count() -> None:
    event = parse_event(_envelope({"title": "", "content": PARAGRAPHS}, BOT_MENTION))
    assert event.message is not None
    assert event.message.text == (
        "please read [the spec](https://example.com/spec)\nand summarise it"
    )
    assert mentions_bot(event.message, BOT)
    assert not mentions_bot(event.message, "ou_other_bot")


@pytest.mark.parametrize(
    "wrapped",
    [
        {"zh_cn": {"title": "Ask", "content": PARAGRAPHS}},
        {"post": {"en_us": {"title": "Ask", "content": PARAGRAPHS}}},
    ],
)
def test_a_locale_wrapped_post_is_read_the_same(wrapped: dict[str, Any]) -> None:
    event = parse_event(_envelope(wrapped, BOT_MENTION))
    assert event.message is not None and event.message.text is not None
    assert event.message.text.startswith("Ask\nplease read [the spec]")
    assert mentions_bot(event.message, BOT)


def test_an_at_element_with_an_open_id_counts_without_mentions() -> None:
    content = {
        "title": "",
        "content": [[{"tag": "at", "user_id": BOT}, {"tag": "text", "text": " hi"}]],
    }
    event = parse_event(_envelope(content))
    assert event.message is not None and event.message.text == "hi"
    assert mentions_bot(event.message, BOT)


def test_at_all_in_a_post_is_not_a_mention_of_the_bot() -> None:
    content = {
        "title": "",
        "content": [[{"tag": "at", "user_id": "all"}, {"tag": "text", "text": " all"}]],
    }
    event = parse_event(_envelope(content))
    assert event.message is not None and event.message.mention_all
    assert not mentions_bot(event.message, BOT)


@pytest.mark.parametrize("tag", ["img", "media"])
def test_a_post_with_media_is_its_text_and_its_attachments(tag: str) -> None:
    content = {
        "title": "",
        "content": [[{"tag": "text", "text": "look"}], [{"tag": tag, "image_key": "img_v3_x"}]],
    }
    event = parse_event(_envelope(content, BOT_MENTION))
    assert event.message is not None and event.message.text == "look"
    assert [(r.key, r.download_type) for r in event.message.resources] == [("img_v3_x", "image")]


def test_a_post_with_an_unknown_element_is_not_text() -> None:
    content = {"title": "", "content": [[{"tag": "text", "text": "x"}, {"tag": "hologram"}]]}
    event = parse_event(_envelope(content, BOT_MENTION))
    assert event.message is not None and event.message.text is None


async def test_a_post_in_a_group_reaches_the_agent_and_so_does_one_with_a_lost_image(
    rig: FeishuRig,
) -> None:
    agent, app = await connected_bot(rig)
    ada = await person(rig, "Ada")
    direct = await dm(rig, ada, app)
    await say(rig, direct, ada, "hi")
    await bind(rig, direct)
    await activity(rig, agent["id"], 1)
    team = await group(rig, "Team", [ada], [app])

    # Ada writes a rich-text post that @-mentions the bot and carries a link.
    await say(
        rig,
        team,
        ada,
        message_type="post",
        content={"title": "", "content": PARAGRAPHS},
        mention_app_ids=[app["app_id"]],
    )
    rows = await activity(rig, agent["id"], 3)  # held DM, bot added to the group, the post
    assert rows[0]["outcome"] == "processed", rows[0]
    conv = next(
        c for c in await conversations(rig, agent["org_id"]) if c["external_chat_id"] == team
    )
    first = (await messages(rig, conv["id"]))[0]
    assert first["body"] == "please read [the spec](https://example.com/spec)\nand summarise it"

    # A post with a picture Feishu no longer has: the text reaches the agent, the chat hears
    # what could not be fetched.
    await say(
        rig,
        team,
        ada,
        message_type="post",
        content={
            "title": "",
            "content": [
                [{"tag": "at", "user_id": "@_user_1"}, {"tag": "text", "text": " see"}],
                [{"tag": "img", "image_key": "img_v3_x"}],
            ],
        },
        mention_app_ids=[app["app_id"]],
    )
    rows = await activity(rig, agent["id"], 4)
    assert rows[0]["outcome"] == "processed", rows[0]
    assert "0 of 1 attachment(s) fetched" in rows[0]["reason"], rows[0]
    bodies = [m["body"] for m in await messages(rig, conv["id"])]
    assert any(b.startswith("see\n(Attachment not available: image:") for b in bodies), bodies

    async def noticed() -> bool:
        return any("could not fetch" in t for t in await bot_texts(rig, team))

    await wait_for(noticed)

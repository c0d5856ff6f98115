"""What each outbox kind does in Feishu: the calls behind one row, resumable at any step."""

from __future__ import annotations

import json
import time
from typing import Any

from rudder.feishu import card_controls as controls
from rudder.feishu.card_controls import ELEMENT_ID, summary_of
from rudder.feishu.client import BotClient
from rudder.feishu.errors import CARD_SEQUENCE, MESSAGE_RECALLED, FeishuError
from rudder.feishu.outbox import Checkpoint, Item, idempotency_uuid

# Row kinds. `run` is the reply ledger of one run: pending while its reply is in progress, so a
# restart finds replies a crash interrupted; it makes no Feishu call of its own.
RUN = "run"
TYPING = "typing"
TYPING_OFF = "typing_off"
CARD = "card"
CARD_FINAL = "card_final"
TEXT = "text"
NOTICE = "notice"
MESSAGE = "message"
COSMETIC = frozenset({TYPING, TYPING_OFF})  # a failure here never marks a reply as failed

TYPING_EMOJI = "Typing"
ADOPT = "adopt"  # in a pending typing row's payload: a reaction may already be there
STREAMING_CLOSED = 300309
REACTION_GONE = 230001  # invalid reaction_id: the reaction no longer exists
SEQUENCE_MAX = 2**31 - 1


def streaming_card(text: str, stop: dict[str, str] | None = None) -> dict[str, Any]:
    """CardKit JSON 2.0 with one markdown element (reference §6.6, skeleton from the doc)."""
    return controls.working_card(text, stop)


class Sequencers:
    """CardKit `sequence` per card: strictly increasing across every op, even across restarts.

    Milliseconds since the card was created (stored in its row as `t0`) keep growing after a
    restart that lost the in-memory counter; int32 holds 24 days of them and a card entity lives
    14 (reference §6.6).
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, card_id: str, t0_ms: int) -> int:
        elapsed = int(time.time() * 1000) - t0_ms + 1
        seq = min(SEQUENCE_MAX, max(self._last.get(card_id, 0) + 1, elapsed))
        self._last[card_id] = seq
        return seq

    def forget(self, card_id: str) -> None:
        self._last.pop(card_id, None)


async def perform(bot: BotClient, seqs: Sequencers, item: Item, checkpoint: Checkpoint) -> None:
    p = item.payload
    if item.kind == TYPING:
        # Adding a reaction is not idempotent: after an attempt that may have reached Feishu
        # (a retry, or a reply resumed after a crash) the reaction already there is reused, or
        # the user's message would keep a second "Typing" nobody removes.
        if p.pop(ADOPT, False) or item.attempts:
            try:
                found = await bot.own_reaction(item.target, TYPING_EMOJI)
            except FeishuError:
                found = None  # no permission to list: add, as before
            if found:
                p["reaction_id"] = found
                return
        p["reaction_id"] = await bot.add_reaction(item.target, TYPING_EMOJI)
    elif item.kind == TYPING_OFF:
        if p.get("reaction_id"):
            try:
                await bot.delete_reaction(item.target, str(p["reaction_id"]))
            except FeishuError as exc:
                # Already gone: an attempt before a crash removed it, and the row's "sent"
                # was not written. Removing is idempotent from the user's point of view.
                if exc.code != REACTION_GONE:
                    raise
    elif item.kind == CARD:
        if not p.get("card_id"):
            stop = p.get("stop") if isinstance(p.get("stop"), dict) else None
            p["card_id"] = await bot.create_card(streaming_card(str(p.get("text", "")), stop))
            p["t0"] = int(time.time() * 1000)
            # Remember the entity before sending it: a retry sends this card, not a new one.
            await checkpoint()
        await _post(bot, item, "interactive", {"type": "card", "data": {"card_id": p["card_id"]}})
    elif item.kind == CARD_FINAL:
        await _close_card(bot, seqs, item, checkpoint)
    elif item.kind in (TEXT, NOTICE, MESSAGE):
        await _post(bot, item, str(p.get("msg_type", "text")), dict(p["content"]))
    else:
        raise ValueError(f"unknown outbox kind {item.kind!r}")


async def _post(bot: BotClient, item: Item, msg_type: str, content: dict[str, Any]) -> None:
    p = item.payload
    reply_to = p.get("reply_to")
    data: dict[str, Any]
    if reply_to and not p.get("as_send"):
        try:
            data = await bot.reply_message(
                str(reply_to),
                msg_type,
                content,
                uuid=item.uuid,
                chat=p.get("chat_id"),
                reply_in_thread=p.get("in_thread") is True,
            )
        except FeishuError as exc:
            if exc.code != MESSAGE_RECALLED or p.get("in_thread"):
                raise  # a topic's reply never falls back into the main chat
            # The user recalled the message we answer: say it in the chat instead (peers lose
            # these replies silently, peers.md §3.6). Its own uuid keeps the send at most once.
            p["as_send"] = True
            data = await _send(bot, item, msg_type, content)
    else:
        data = await _send(bot, item, msg_type, content)
    item.feishu_message_id = str(data.get("message_id") or "") or None


async def _send(
    bot: BotClient, item: Item, msg_type: str, content: dict[str, Any]
) -> dict[str, Any]:
    p = item.payload
    key = idempotency_uuid(item.uuid, "send") if p.get("reply_to") else item.uuid
    # A private notice goes to a person (`receive_id_type: open_id`), not to a chat.
    to, id_type = (
        str(p.get("receive_id") or p["chat_id"]),
        str(p.get("receive_id_type") or "chat_id"),
    )
    return await bot.send_message(to, msg_type, content, receive_id_type=id_type, uuid=key)


async def _card_call(
    bot: BotClient, seqs: Sequencers, card_id: str, t0: int, method: str, path: str, body: Any
) -> None:
    """One CardKit op; a sequence rejected as stale (another writer, clock step) is bumped once."""
    for attempt in (1, 2):
        body["sequence"] = seqs.next(card_id, t0)
        try:
            await bot.call(method, f"/open-apis/cardkit/v1/cards/{card_id}{path}", json=body)
            return
        except FeishuError as exc:
            if exc.code != CARD_SEQUENCE or attempt == 2:
                raise
            seqs.next(card_id, t0 - 60_000)  # jump a minute ahead of anything used before


async def _close_card(bot: BotClient, seqs: Sequencers, item: Item, checkpoint: Checkpoint) -> None:
    p = item.payload
    card_id, t0, text = str(p["card_id"]), int(p["t0"]), str(p["text"])
    if "footer" in p:
        # The card's final form in one full update: text, footer, New conversation (or no
        # button on an earlier part), streaming off. It also settles a card left behind.
        new = p.get("new") if isinstance(p.get("new"), dict) else None
        card = controls.final_card(text, str(p.get("footer") or "") or None, new)
        data = json.dumps(card, ensure_ascii=False)
        await _card_call(
            bot, seqs, card_id, t0, "PUT", "", {"card": {"type": "card_json", "data": data}}
        )
        p["closed"] = True
        seqs.forget(card_id)
        return
    if not p.get("content_done"):
        try:
            await _card_call(
                bot, seqs, card_id, t0, "PUT", f"/elements/{ELEMENT_ID}/content", {"content": text}
            )
        except FeishuError as exc:
            if exc.code != STREAMING_CLOSED:
                raise
            # Streaming already ended (auto-closed after 10 min, or by an attempt before a
            # crash): replace the whole card with its final form instead.
            card = streaming_card(text)
            card["config"].update(streaming_mode=False, summary={"content": summary_of(text)})
            data = json.dumps(card, ensure_ascii=False)
            await _card_call(
                bot, seqs, card_id, t0, "PUT", "", {"card": {"type": "card_json", "data": data}}
            )
            p["closed"] = True
        p["content_done"] = True
        await checkpoint()
    if not p.get("closed"):
        settings = {"config": {"streaming_mode": False, "summary": {"content": summary_of(text)}}}
        await _card_call(
            bot, seqs, card_id, t0, "PATCH", "/settings", {"settings": json.dumps(settings)}
        )
        p["closed"] = True
    seqs.forget(card_id)

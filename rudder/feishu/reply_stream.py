"""One run's reply in Feishu: typing indicator, streaming card or plain text, and the ending.

Every step that changes what people see is an outbox row with a key derived from (run, kind,
part), so running this again for the same run — after a crash, or when a restart finds the run's
`run` row still pending — repeats nothing that already happened. Intermediate card frames are the
exception: each carries the full text so far and the final update replaces them, so a lost frame
is invisible and not worth a database write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rudder import texts
from rudder.db.models import Conversation, Integration, Message, Run, utcnow
from rudder.domain import activity
from rudder.feishu import card_controls as controls
from rudder.feishu import handoff, handoff_mentions, outbox
from rudder.feishu import reply_calls as calls
from rudder.feishu.chunking import CARD_BUDGET, TEXT_BUDGET, split_text
from rudder.feishu.errors import CARD_SEQUENCE, FeishuError
from rudder.feishu.outbox import Item, idempotency_uuid
from rudder.feishu.regions import Region
from rudder.live import conversation_topic
from rudder.media import send as media_send
from rudder.run_views import message_view

if TYPE_CHECKING:
    from rudder.feishu.outbound import Outbound

log = logging.getLogger(__name__)

# ≤ 10 CardKit ops per second per card (reference §6.6): frames at most 8/s leave room for the
# two closing ops (final content, streaming off) inside any one-second window.
FRAME_INTERVAL_S = 0.125
REASON_MAX = 500
# A reply started when its run was queued learns of a cancellation before the run started (which
# the executor does not announce) by looking at the run this often.
QUEUED_CHECK_S = 2.0


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    integration_id: str
    org_id: str
    region: Region
    style: str  # streaming_card | plain_text
    chat_id: str
    reply_to: str | None  # the user's Feishu message id
    reply_message_id: str | None  # our assistant message (None until the run has started)
    conversation_id: str
    in_thread: bool = False  # the conversation is a topic: every reply stays inside it


@dataclass(frozen=True, slots=True)
class Ending:
    status: str  # succeeded | failed | cancelled
    text: str
    error: str | None


async def load_target(ob: Outbound, run_id: str) -> ReplyTarget | None:
    async with ob.services.sessions() as session:
        run = await session.get(Run, run_id)
        conv = await session.get(Conversation, run.conversation_id) if run else None
        if run is None or conv is None or not conv.integration_id or not conv.external_chat_id:
            return None
        integration = await session.get(Integration, conv.integration_id)
        if integration is None:
            return None
        trigger = (
            await session.get(Message, run.trigger_message_id) if run.trigger_message_id else None
        )
        return ReplyTarget(
            integration_id=integration.id,
            org_id=integration.org_id,
            region=Region(integration.region),
            style=integration.reply_style or "streaming_card",
            chat_id=conv.external_chat_id,
            reply_to=trigger.external_message_id if trigger else None,
            reply_message_id=run.reply_message_id,
            conversation_id=conv.id,
            in_thread=conv.external_thread_id is not None,
        )


# Failure reasons Rudder itself wrote for people; any other reason stays inside Rudder.
SHOWN_REASONS = frozenset({texts.AGENT_PAUSED, texts.RUN_INTERRUPTED})


def reference(run_id: str) -> str:
    """The short reference a Feishu user can quote: the start of the run's id (on its page)."""
    return run_id[:8]


def state_line(ending: Ending, run_id: str = "") -> str | None:
    """The run's state when it did not succeed, as people read it (None when it did).

    A failure shows its reason only when it is one of Rudder's own sentences; anything else
    (a runtime's error, a database error) shows a generic line with the run's reference.
    """
    if ending.status == "cancelled":
        return texts.REPLY_STOPPED
    if ending.status == "failed":
        if ending.error in SHOWN_REASONS:
            return texts.REPLY_FAILED.format(reason=ending.error[:REASON_MAX])
        return texts.REPLY_FAILED_GENERIC.format(ref=reference(run_id) or "?")
    return None


def with_state(ending: Ending, run_id: str = "") -> str:
    """The text people see at the end of a plain-text reply: the reply, plus the run's state
    when it did not succeed."""
    state = state_line(ending, run_id)
    if state is None:
        return ending.text or texts.REPLY_EMPTY
    return f"{ending.text}\n\n{state}" if ending.text else state


def card_footer(ending: Ending, run_id: str = "") -> str:
    """The compact footer of a reply's last card: stopped, failed with a short reason, or done."""
    return state_line(ending, run_id) or texts.CARD_FOOTER_DONE


def card_text(ending: Ending, run_id: str = "") -> str:
    """What a person reads on a one-card reply once it ended: the text, then the footer."""
    body = ending.text or ("" if ending.status != "succeeded" else texts.REPLY_EMPTY)
    footer = card_footer(ending, run_id)
    return f"{body}\n{footer}" if body else footer


class RunReply:
    def __init__(
        self,
        ob: Outbound,
        run_id: str,
        target: ReplyTarget | None = None,
        *,
        resumed: bool = False,
    ) -> None:
        self.ob = ob
        self.run_id = run_id
        self.target = target
        self.resumed = resumed  # taken up after a crash: its first rows may have been sent
        self.started = False  # the executor announced the run (start, text or end)
        self.text = ""
        self.ending: Ending | None = None
        self.changed = asyncio.Event()
        self.cards: dict[int, Item] = {}
        self.closed: set[int] = set()
        self.shown: dict[int, str] = {}
        self.failed: list[Item] = []
        self._live_cards = True
        self._frame_at = 0.0
        self._prepared: dict[str, Item] = {}
        self._card_out = asyncio.Event()
        self.sent_ids: list[str] = []  # Feishu ids of the reply's messages, in order

    def feed(self, phase: str, text: str, status: str, error: str | None) -> None:
        self.started = True
        if phase in ("text", "end"):
            self.text = text
        if phase == "end":
            self.ending = Ending(status, text, error)
        self.changed.set()

    async def run(self) -> None:
        target = self.target or await load_target(self.ob, self.run_id)
        if target is None:
            self.ob.no_target.add(self.run_id)  # its chat or bot is gone: nothing to re-drive
            return
        ledger = await self._prepare(target)
        typing = asyncio.create_task(self._typing_on(target))
        try:
            if target.style != "plain_text":
                await self._stream(target)
            self._card_out.set()
            while self.ending is None:
                await self._wait_change()
                self.changed.clear()
            plan = await self._plan(self.ending)
            await self._finish(target, self._as_shown(target, self.ending, plan))
            await media_send.send_all(self, target)  # the agent's files, after its text
        finally:
            self._card_out.set()
            typing_item = await typing
        if typing_item is not None:
            await self._send(
                target,
                calls.TYPING_OFF,
                typing_item.target,
                {"reaction_id": typing_item.payload.get("reaction_id")},
                "typing_off",
            )
        await self._report(target)
        if plan is not None:
            # Before the ledger is marked: a restart in between drives this reply again, and
            # the hand-off happens once (handoff.hand_over is idempotent).
            handing = self.sent_ids[-1] if self.sent_ids else None
            try:
                await handoff.hand_over(self.ob, self.run_id, plan, target, handing)
            except Exception:
                log.exception("run %s: handing the turn over failed", self.run_id)
        await self.ob.mark_sent(ledger)

    async def _plan(self, ending: Ending) -> handoff.Plan | None:
        try:
            return await handoff.plan(self.ob.services, self.run_id, ending)
        except Exception:
            # A hand-off that can't be worked out must not cost the reply itself.
            log.exception("run %s: its hand-off could not be worked out", self.run_id)
            return None

    @staticmethod
    def _as_shown(target: ReplyTarget, ending: Ending, plan: handoff.Plan | None) -> Ending:
        """The ending as Feishu gets it: mentions of bots in the chat are real mentions."""
        if plan is None or not plan.bots:
            return ending
        card = target.style != "plain_text"
        text = handoff_mentions.render(ending.text, plan.bots, card=card)
        return Ending(ending.status, text, ending.error)

    async def _wait_change(self) -> None:
        """Wait for news from the executor. Until the run has started, also look at the run now
        and then: a run cancelled while queued never starts, and nobody would say so."""
        while not self.started:
            try:
                async with asyncio.timeout(QUEUED_CHECK_S):
                    await self.changed.wait()
                return
            except TimeoutError:
                ending = await self.ob.ending_of(self.run_id)
                if ending is not None and not self.started:
                    self.feed("end", ending.text, ending.status, ending.error)
        await self.changed.wait()

    # -- sending ---------------------------------------------------------------------------------

    async def _prepare(self, target: ReplyTarget) -> Item:
        """Write the reply's first rows (ledger, typing, card) in one go; return the ledger.

        The ledger comes first in the same transaction, so a restart always finds a reply whose
        card may already be visible.
        """
        specs = [self._spec(target, calls.RUN, target.chat_id, {}, "run")]
        if target.reply_to:
            specs.append(self._spec(target, calls.TYPING, target.reply_to, {}, "typing"))
        if target.style != "plain_text":
            payload = self._message_payload(target, text="", part=0, stop=self._value(target))
            to = target.reply_to or target.chat_id
            specs.append(self._spec(target, calls.CARD, to, payload, "card", "0"))
        items = await outbox.enqueue_many(self.ob.services.sessions, specs)
        self._prepared = {item.uuid: item for item in items[1:]}
        return items[0]

    def _spec(
        self, target: ReplyTarget, kind: str, to: str, payload: dict[str, Any], *key: str
    ) -> outbox.Spec:
        return outbox.Spec(
            target.integration_id,
            self.run_id,
            kind,
            to,
            payload,
            idempotency_uuid(self.run_id, *key),
        )

    async def _send(
        self,
        target: ReplyTarget,
        kind: str,
        to: str,
        payload: dict[str, Any],
        *key: str,
        deliver: bool = True,
    ) -> Item:
        prepared = self._prepared.pop(idempotency_uuid(self.run_id, *key), None)
        if prepared is not None:
            return await self.ob.deliver(prepared) if prepared.status == "pending" else prepared
        return await self.ob.send(
            integration_id=target.integration_id,
            run_id=self.run_id,
            kind=kind,
            target=to,
            payload=payload,
            key=idempotency_uuid(self.run_id, *key),
            deliver=deliver,
        )

    async def _typing_on(self, target: ReplyTarget) -> Item | None:
        if not target.reply_to:
            return None
        # Cosmetic next to the card: it waits until the card is out, so the run's start and the
        # card do not queue behind its calls and writes.
        await self._card_out.wait()
        prepared = self._prepared.get(idempotency_uuid(self.run_id, "typing"))
        if self.resumed and prepared is not None and prepared.status == "pending":
            prepared.payload[calls.ADOPT] = True  # the process that died may have added it
        item = await self._send(target, calls.TYPING, target.reply_to, {}, "typing")
        return item if item.status == "sent" else None

    def _message_payload(self, target: ReplyTarget, **extra: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"chat_id": target.chat_id, "reply_to": target.reply_to}
        if target.in_thread:
            base["in_thread"] = True
        return {**base, **extra}

    def _value(self, target: ReplyTarget, action: str = controls.STOP) -> dict[str, str]:
        """A signed button value for this run (card_controls)."""
        key = self.ob.services.box.key
        return controls.button_value(key, action, self.run_id, target.integration_id)

    async def _card(self, target: ReplyTarget, part: int, text: str) -> Item | None:
        item = self.cards.get(part)
        if item is None:
            payload = self._message_payload(target, text=text, part=part, stop=self._value(target))
            to = target.reply_to or target.chat_id
            item = await self._send(target, calls.CARD, to, payload, "card", str(part))
            self.cards[part] = item
            self.shown[part] = str(item.payload.get("text", ""))
            if item.status == "sent" and item.feishu_message_id:
                self.sent_ids.append(item.feishu_message_id)
        return item if item.status == "sent" else None

    async def _close(
        self, target: ReplyTarget, part: int, content: str, footer: str | None = None
    ) -> None:
        """Give card `part` its final form; else post it as text. The reply's last card gets
        the `footer` and the New conversation button; earlier parts only lose Stop."""
        if part in self.closed:
            return
        card = await self._card(target, part, content)
        if card is not None:
            final = await self._send(
                target,
                calls.CARD_FINAL,
                card.target,
                self._final_payload(target, card, content, footer),
                "final",
                str(part),
            )
            if final.status == "sent":
                self.closed.add(part)
                return
        # Card errors (size 200860, tables 230099/11310, …) must not lose the text: peers did
        # (peers.md §3.7), so this part goes out as plain text instead.
        text = f"{content}\n\n{footer}" if footer and footer != texts.CARD_FOOTER_DONE else content
        await self._text(target, "card_text", part, text or footer or texts.REPLY_EMPTY)
        self.closed.add(part)
        if card is not None:
            # The card itself must not keep showing work (and Stop): it says where its text went.
            moved = self._final_payload(target, card, texts.CARD_MOVED, None)
            await self._send(target, calls.CARD_FINAL, card.target, moved, "settle", str(part))

    def _final_payload(
        self, target: ReplyTarget, card: Item, text: str, footer: str | None
    ) -> dict[str, Any]:
        return {
            "card_id": card.payload["card_id"],
            "t0": card.payload["t0"],
            "text": text,
            "footer": footer or "",
            "new": self._value(target, controls.NEW) if footer is not None else None,
        }

    async def _text(self, target: ReplyTarget, scope: str, part: int, content: str) -> None:
        payload = self._message_payload(target, msg_type="text", content={"text": content})
        item = await self._send(
            target, calls.TEXT, target.reply_to or target.chat_id, payload, scope, str(part)
        )
        if item.status != "sent":
            self.failed.append(item)
        elif item.feishu_message_id:
            self.sent_ids.append(item.feishu_message_id)

    # -- streaming card --------------------------------------------------------------------------

    async def _stream(self, target: ReplyTarget) -> None:
        await self._card(target, 0, "")  # the reply appears at once, before the first token
        self._card_out.set()
        while self.ending is None:
            await self._wait_change()
            wait = FRAME_INTERVAL_S - (time.monotonic() - self._frame_at)
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce: deltas arriving meanwhile share a frame
            self.changed.clear()
            if self.ending is not None:
                await self._early_frame(target)
                return
            parts = split_text(self.text, CARD_BUDGET)
            for part in range(len(parts) - 1):
                await self._close(target, part, parts[part])  # overflowed parts never change
            last = len(parts) - 1
            card = await self._card(target, last, parts[last])
            if card is not None and self.shown.get(last) != parts[last]:
                await self._frame(target, card, last, parts[last])

    async def _early_frame(self, target: ReplyTarget) -> None:
        """The run ended before its text was streamed: show the text now, before the final
        update's row is written (one frame, within the card's op budget)."""
        card = self.cards.get(0)
        if card is None or card.status != "sent" or self.shown.get(0) or not self.text:
            return
        parts = split_text(self.text, CARD_BUDGET)
        if len(parts) == 1:
            await self._frame(target, card, 0, parts[0])

    async def _frame(self, target: ReplyTarget, card: Item, part: int, text: str) -> None:
        if not self._live_cards:
            return
        self._frame_at = time.monotonic()
        card_id, t0 = str(card.payload["card_id"]), int(card.payload["t0"])
        try:
            bot = await self.ob.bot(target.integration_id)
            seq = self.ob.seqs.next(card_id, t0)
            # Under pressure a frame is skipped rather than queued: frames coalesce.
            if await bot.stream_card_text(
                card_id, controls.ELEMENT_ID, text, seq, skip_if_busy=True
            ):
                self.shown[part] = text
        except FeishuError as exc:
            if exc.retryable or exc.code == CARD_SEQUENCE:
                return  # the next frame carries the full text anyway
            log.warning(
                "run %s: streaming stopped (%s); the final update follows", self.run_id, exc
            )
            self._live_cards = False
        except Exception:
            log.exception("run %s: streaming stopped; the final update follows", self.run_id)
            self._live_cards = False

    # -- the end ---------------------------------------------------------------------------------

    async def _finish(self, target: ReplyTarget, ending: Ending) -> None:
        if ending.status == "failed" and ending.error not in SHOWN_REASONS:
            log.warning(
                "run %s (reference %s) failed: %s",
                self.run_id, reference(self.run_id), (ending.error or "?")[:REASON_MAX],
            )  # fmt: skip
        if target.style == "plain_text":
            for part, content in enumerate(
                split_text(with_state(ending, self.run_id), TEXT_BUDGET)
            ):
                await self._text(target, "text", part, content)
            return
        parts = split_text(ending.text, CARD_BUDGET)
        if ending.status == "succeeded" and not ending.text:
            parts = [texts.REPLY_EMPTY]
        # The footer and the buttons go on the last card; the budget leaves room for them.
        footer = card_footer(ending, self.run_id)
        for part, content in enumerate(parts):
            await self._close(target, part, content, footer if part == len(parts) - 1 else None)

    async def _report(self, target: ReplyTarget) -> None:
        """After the last attempt a reply that did not arrive is visible in Rudder, never silent."""
        if not self.failed:
            return
        detail = self.failed[-1].last_error or "unknown error"
        error = texts.REPLY_DELIVERY_FAILED.format(product=target.region.label, detail=detail)
        async with self.ob.services.sessions() as session, session.begin():
            reply_id = target.reply_message_id
            if reply_id is None:  # the reply started before its run (and its message) did
                run = await session.get(Run, self.run_id)
                reply_id = run.reply_message_id if run is not None else None
            message = await session.get(Message, reply_id) if reply_id else None
            if message is not None:
                message.status, message.error, message.updated_at = "failed", error, utcnow()
            activity.record(
                session,
                org_id=target.org_id,
                actor="system",
                action="feishu.reply_failed",
                entity_type="run",
                entity_id=self.run_id,
                details={"error": detail, "outbox_ids": [i.id for i in self.failed]},
            )
            view = message_view(message) if message is not None else None
        if view is not None:
            self.ob.services.live.publish(
                conversation_topic(target.conversation_id), "message.updated", view
            )

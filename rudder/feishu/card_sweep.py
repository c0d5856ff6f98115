"""No reply card keeps showing work after its run ended.

A card is created in streaming mode with Stop; its final update turns it into the finished
card (footer, New conversation). When that update never lands — it failed for good, the reply
task crashed after the run ended, a process died and its reply gave up — the card would show a
run at work forever (a peer's users saw exactly that, issue 24). `settle` finds such cards: a
`card` row that was sent, for a run that is final and whose reply is not in progress, with no
final update sent or pending for that card; it gives each one its final form, once (outbox key
`sweep`; the reply's own fallback tried `settle` right away). A card whose text went out as a
plain message instead says so rather than repeating it. It runs at start-up and with every
sweep (rudder/sweeper.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from rudder import texts
from rudder.db.models import Message, OutboxItem, Run, utcnow
from rudder.domain.runs import FINAL_STATUSES
from rudder.feishu import card_controls as controls
from rudder.feishu import outbox
from rudder.feishu import reply_calls as calls
from rudder.feishu.chunking import CARD_BUDGET, split_text
from rudder.feishu.outbox import Item, idempotency_uuid
from rudder.feishu.reply_stream import Ending, card_footer

if TYPE_CHECKING:
    from rudder.feishu.outbound import Outbound

log = logging.getLogger(__name__)

# Cards older than this are left alone: a CardKit entity lives 14 days (reference §6.6), and
# replies older than a day are not re-driven either (outbound.REPLY_HORIZON).
HORIZON = timedelta(days=1)
BATCH = 200


async def unsettled(ob: Outbound, older_than_s: float) -> list[tuple[Item, Run, str, bool]]:
    """(card row, its run, the reply's text, whether the card's text went out as a message)
    for every card left showing work."""
    now = utcnow()
    async with ob.services.sessions() as session:
        rows = (
            await session.execute(
                select(OutboxItem, Run)
                .join(Run, Run.id == OutboxItem.run_id)
                .where(
                    OutboxItem.kind == calls.CARD,
                    OutboxItem.status == "sent",
                    OutboxItem.created_at > now - HORIZON,
                    Run.status.in_(FINAL_STATUSES),
                    Run.finished_at < now - timedelta(seconds=older_than_s),
                )
                .order_by(OutboxItem.created_at)
                .limit(BATCH)
            )
        ).all()
        run_ids = {run.id for _, run in rows if run.id not in ob.replies_in_progress()}
        if not run_ids:
            return []
        others = await session.scalars(
            select(OutboxItem).where(
                OutboxItem.run_id.in_(run_ids),
                OutboxItem.kind.in_((calls.RUN, calls.CARD_FINAL, calls.TEXT)),
            )
        )
        busy: set[str] = set()  # runs whose reply is still pending (re-driven elsewhere)
        finished: set[tuple[str, str]] = set()  # (run, card_id) with a final sent or pending
        moved: set[str] = set()  # uuids of a card part's text sent as a message instead
        for other in others:
            assert other.run_id is not None
            if other.kind == calls.RUN and other.status == "pending":
                busy.add(other.run_id)
            elif other.kind == calls.CARD_FINAL and other.status in ("sent", "pending"):
                finished.add((other.run_id, str((other.payload or {}).get("card_id"))))
            elif other.kind == calls.TEXT and other.status == "sent":
                moved.add(other.idempotency_uuid)
        found: list[tuple[Item, Run, str, bool]] = []
        for row, run in rows:
            card_id = str((row.payload or {}).get("card_id"))
            if run.id not in run_ids or run.id in busy or (run.id, card_id) in finished:
                continue
            message = (
                await session.get(Message, run.reply_message_id) if run.reply_message_id else None
            )
            part = str((row.payload or {}).get("part") or 0)
            as_text = idempotency_uuid(run.id, "card_text", part) in moved
            found.append((Item.of(row), run, message.body if message else "", as_text))
        return found


async def settle(ob: Outbound, older_than_s: float) -> int:
    """Give every card left showing work its final form; returns how many were taken up."""
    taken = 0
    for card, run, body, as_text in await unsettled(ob, older_than_s):
        if not card.payload.get("card_id") or not card.payload.get("t0") or not card.run_id:
            continue
        part = int(card.payload.get("part") or 0)
        parts = split_text(body, CARD_BUDGET)
        last = part >= len(parts) - 1
        ending = Ending(run.status, body, run.error)
        text = parts[part] if part < len(parts) else ""
        footer = card_footer(ending, run.id) if last and not as_text else None
        if as_text:
            text, last = texts.CARD_MOVED, False
        key = ob.services.box.key
        payload = {
            "card_id": card.payload["card_id"],
            "t0": card.payload["t0"],
            "text": text,
            "footer": footer or "",
            "new": controls.button_value(key, controls.NEW, run.id, card.integration_id)
            if last
            else None,
        }
        item = await outbox.enqueue(
            ob.services.sessions,
            integration_id=card.integration_id,
            run_id=card.run_id,
            kind=calls.CARD_FINAL,
            target=card.target,
            payload=payload,
            key=idempotency_uuid(card.run_id, "sweep", str(part)),
        )
        if item.status != "pending":
            continue  # settled (or tried for good) before
        taken += 1
        log.warning(
            "run %s: card %s still showed work after the run ended; settling it", run.id, part
        )
        ob.spawn_delivery(item)
    return taken

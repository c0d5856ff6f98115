"""Application services that touch the database and the run queue together."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, Attachment, Conversation, Message, Run
from rudder.domain import budgets
from rudder.domain import conversations as convs
from rudder.domain import runs as runs_domain
from rudder.live import conversation_topic, org_topic
from rudder.media import attachments as media_attachments
from rudder.run_views import message_view, run_view
from rudder.services import Services


async def posted_message(
    session: AsyncSession, conv: Conversation, external_message_id: str
) -> Message | None:
    """The user message already posted in `conv` for this external (Feishu) message, if any.

    An event routed a second time (re-pushed under another event id, or routed again after a
    restart) must not post the same message, and start its run, twice.
    """
    found: Message | None = await session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conv.id,
            Message.external_message_id == external_message_id,
            Message.role == "user",
        )
        .limit(1)
    )
    return found


async def post_user_message(
    services: Services,
    session: AsyncSession,
    conv: Conversation,
    body: str,
    *,
    author_user_id: str | None,
    source: str = "local",
    external_sender_id: str | None = None,
    external_message_id: str | None = None,
    attachments: Sequence[Attachment] = (),
    handed_from: Run | None = None,
) -> tuple[Message, Run]:
    """Append the user's message (with its attachments), queue a run of the conversation's
    agent, and commit. With `handed_from`, the message is another agent's reply handing the
    turn over (rudder/feishu/handoff.py): it is that agent's, and the run is linked to it."""
    message = await convs.append_message(
        session,
        conv,
        role="user",
        body=body,
        author_user_id=author_user_id,
        author_agent_id=handed_from.agent_id if handed_from is not None else None,
        external_sender_id=external_sender_id,
        external_message_id=external_message_id,
    )
    if attachments:
        await session.flush()
        media_attachments.attach(session, conv, message, attachments)
    run = runs_domain.new_run(conv, message, source)
    if handed_from is not None:
        run.handed_from_run_id = handed_from.id
        run.handoff_root_id = handed_from.handoff_root_id or handed_from.id
        run.handoff_hop = handed_from.handoff_hop + 1
    agent = await session.get(Agent, conv.agent_id)
    if agent is not None and budgets.is_budget_paused(agent):
        # Over its budget: the message is kept and its run held until the agent resumes.
        run.status = budgets.HELD
    session.add(run)
    await session.flush()
    message.run_id = run.id
    await session.commit()
    topic = conversation_topic(conv.id)
    view = message_view(message)
    if attachments:
        view["attachments"] = [media_attachments.view(a) for a in attachments]
    services.live.publish(topic, "message.created", view)
    services.live.publish(topic, "run.updated", run_view(run))
    services.live.publish(
        org_topic(conv.org_id), "conversation.updated", {"conversation_id": conv.id}
    )
    if run.status != budgets.HELD:
        await services.runs.submit(run.id, conv.id)
    return message, run


async def cancel_runs(services: Services, session: AsyncSession, runs: list[Run]) -> list[str]:
    """Request cancellation; queued runs end at once, running ones are stopped where they run."""
    cancelled: list[str] = []
    for run in runs:
        if runs_domain.request_cancel(run):
            cancelled.append(run.id)
    await session.commit()
    for run in runs:
        if run.id in cancelled:
            if run.status == "cancelled":
                services.live.publish(
                    conversation_topic(run.conversation_id), "run.updated", run_view(run)
                )
            await services.runs.cancel(run.id)
    return cancelled

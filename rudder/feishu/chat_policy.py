"""How a bot behaves in each Feishu group: answer at all, need a mention, who may address it,
and quiet mode. One row per (bot, chat), and a "*" row for the groups without one.

Without any row a bot answers in every group it is added to, only when @-mentioned (or when a
person replies to its own message), only to people bound to a member, and it may send binding
prompts and notices there: the behaviour of a bot before policies existed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import Integration, Membership, User
from rudder.db.models_policy import EVERY_GROUP, ChatPolicy
from rudder.domain import activity
from rudder.domain.errors import Invalid, NotFound

AUDIENCES = ("members", "tenant")
# Feishu chat ids are `oc_` and letters/digits (reference §4); "*" is the bot's default row.
_CHAT_ID = re.compile(r"^oc_[A-Za-z0-9_-]{1,96}$")


@dataclass(frozen=True, slots=True)
class Policy:
    answers: bool = True
    require_mention: bool = True
    audience: str = "members"
    default_user_id: str | None = None
    quiet: bool = False
    # Group context (group_context.py): off by default; the bounds apply when it is on.
    context: bool = False
    context_messages: int = 20
    context_hours: int = 24
    context_chars: int = 8000
    # Where it came from: "chat" (this group's row), "bot" (the "*" row) or "default".
    source: str = "default"


DEFAULT = Policy()
FIELDS = (
    "answers",
    "require_mention",
    "audience",
    "default_user_id",
    "quiet",
    "context",
    "context_messages",
    "context_hours",
    "context_chars",
)
# The bounds a group's context may be given: one history page (50, Feishu's page size limit),
# a month, and 32 000 characters (a large prompt stays large, not unbounded).
CONTEXT_LIMITS = {
    "context_messages": (1, 50),
    "context_hours": (1, 720),
    "context_chars": (200, 32_000),
}


def _policy(row: ChatPolicy, source: str) -> Policy:
    return Policy(
        answers=row.answers,
        require_mention=row.require_mention,
        audience=row.audience,
        default_user_id=row.default_user_id,
        quiet=row.quiet,
        context=row.context,
        context_messages=row.context_messages,
        context_hours=row.context_hours,
        context_chars=row.context_chars,
        source=source,
    )


async def effective(session: AsyncSession, integration_id: str, chat_id: str) -> Policy:
    """The policy that applies to a group message of this bot in this chat."""
    rows = {
        row.chat_id: row
        for row in await session.scalars(
            select(ChatPolicy).where(
                ChatPolicy.integration_id == integration_id,
                ChatPolicy.chat_id.in_([chat_id, EVERY_GROUP]),
            )
        )
    }
    if chat_id in rows:
        return _policy(rows[chat_id], "chat")
    if EVERY_GROUP in rows:
        return _policy(rows[EVERY_GROUP], "bot")
    return DEFAULT


async def rows_of(session: AsyncSession, integration_id: str) -> list[ChatPolicy]:
    return list(
        await session.scalars(
            select(ChatPolicy)
            .where(ChatPolicy.integration_id == integration_id)
            .order_by(ChatPolicy.chat_id)
        )
    )


def check_chat_id(chat_id: str) -> str:
    if chat_id != EVERY_GROUP and not _CHAT_ID.match(chat_id):
        raise Invalid(texts.CHAT_POLICY_BAD_CHAT)
    return chat_id


async def _check_default_user(session: AsyncSession, org_id: str, user_id: str | None) -> None:
    if user_id is None:
        return
    member = await session.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.org_id == org_id,
            Membership.user_id == user_id,
            Membership.status == "active",
        )
    )
    if member is None:
        raise Invalid(texts.CHAT_POLICY_BAD_MEMBER)


async def set_policy(
    session: AsyncSession,
    integration: Integration,
    chat_id: str,
    values: dict[str, Any],
    *,
    actor: str,
) -> ChatPolicy:
    """Create or change the row of `chat_id`; every change is in the activity log."""
    check_chat_id(chat_id)
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise Invalid(f"unknown policy fields: {', '.join(sorted(unknown))}")
    row = await session.scalar(
        select(ChatPolicy).where(
            ChatPolicy.integration_id == integration.id, ChatPolicy.chat_id == chat_id
        )
    )
    before = asdict(_policy(row, "chat")) if row is not None else None
    if row is not None:
        start = _policy(row, "chat")
    elif chat_id == EVERY_GROUP:
        start = DEFAULT
    else:  # a group's first row starts from the bot's default
        start = await effective(session, integration.id, chat_id)
    merged = {field: getattr(start, field) for field in FIELDS} | values
    # Checked whole before anything is written: a refused change leaves the row as it was.
    if merged["audience"] not in AUDIENCES:
        raise Invalid(texts.CHAT_POLICY_BAD_AUDIENCE)
    if merged["audience"] == "members":
        merged["default_user_id"] = None
    elif merged["default_user_id"] is None:
        raise Invalid(texts.CHAT_POLICY_NEEDS_MEMBER)
    await _check_default_user(session, integration.org_id, merged["default_user_id"])
    for field, (low, high) in CONTEXT_LIMITS.items():
        value = merged[field]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(texts.CHAT_POLICY_BAD_CONTEXT.format(field=field, low=low, high=high))
    if row is None:
        row = ChatPolicy(integration_id=integration.id, chat_id=chat_id)
        session.add(row)
    for field, value in merged.items():
        setattr(row, field, value)
    row.updated_by = actor
    await session.flush()
    after = asdict(_policy(row, "chat"))
    activity.record(
        session,
        org_id=integration.org_id,
        actor=actor,
        action="feishu.chat_policy_changed",
        entity_type="integration",
        entity_id=integration.id,
        agent_id=integration.agent_id,
        details={
            "chat_id": chat_id,
            "before": {k: before[k] for k in FIELDS} if before else None,
            "after": {k: after[k] for k in FIELDS},
        },
    )
    return row


async def clear_policy(
    session: AsyncSession, integration: Integration, chat_id: str, *, actor: str
) -> None:
    """The chat goes back to the bot's default ("*" row or the built-in one)."""
    check_chat_id(chat_id)
    row = await session.scalar(
        select(ChatPolicy).where(
            ChatPolicy.integration_id == integration.id, ChatPolicy.chat_id == chat_id
        )
    )
    if row is None:
        raise NotFound("no policy for this chat")
    activity.record(
        session,
        org_id=integration.org_id,
        actor=actor,
        action="feishu.chat_policy_cleared",
        entity_type="integration",
        entity_id=integration.id,
        agent_id=integration.agent_id,
        details={"chat_id": chat_id},
    )
    await session.delete(row)
    await session.flush()


async def default_member(
    session: AsyncSession, integration: Integration, policy: Policy
) -> User | None:
    """The member unbound people act as in a "tenant" group, while still an active member."""
    if policy.audience != "tenant" or policy.default_user_id is None:
        return None
    return await session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            User.id == policy.default_user_id,
            Membership.org_id == integration.org_id,
            Membership.status == "active",
        )
    )

"""Which Rudder member a Feishu user is: one-time binding codes and stored bindings."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.db.models import (
    Agent,
    BindingCode,
    FeishuUserBinding,
    Integration,
    Membership,
    Organization,
    User,
    utcnow,
)
from rudder.domain import activity
from rudder.domain.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

CODE_TTL = timedelta(minutes=15)
# One prompt per sender per 10 minutes: a chatty unbound user must not get a link per message.
# Derived from the stored codes, so it holds across restarts and processes.
PROMPT_EVERY = timedelta(minutes=10)
# Senders the Members page offers for binding: seen this recently (bound ones always show).
SEEN_WINDOW = timedelta(days=30)


# The confirmation code: 8 characters of an alphabet without look-alikes (0/O, 1/I/L), 40 bits,
# typed by hand from the private message. A guess costs one of MAX_ATTEMPTS tries of the link.
CONFIRM_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CONFIRM_LENGTH = 8
MAX_ATTEMPTS = 5


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_requests"


def product(region: str | None) -> str:
    """The product a person's bot is on, as they know it: "Feishu" or "Lark"."""
    return "Lark" if region == "lark" else "Feishu"


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_confirmation(code: str) -> str:
    """What the person typed, as issued: case, blanks and dashes don't matter."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def confirm_hash(link: str, confirmation: str) -> str:
    # Bound to the link code, which is stored only hashed: a copy of the database can't be
    # brute-forced for the short confirmation code without the link.
    return hashlib.sha256(f"{link}:{normalize_confirmation(confirmation)}".encode()).hexdigest()


def display_confirmation(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True, slots=True)
class Issued:
    """A binding prompt's two secrets: the link's code and the confirmation code."""

    link: str
    confirmation: str  # as shown to the person, e.g. "K7QM-2XPD"


async def bound_user(
    session: AsyncSession, integration: Integration, open_id: str | None
) -> User | None:
    """The active member this Feishu user is bound to, or None."""
    if not open_id:
        return None
    row = await session.execute(
        select(User)
        .join(FeishuUserBinding, FeishuUserBinding.user_id == User.id)
        .join(
            Membership, (Membership.user_id == User.id) & (Membership.org_id == integration.org_id)
        )
        .where(
            FeishuUserBinding.integration_id == integration.id,
            FeishuUserBinding.open_id == open_id,
            Membership.status == "active",
        )
    )
    return row.scalars().first()


async def recent_prompt(
    session: AsyncSession, integration: Integration, open_id: str
) -> datetime | None:
    """When this sender was last sent a still-usable link, if within PROMPT_EVERY."""
    now = utcnow()
    issued: datetime | None = await session.scalar(
        select(func.max(BindingCode.created_at)).where(
            BindingCode.integration_id == integration.id,
            BindingCode.open_id == open_id,
            BindingCode.used_at.is_(None),
            BindingCode.attempts < MAX_ATTEMPTS,
            BindingCode.expires_at > now,
            BindingCode.created_at > now - PROMPT_EVERY,
        )
    )
    return issued


async def issue_code(
    session: AsyncSession,
    integration: Integration,
    open_id: str,
    union_id: str | None,
    display_name: str | None = None,
) -> Issued:
    # 24 random bytes: not guessable; only the hash is stored, so a leaked database can't bind.
    link = secrets.token_urlsafe(24)
    confirmation = "".join(secrets.choice(CONFIRM_ALPHABET) for _ in range(CONFIRM_LENGTH))
    session.add(
        BindingCode(
            org_id=integration.org_id,
            integration_id=integration.id,
            code_hash=code_hash(link),
            confirm_hash=confirm_hash(link, confirmation),
            open_id=open_id,
            union_id=union_id,
            display_name=display_name,
            expires_at=utcnow() + CODE_TTL,
        )
    )
    await session.flush()
    return Issued(link, display_confirmation(confirmation))


async def forget_code(session: AsyncSession, link: str) -> None:
    """Void a link that never reached its sender, so the next message gets a new prompt."""
    await session.execute(
        update(BindingCode)
        .where(BindingCode.code_hash == code_hash(link), BindingCode.used_at.is_(None))
        .values(used_at=utcnow(), attempts=MAX_ATTEMPTS)
    )


async def bind(
    session: AsyncSession,
    integration: Integration,
    open_id: str,
    union_id: str | None,
    user_id: str,
    actor: str,
) -> FeishuUserBinding:
    member = await session.scalar(
        select(Membership).where(
            Membership.org_id == integration.org_id,
            Membership.user_id == user_id,
            Membership.status == "active",
        )
    )
    if member is None:
        raise Forbidden(texts.FEISHU_BINDING_NOT_MEMBER)
    row = await session.scalar(
        select(FeishuUserBinding).where(
            FeishuUserBinding.integration_id == integration.id, FeishuUserBinding.open_id == open_id
        )
    )
    if row is None:
        row = FeishuUserBinding(
            org_id=integration.org_id,
            integration_id=integration.id,
            open_id=open_id,
            union_id=union_id,
            user_id=user_id,
        )
        session.add(row)
    else:
        row.user_id = user_id
    # Links still out for this sender would rebind it to whoever opens them next.
    await session.execute(
        update(BindingCode)
        .where(
            BindingCode.integration_id == integration.id,
            BindingCode.open_id == open_id,
            BindingCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    activity.record(
        session,
        org_id=integration.org_id,
        actor=actor,
        action="feishu.user_bound",
        entity_type="integration",
        entity_id=integration.id,
        details={"open_id": open_id, "user_id": user_id},
    )
    await session.flush()
    return row


async def _already(
    session: AsyncSession, integration_id: str, region: str, open_id: str, user_id: str
) -> Conflict:
    """Why a used link can't be used again: linked to this member already, or to someone else."""
    holder = await session.scalar(
        select(FeishuUserBinding.user_id).where(
            FeishuUserBinding.integration_id == integration_id,
            FeishuUserBinding.open_id == open_id,
        )
    )
    name = product(region)
    if holder == user_id:
        return Conflict(texts.FEISHU_BINDING_ALREADY_LINKED.format(product=name))
    return Conflict(texts.FEISHU_BINDING_ALREADY_USED.format(product=name))


async def redeem(
    session: AsyncSession, link: str, confirmation: str, user_id: str
) -> tuple[FeishuUserBinding, Integration]:
    """Single use, 15 minutes, MAX_ATTEMPTS tries, only for a member of the bot's organization,
    and only with the confirmation code from the sender's private message.

    The link is claimed by one conditional UPDATE (unused, unexpired, tries left) whose row count
    says who won, in the same transaction as the binding it makes: of any number of concurrent
    confirmations exactly one binds; the others get 409 (on SQLite the UPDATE waits for the
    writer lock, on PostgreSQL for the row lock, and then sees the link used). A wrong code uses
    up a try and is committed here, before the error is raised.
    """
    row = await session.scalar(select(BindingCode).where(BindingCode.code_hash == code_hash(link)))
    integration = await session.get(Integration, row.integration_id) if row is not None else None
    if row is None or integration is None:
        raise NotFound(texts.FEISHU_BINDING_INVALID)
    name = product(integration.region)
    seen = (integration.id, integration.region, row.open_id)
    if row.used_at is not None:
        raise await _already(session, *seen, user_id)
    now = utcnow()
    if row.expires_at <= now or row.confirm_hash is None:
        raise NotFound(texts.FEISHU_BINDING_INVALID)
    if row.attempts >= MAX_ATTEMPTS:
        raise TooManyAttempts(texts.FEISHU_BINDING_TOO_MANY.format(product=name))
    member = await session.scalar(
        select(Membership).where(
            Membership.org_id == integration.org_id,
            Membership.user_id == user_id,
            Membership.status == "active",
        )
    )
    if member is None:
        raise Forbidden(texts.FEISHU_BINDING_NOT_MEMBER)
    if not normalize_confirmation(confirmation):
        raise Invalid(texts.FEISHU_BINDING_CODE_MISSING.format(product=name))
    right = hmac.compare_digest(row.confirm_hash, confirm_hash(link, confirmation))
    tried = row.attempts
    # Binding changes of one bot are serialised (PostgreSQL): two links of one sender redeemed
    # at once must not both insert its binding. Taken before the claim, as routing takes it
    # before issuing a code, so the two never wait on each other in opposite orders.
    await session.get(Integration, integration.id, with_for_update=True, populate_existing=True)
    claim = (
        update(BindingCode)
        .where(
            BindingCode.id == row.id,
            BindingCode.used_at.is_(None),
            BindingCode.attempts < MAX_ATTEMPTS,
            BindingCode.expires_at > now,
        )
        .values(attempts=BindingCode.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if right:
        claim = claim.values(used_at=now)
    result = await session.execute(claim)
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        # Someone else's confirmation (or guess) got there first; it has committed by now.
        fresh = (
            await session.execute(
                select(BindingCode.used_at, BindingCode.attempts).where(BindingCode.id == row.id)
            )
        ).first()
        await session.rollback()
        if fresh is not None and fresh.used_at is not None:
            raise await _already(session, *seen, user_id)
        if fresh is not None and fresh.attempts >= MAX_ATTEMPTS:
            raise TooManyAttempts(texts.FEISHU_BINDING_TOO_MANY.format(product=name))
        raise NotFound(texts.FEISHU_BINDING_INVALID)
    if not right:
        await session.commit()
        left = MAX_ATTEMPTS - tried - 1
        if left <= 0:
            raise TooManyAttempts(texts.FEISHU_BINDING_TOO_MANY.format(product=name))
        raise Invalid(texts.FEISHU_BINDING_CODE_WRONG.format(product=name, left=left))
    binding = await bind(
        session, integration, row.open_id, row.union_id, user_id, actor=f"user:{user_id}"
    )
    if row.display_name and not binding.display_name:
        binding.display_name = row.display_name
    return binding, integration


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What the bind page shows before anyone confirms."""

    open_id: str
    display_name: str | None
    agent_name: str
    bot_name: str | None
    org_name: str
    org_id: str
    product: str  # "Feishu" or "Lark"
    used: bool
    void: bool  # too many wrong codes: unusable, though not used
    bound_user_id: str | None  # who this Feishu user is linked to now, if anyone


async def peek(session: AsyncSession, code: str) -> CodeInfo | None:
    """The code's details without using it up; None when unknown, expired or from before
    confirmation codes. A used code is described (`used`) so its page can say "already linked"."""
    row = await session.scalar(select(BindingCode).where(BindingCode.code_hash == code_hash(code)))
    if row is None or row.confirm_hash is None:
        return None
    if row.used_at is None and row.expires_at <= utcnow():
        return None
    found = (
        await session.execute(
            select(Integration, Agent, Organization)
            .join(Agent, Agent.id == Integration.agent_id)
            .join(Organization, Organization.id == Integration.org_id)
            .where(Integration.id == row.integration_id)
        )
    ).first()
    if found is None:
        return None
    integration, agent, org = found
    bound_to = await session.scalar(
        select(FeishuUserBinding.user_id).where(
            FeishuUserBinding.integration_id == integration.id,
            FeishuUserBinding.open_id == row.open_id,
        )
    )
    return CodeInfo(
        open_id=row.open_id,
        display_name=row.display_name,
        agent_name=agent.name,
        bot_name=integration.bot_name,
        org_name=org.name,
        org_id=org.id,
        product=product(integration.region),
        used=row.used_at is not None,
        void=row.used_at is None and row.attempts >= MAX_ATTEMPTS,
        bound_user_id=bound_to,
    )

"""Organizations, members and the first-start bootstrap."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rudder.db.models import Agent, Membership, Organization, User
from rudder.domain import activity
from rudder.domain.errors import Conflict, Forbidden, NotFound

LOCAL_OWNER_EMAIL = "owner@localhost"
DEFAULT_ORG_NAME = "My Organization"
EXAMPLE_AGENT_NAME = "Example Agent"
EXAMPLE_AGENT_INSTRUCTIONS = (
    "This is Rudder's bundled example agent. It runs offline and only echoes and counts; "
    "switch its runtime in Configuration to a real one (process, http, openai, claude_local, "
    "codex_local)."
)
ROLES = ("owner", "admin", "member")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "org"


async def _unique_slug(session: AsyncSession, name: str) -> str:
    base = slugify(name)
    slug, n = base, 1
    while await session.scalar(select(Organization.id).where(Organization.slug == slug)):
        n += 1
        slug = f"{base}-{n}"
    return slug


async def create_org(session: AsyncSession, name: str, owner: User) -> Organization:
    org = Organization(name=name, slug=await _unique_slug(session, name))
    session.add(org)
    await session.flush()
    session.add(Membership(org_id=org.id, user_id=owner.id, role="owner"))
    activity.record(
        session,
        org_id=org.id,
        actor=f"user:{owner.id}",
        action="org.created",
        entity_type="org",
        entity_id=org.id,
    )
    await session.flush()
    return org


async def ensure_user(session: AsyncSession, email: str, name: str) -> User:
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name)
        session.add(user)
        await session.flush()
    return user


async def local_owner(session: AsyncSession) -> User:
    return await ensure_user(session, LOCAL_OWNER_EMAIL, "Owner")


async def bootstrap(session: AsyncSession) -> tuple[Organization, Agent] | None:
    """On the very first start: a default organization with a labelled example agent."""
    if await session.scalar(select(Organization.id).limit(1)):
        return None
    from rudder.runtimes import DEFAULT_AGENT_RUNTIME

    owner = await local_owner(session)
    org = await create_org(session, DEFAULT_ORG_NAME, owner)
    runtime_type, runtime_config = DEFAULT_AGENT_RUNTIME
    agent = Agent(
        org_id=org.id,
        name=EXAMPLE_AGENT_NAME,
        role="example",
        title="Example agent (offline)",
        runtime_type=runtime_type,
        runtime_config=dict(runtime_config),
        instructions=EXAMPLE_AGENT_INSTRUCTIONS,
        is_example=True,
    )
    session.add(agent)
    await session.flush()
    activity.record(
        session,
        org_id=org.id,
        actor="system",
        action="agent.created",
        entity_type="agent",
        entity_id=agent.id,
        details={"example": True},
    )
    return org, agent


async def example_agent_name(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    """The bundled example agent's name, for the console's first steps (None once it is gone)."""
    async with sessions() as session:
        return await session.scalar(
            select(Agent.name)
            .where(Agent.is_example.is_(True), Agent.status != "terminated")
            .order_by(Agent.created_at)
            .limit(1)
        )


async def membership(session: AsyncSession, user_id: str, org_id: str) -> Membership | None:
    return await session.scalar(
        select(Membership).where(
            Membership.user_id == user_id,
            Membership.org_id == org_id,
            Membership.status == "active",
        )
    )


MANAGER_ROLES = ("owner", "admin")


async def is_manager(session: AsyncSession, actor: str, org_id: str) -> bool:
    """Whether `actor` (an activity-log label) is an owner or admin of `org_id`. Agent tokens
    never are; Rudder itself (`cli`, `system`, run by the operator) always is."""
    kind, _, actor_id = actor.partition(":")
    if kind == "agent":
        return False
    if kind != "user":
        return True
    member = await membership(session, actor_id, org_id)
    return member is not None and member.role in MANAGER_ROLES


async def require_manager(session: AsyncSession, actor: str, org_id: str, detail: str) -> None:
    if not await is_manager(session, actor, org_id):
        raise Forbidden(detail)


async def require_member(session: AsyncSession, user_id: str, org_id: str) -> Membership:
    """The caller's membership, or NotFound: another organization's ids must not leak."""
    found = await membership(session, user_id, org_id)
    if found is None:
        raise NotFound("organization not found")
    return found


async def user_orgs(session: AsyncSession, user_id: str) -> list[Organization]:
    rows = await session.scalars(
        select(Organization)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user_id, Membership.status == "active")
        .order_by(Organization.created_at)
    )
    return list(rows)


async def members(session: AsyncSession, org_id: str) -> list[tuple[Membership, User]]:
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id)
        .order_by(Membership.created_at)
    )
    return [(m, u) for m, u in rows.all()]


async def add_member(
    session: AsyncSession, org_id: str, email: str, name: str, role: str, actor: str
) -> tuple[Membership, User]:
    user = await ensure_user(session, email.strip().lower(), name)
    if await session.scalar(
        select(Membership.id).where(Membership.org_id == org_id, Membership.user_id == user.id)
    ):
        raise Conflict(f"{email} is already a member of this organization")
    member = Membership(org_id=org_id, user_id=user.id, role=role)
    session.add(member)
    activity.record(
        session,
        org_id=org_id,
        actor=actor,
        action="member.added",
        entity_type="user",
        entity_id=user.id,
        details={"role": role},
    )
    await session.flush()
    return member, user

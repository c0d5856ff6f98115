"""Load what a page shows, answering None (→ an HTML 404) instead of raising JSON errors."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rudder.api.deps import Actor, load_agent, load_conversation, load_run
from rudder.db.models import Agent, Conversation, Run
from rudder.domain.errors import NotFound


async def find_agent(session: AsyncSession, actor: Actor, agent_id: str) -> Agent | None:
    try:
        return await load_agent(session, actor, agent_id)
    except NotFound:
        return None


async def find_conversation(
    session: AsyncSession, actor: Actor, conversation_id: str
) -> Conversation | None:
    try:
        return await load_conversation(session, actor, conversation_id)
    except NotFound:
        return None


async def find_run(session: AsyncSession, actor: Actor, run_id: str) -> Run | None:
    try:
        return await load_run(session, actor, run_id)
    except NotFound:
        return None

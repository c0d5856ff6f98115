"""A bot's per-chat policy in Feishu groups (rudder.feishu.chat_policy)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent
from rudder.api.schemas import Input, Model, error_responses
from rudder.db.models import Integration
from rudder.domain.errors import NotFound
from rudder.feishu import chat_policy, group_context
from rudder.feishu import connect as connecting

router = APIRouter(prefix="/api", tags=["feishu"])
BASE = "/agents/{agent_id}/integrations/feishu/chat-policies"
CONTEXT = "/agents/{agent_id}/integrations/feishu/group-context"


class GroupContextIn(Input):
    enabled: bool


class GroupContextOut(Model):
    enabled: bool
    # Feishu refused this bot a group's messages lately: the permission to add (else None).
    missing_scope: str | None = None


class ChatPolicyIn(Input):
    answers: bool | None = None
    require_mention: bool | None = None
    audience: Literal["members", "tenant"] | None = None
    default_user_id: str | None = Field(default=None, max_length=64)
    quiet: bool | None = None
    # Group context (rudder.feishu.group_context); the agent's switch must be on too.
    context: bool | None = None
    # Whole numbers only (true is not 1); the ranges are chat_policy.CONTEXT_LIMITS.
    context_messages: int | None = Field(default=None, strict=True)
    context_hours: int | None = Field(default=None, strict=True)
    context_chars: int | None = Field(default=None, strict=True)


class ChatPolicyOut(Model):
    chat_id: str
    answers: bool
    require_mention: bool
    audience: str
    default_user_id: str | None
    quiet: bool
    context: bool
    context_messages: int
    context_hours: int
    context_chars: int
    updated_at: datetime
    updated_by: str | None


async def _integration(
    session: SessionDep, services: ServicesDep, actor: ActorDep, agent_id: str
) -> Integration:
    agent = await load_agent(session, actor, agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    integration = await connecting.integration_for_agent(session, agent.id)
    if integration is None:
        raise NotFound("this agent has no Feishu / Lark bot")
    return integration


@router.get(BASE, response_model=list[ChatPolicyOut], responses=error_responses(403))
async def list_chat_policies(
    agent_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> list[ChatPolicyOut]:
    """Every group with its own policy, and `*`: the bot's default for the others."""
    integration = await _integration(session, services, actor, agent_id)
    return [
        ChatPolicyOut.model_validate(row)
        for row in await chat_policy.rows_of(session, integration.id)
    ]


@router.put(f"{BASE}/{{chat_id}}", response_model=ChatPolicyOut, responses=error_responses(403))
async def put_chat_policy(
    agent_id: str,
    chat_id: str,
    body: ChatPolicyIn,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> ChatPolicyOut:
    """Set the fields given (the others keep their value); applies to the next message."""
    integration = await _integration(session, services, actor, agent_id)
    values = body.model_dump(exclude_unset=True)
    row = await chat_policy.set_policy(session, integration, chat_id, values, actor=actor.label)
    await session.commit()
    return ChatPolicyOut.model_validate(row)


@router.delete(f"{BASE}/{{chat_id}}", status_code=204, responses=error_responses(403))
async def delete_chat_policy(
    agent_id: str, chat_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> None:
    """The group goes back to the bot's default."""
    integration = await _integration(session, services, actor, agent_id)
    await chat_policy.clear_policy(session, integration, chat_id, actor=actor.label)
    await session.commit()


@router.get(CONTEXT, response_model=GroupContextOut, responses=error_responses(403))
async def get_group_context(
    agent_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> GroupContextOut:
    """The agent's switch for group context (each group's policy says where and how much)."""
    agent = await load_agent(session, actor, agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    return await _context_out(session, services, agent.id, agent.group_context)


@router.put(CONTEXT, response_model=GroupContextOut, responses=error_responses(403))
async def put_group_context(
    agent_id: str,
    body: GroupContextIn,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> GroupContextOut:
    """Turn group context on or off for this agent; a Connect after this asks for the
    permission to read group messages when on. Owners and admins only, as every bot setting."""
    agent = await load_agent(session, actor, agent_id)
    await connecting.require_bot_manager(services, agent, actor.label)
    await group_context.set_enabled(session, agent, body.enabled, actor=actor.label)
    await session.commit()
    return await _context_out(session, services, agent.id, body.enabled)


async def _context_out(
    session: SessionDep, services: ServicesDep, agent_id: str, enabled: bool
) -> GroupContextOut:
    integration = await connecting.integration_for_agent(session, agent_id)
    missing = (
        group_context.GROUP_SCOPE
        if integration is not None and group_context.scope_missing(services, integration.id)
        else None
    )
    return GroupContextOut(enabled=enabled, missing_scope=missing)

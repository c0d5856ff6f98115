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
from rudder.feishu import chat_policy
from rudder.feishu import connect as connecting

router = APIRouter(prefix="/api", tags=["feishu"])
BASE = "/agents/{agent_id}/integrations/feishu/chat-policies"


class ChatPolicyIn(Input):
    answers: bool | None = None
    require_mention: bool | None = None
    audience: Literal["members", "tenant"] | None = None
    default_user_id: str | None = Field(default=None, max_length=64)
    quiet: bool | None = None


class ChatPolicyOut(Model):
    chat_id: str
    answers: bool
    require_mention: bool
    audience: str
    default_user_id: str | None
    quiet: bool
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

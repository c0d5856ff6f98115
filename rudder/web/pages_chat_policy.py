"""The Groups section of an agent's Integrations tab: the bot's policy in each Feishu group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep
from rudder.db.models import Conversation, InboundEvent, Integration, Membership, User
from rudder.db.models_policy import EVERY_GROUP
from rudder.domain.errors import DomainError
from rudder.feishu import chat_policy, group_context
from rudder.feishu import connect as connecting
from rudder.services import Services
from rudder.web.lookups import find_agent
from rudder.web.templating import not_found, shell

router = APIRouter(include_in_schema=False)
GROUPS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class GroupRow:
    chat_id: str
    title: str
    policy: chat_policy.Policy


async def groups_context(
    services: Services, session: AsyncSession, integration: Integration
) -> dict[str, Any]:
    """Groups the bot was seen in or has a policy for, newest first, and the bot's default."""
    seen = list(
        await session.execute(
            select(InboundEvent.chat_id, func.max(InboundEvent.received_at))
            .where(
                InboundEvent.integration_id == integration.id,
                InboundEvent.chat_type == "group",
                InboundEvent.chat_id.is_not(None),
            )
            .group_by(InboundEvent.chat_id)
            .order_by(func.max(InboundEvent.received_at).desc())
            .limit(GROUPS_SHOWN)
        )
    )
    chat_ids: list[str] = [str(chat_id) for chat_id, _ in seen]
    for row in await chat_policy.rows_of(session, integration.id):
        if row.chat_id != EVERY_GROUP and row.chat_id not in chat_ids:
            chat_ids.append(row.chat_id)
    titles = dict(
        (
            await session.execute(
                select(Conversation.external_chat_id, Conversation.title).where(
                    Conversation.org_id == integration.org_id,
                    Conversation.agent_id == integration.agent_id,
                    Conversation.external_chat_id.in_(chat_ids),
                )
            )
        ).all()
    )
    groups = [
        GroupRow(
            chat_id=chat_id,
            title=titles.get(chat_id) or chat_id,
            policy=await chat_policy.effective(session, integration.id, chat_id),
        )
        for chat_id in chat_ids
    ]
    members = list(
        (
            await session.execute(
                select(User.id, User.name)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.org_id == integration.org_id, Membership.status == "active")
                .order_by(User.name)
            )
        ).all()
    )
    return {
        "context_missing": group_context.GROUP_SCOPE
        if group_context.scope_missing(services, integration.id)
        else None,
        "groups": groups,
        "bot_default": await chat_policy.effective(session, integration.id, EVERY_GROUP),
        "members": members,
        "every_group": EVERY_GROUP,
    }


def _whole(field: str, raw: str) -> int:
    low, high = chat_policy.CONTEXT_LIMITS[field]
    try:
        return int(raw.strip())
    except ValueError:
        raise DomainError(
            texts.CHAT_POLICY_BAD_CONTEXT.format(field=field, low=low, high=high)
        ) from None


@router.post("/agents/{agent_id}/integrations/group-context", response_class=HTMLResponse)
async def save_group_context(
    agent_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    enabled: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """The agent's switch for group context (the Groups section's first line)."""
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    await connecting.require_bot_manager(services, agent, actor.label)
    await group_context.set_enabled(session, agent, bool(enabled), actor=actor.label)
    await session.commit()
    return RedirectResponse(f"/agents/{agent.id}/integrations#groups", status_code=303)


@router.post("/agents/{agent_id}/integrations/chat-policy", response_class=HTMLResponse)
async def save_chat_policy(
    agent_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    chat_id: Annotated[str, Form(max_length=100)] = "",
    answers: Annotated[str, Form(max_length=5)] = "",
    require_mention: Annotated[str, Form(max_length=5)] = "",
    quiet: Annotated[str, Form(max_length=5)] = "",
    audience: Annotated[str, Form(max_length=20)] = "members",
    default_user_id: Annotated[str, Form(max_length=64)] = "",
    context: Annotated[str, Form(max_length=5)] = "",
    context_messages: Annotated[str, Form(max_length=10)] = "",
    context_hours: Annotated[str, Form(max_length=10)] = "",
    context_chars: Annotated[str, Form(max_length=10)] = "",
    reset: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    agent = await find_agent(session, actor, agent_id)
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    back = f"/agents/{agent.id}/integrations"
    error: str | None = None
    try:
        await connecting.require_bot_manager(services, agent, actor.label)
        integration = await connecting.integration_for_agent(session, agent.id)
        if integration is None or integration.status == "disconnected":
            raise DomainError(texts.SLASH_RETRY_NOT_CONNECTED)
        if reset and chat_id != EVERY_GROUP:
            await chat_policy.clear_policy(session, integration, chat_id, actor=actor.label)
        else:
            values = {
                "answers": bool(answers),
                "require_mention": bool(require_mention),
                "quiet": bool(quiet),
                "audience": audience,
                "default_user_id": default_user_id or None,
                "context": bool(context),
            }
            bounds = {
                "context_messages": context_messages,
                "context_hours": context_hours,
                "context_chars": context_chars,
            }
            for field, raw in bounds.items():
                if raw.strip():  # left empty: the value it had
                    values[field] = _whole(field, raw)
            await chat_policy.set_policy(session, integration, chat_id, values, actor=actor.label)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        error = exc.detail
        agent = await find_agent(session, actor, agent_id)  # the rollback expired it
        if agent is None:
            return not_found(
                request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND
            )
    if error is None:
        return RedirectResponse(f"{back}#groups", status_code=303)
    # pages_integrations shows this section: it imports this module.
    from rudder.web.pages_integrations import integrations_page

    return await integrations_page(
        request, actor, session, services, agent, {"policy_error": error}, status_code=422
    )

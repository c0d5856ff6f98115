"""The agent's outbound work: post a message into one of its bot's Feishu / Lark chats."""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, load_agent, load_conversation
from rudder.api.schemas import TextInput, error_responses
from rudder.db.models import Conversation, Integration, Message
from rudder.domain import orgs
from rudder.domain.errors import Forbidden, Invalid, NotFound
from rudder.feishu import outbound

router = APIRouter(prefix="/api", tags=["feishu"])

# "Bot is not in the chat", invalid receive_id, chat dissolved (reference §6.9): not this
# agent's chat to post in, answered like any chat it cannot see.
_NOT_THIS_BOTS_CHAT = frozenset({230002, 230001, 232009})
# Mentioning everyone: the `<at>` tag of text and post messages and of card markdown
# (`user_id`/`open_id`/`id` = all, quoted or not), and the plain `@all` / `@所有人`.
_AT_ALL = re.compile(
    r"""<at\b[^>]*\b(?:user_id|open_id|union_id|id)\s*=\s*["']?all\b|(?<![\w@.])@(?:all|所有人)(?!\w)""",
    re.IGNORECASE,
)


async def _takes_part(session: AsyncSession, user_id: str, conv: Conversation) -> bool:
    """Whether the member started the conversation or wrote in it."""
    if conv.created_by_user_id == user_id:
        return True
    wrote = await session.scalar(
        select(
            exists().where(Message.conversation_id == conv.id, Message.author_user_id == user_id)
        )
    )
    return bool(wrote)


class MessageIn(TextInput):
    # The "exactly one target" rule below, stated in the schema too, so clients see it.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["chat_id"], "properties": {"chat_id": {"type": "string"}}},
                {
                    "required": ["conversation_id"],
                    "properties": {"conversation_id": {"type": "string"}},
                },
            ]
        }
    )

    chat_id: str | None = Field(default=None, min_length=1, max_length=100)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=32)
    text: str = Field(min_length=1, max_length=2_000_000)
    # The same key posts at most once (default: a fresh key per request).
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_target(self) -> MessageIn:
        if (self.chat_id is None) == (self.conversation_id is None):
            raise ValueError("give exactly one of chat_id or conversation_id")
        return self


class MessageOut(BaseModel):
    status: str  # sent | pending | failed
    chat_id: str
    feishu_message_ids: list[str]
    outbox_ids: list[str]
    conversation_id: str | None
    message_id: str | None
    error: str | None


@router.post(
    "/agents/{agent_id}/integrations/feishu/messages",
    response_model=MessageOut,
    responses={
        202: {"model": MessageOut, "description": "Accepted; the outbox keeps trying"},
        502: {"model": MessageOut, "description": "Feishu refused or failed the message"},
        **error_responses(403),
    },
)
async def post_message(
    agent_id: str,
    body: MessageIn,
    response: Response,
    services: ServicesDep,
    session: SessionDep,
    actor: ActorDep,
) -> MessageOut:
    agent = await load_agent(session, actor, agent_id)
    if actor.agent_id is not None and actor.agent_id != agent.id:
        raise NotFound("agent not found")  # an agent token speaks only for its own agent
    integration = await session.scalar(
        select(Integration).where(
            Integration.agent_id == agent.id, Integration.provider == "feishu"
        )
    )
    # Posting as the bot speaks for the organization: owners and admins anywhere the bot is, the
    # agent's own token likewise (not @all), members only into a conversation of theirs.
    manager = await orgs.is_manager(session, actor.label, agent.org_id)
    if _AT_ALL.search(body.text) and not (manager and actor.agent_id is None):
        raise Forbidden(texts.OUTBOUND_AT_ALL_ADMINS_ONLY)
    member = actor.agent_id is None and not manager
    if member and body.conversation_id is None:
        raise Forbidden(texts.OUTBOUND_MEMBER_CHAT_ONLY)
    if integration is None or not integration.app_id or integration.status == "disconnected":
        raise Invalid("this agent has no connected Feishu or Lark bot")
    chat_id = body.chat_id
    if body.conversation_id is not None:
        conv = await load_conversation(session, actor, body.conversation_id)
        if (
            conv.agent_id != agent.id
            or conv.integration_id != integration.id
            or not conv.external_chat_id
        ):
            raise NotFound("conversation not found")
        if member and not await _takes_part(session, str(actor.user_id), conv):
            raise Forbidden(texts.OUTBOUND_MEMBER_CHAT_ONLY)
        chat_id = conv.external_chat_id
    assert chat_id is not None
    await session.close()  # nothing to hold open while Feishu answers
    posted = await outbound.post_agent_message(
        services, integration, chat_id, body.text, key=body.idempotency_key or uuid.uuid4().hex
    )
    if posted.status == "failed" and posted.error_code in _NOT_THIS_BOTS_CHAT:
        raise NotFound("chat not found")
    if posted.status == "pending":
        response.status_code = status.HTTP_202_ACCEPTED
    elif posted.status == "failed":
        response.status_code = status.HTTP_502_BAD_GATEWAY
    return MessageOut(
        status=posted.status,
        chat_id=chat_id,
        feishu_message_ids=posted.feishu_message_ids,
        outbox_ids=posted.outbox_ids,
        conversation_id=posted.conversation_id,
        message_id=posted.message_id,
        error=posted.error,
    )

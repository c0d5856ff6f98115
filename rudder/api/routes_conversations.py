"""Conversations, messages, live events (SSE), stop and fork."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import StreamingResponse

from rudder import chat
from rudder.api.deps import (
    ActorDep,
    ServicesDep,
    SessionDep,
    load_agent,
    load_conversation,
    require_org,
)
from rudder.api.schemas import (
    ConversationIn,
    ConversationOut,
    ErrorOut,
    ForkIn,
    MessageIn,
    MessageOut,
    StopOut,
)
from rudder.domain import conversations as convs
from rudder.domain import runs as runs_domain
from rudder.live import END, LiveEvent, conversation_topic
from rudder.media import attachments as media_attachments
from rudder.run_views import message_view, run_view

router = APIRouter(prefix="/api")

# seq columns are 32-bit integers; a larger bound makes PostgreSQL fail the query (a 500).
MAX_SEQ = 2**31 - 1

KEEPALIVE_S = 15.0


@router.get("/orgs/{org_id}/conversations", response_model=list[ConversationOut])
async def list_conversations(
    org_id: str,
    actor: ActorDep,
    session: SessionDep,
    agent_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ConversationOut]:
    await require_org(session, actor, org_id)
    if actor.agent_id is not None:
        if agent_id not in (None, actor.agent_id):
            return []  # an agent token sees only its own agent's conversations
        agent_id = actor.agent_id
    rows = await convs.list_conversations(session, org_id, agent_id)
    return [ConversationOut.model_validate(c) for c in rows]


@router.post(
    "/orgs/{org_id}/conversations",
    response_model=ConversationOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_conversation(
    org_id: str, body: ConversationIn, actor: ActorDep, session: SessionDep
) -> ConversationOut:
    await require_org(session, actor, org_id)
    agent = await load_agent(session, actor, body.agent_id)
    if agent.org_id != org_id:
        from rudder.domain.errors import NotFound

        raise NotFound("agent not found")
    conv = await convs.create_conversation(
        session, agent, title=body.title, user_id=actor.user_id, actor=actor.label
    )
    await session.commit()
    return ConversationOut.model_validate(conv)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut)
async def get_conversation(
    conversation_id: str, actor: ActorDep, session: SessionDep
) -> ConversationOut:
    return ConversationOut.model_validate(await load_conversation(session, actor, conversation_id))


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageOut])
async def list_messages(
    conversation_id: str,
    actor: ActorDep,
    session: SessionDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[MessageOut]:
    await load_conversation(session, actor, conversation_id)
    rows = await convs.list_messages(session, conversation_id, after_seq, limit)
    files = await media_attachments.for_messages(session, [m.id for m in rows])
    out = []
    for m in rows:
        item = MessageOut.model_validate(m)
        item.attachments = [media_attachments.view(a) for a in files.get(m.id, [])]
        out.append(item)
    return out


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=MessageOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {
            "model": ErrorOut,
            "description": "The conversation is bound to a Feishu chat (read-only here)",
        }
    },
)
async def post_message(
    conversation_id: str,
    body: MessageIn,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> MessageOut:
    conv = await load_conversation(session, actor, conversation_id)
    convs.ensure_writable(conv)
    message, _ = await chat.post_user_message(
        services,
        session,
        conv,
        body.body,
        author_user_id=actor.user_id,
        source="api" if actor.agent_id else "local",
    )
    return MessageOut.model_validate(message)


@router.post("/conversations/{conversation_id}/stop", response_model=StopOut)
async def stop_conversation(
    conversation_id: str, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> StopOut:
    await load_conversation(session, actor, conversation_id)
    active = list(await runs_domain.active_runs(session, conversation_id))
    stopped = await chat.cancel_runs(services, session, active)
    detail = "Stopped." if stopped else "Nothing is running in this conversation."
    return StopOut(stopped=len(stopped), run_ids=stopped, detail=detail)


@router.post(
    "/conversations/{conversation_id}/fork",
    response_model=ConversationOut,
    status_code=status.HTTP_201_CREATED,
)
async def fork_conversation(
    conversation_id: str, actor: ActorDep, session: SessionDep, body: ForkIn | None = None
) -> ConversationOut:
    conv = await load_conversation(session, actor, conversation_id)
    copy = await convs.fork(
        session,
        conv,
        user_id=actor.user_id,
        up_to_message_id=body.message_id if body else None,
        actor=actor.label,
    )
    await session.commit()
    return ConversationOut.model_validate(copy)


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


@router.get(
    "/conversations/{conversation_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def conversation_events(
    conversation_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    """Live updates: `snapshot`, `message.created`, `message.delta`, `message.updated`, `run.updated`.

    With `Last-Event-ID` the missed events are replayed; when they can't be (another process
    or too old), a fresh `snapshot` is sent instead.
    """
    conv = await load_conversation(session, actor, conversation_id)
    topic = conversation_topic(conv.id)
    live = services.live
    conv_id = conv.id
    await session.close()

    async def snapshot() -> str:
        async with services.sessions() as s:
            messages = await convs.list_messages(s, conv_id, limit=100_000)
            active = await runs_domain.active_runs(s, conv_id)
        data = {
            "messages": [message_view(m) for m in messages],
            "active_runs": [run_view(r) for r in active],
        }
        return _sse("snapshot", json.dumps(data, default=str))

    async def stream() -> AsyncIterator[str]:
        async with live.subscribe(topic) as sub:
            replay = live.replay_after(topic, last_event_id)
            seen: set[str] = set()
            if replay is None:
                yield await snapshot()
            else:
                for missed in replay:
                    seen.add(missed.id)
                    yield _sse(missed.event, missed.encoded(), missed.id)
            while not sub.overflowed.is_set():
                try:
                    item: LiveEvent = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if item is END:
                    return
                if item.id in seen:
                    continue
                yield _sse(item.event, item.encoded(), item.id)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""Messenger: every conversation of the organization, a live conversation view, stop and fork.

Replies stream over the JSON API's SSE endpoint (`/api/conversations/{id}/events`); the page's
own script applies `message.delta` by offset, so a reconnect never duplicates text.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import chat, texts
from rudder.api.deps import Actor, ActorDep, ServicesDep, SessionDep
from rudder.db.models import Agent, Conversation, Message, Run, User
from rudder.domain import agents as agents_domain
from rudder.domain import conversations as convs
from rudder.domain import runs as runs_domain
from rudder.markdown_html import body_html
from rudder.media import attachments as media_attachments
from rudder.media.uploads import UploadRefused, store_uploads
from rudder.web import handoff_links, reads
from rudder.web.lookups import find_agent, find_conversation
from rudder.web.templating import Shell, not_found, render, shell

router = APIRouter(include_in_schema=False)

BODY_MAX = 20_000


def _wants_fragment(request: Request) -> bool:
    # The page script posts with this header and handles the answer itself.
    return request.headers.get("x-requested-with") == "fetch"


async def _failed(session: AsyncSession, ids: list[str]) -> set[str]:
    """Conversations whose latest run failed (a later successful run clears the mark)."""
    if not ids:
        return set()
    latest = (
        select(Run.conversation_id, func.max(Run.created_at).label("at"))
        .where(Run.conversation_id.in_(ids))
        .group_by(Run.conversation_id)
        .subquery()
    )
    rows = await session.scalars(
        select(Run.conversation_id)
        .join(
            latest,
            and_(Run.conversation_id == latest.c.conversation_id, Run.created_at == latest.c.at),
        )
        .where(Run.status == "failed")
    )
    return set(rows)


async def _previews(session: AsyncSession, ids: list[str]) -> dict[str, str]:
    """The last message of each conversation, shortened, for the list."""
    if not ids:
        return {}
    latest = (
        select(Message.conversation_id, func.max(Message.seq).label("seq"))
        .where(Message.conversation_id.in_(ids), Message.body != "")
        .group_by(Message.conversation_id)
        .subquery()
    )
    rows = await session.execute(
        select(Message.conversation_id, Message.role, Message.body).join(
            latest,
            and_(Message.conversation_id == latest.c.conversation_id, Message.seq == latest.c.seq),
        )
    )
    out = {}
    for conv_id, role, body in rows.all():
        text = " ".join(body.split())
        text = text if len(text) <= 80 else text[:79] + "…"
        out[conv_id] = ("You: " if role == "user" else "") + text
    return out


async def _sidebar(
    session: AsyncSession, actor: Actor, org_id: str, agent_filter: str | None
) -> dict[str, Any]:
    agent_list = await agents_domain.list_agents(session, org_id)
    conversations = await convs.list_conversations(session, org_id, agent_filter)
    ids = [c.id for c in conversations]
    return {
        "agents": agent_list,
        "agent_names": {a.id: a.name for a in agent_list},
        "conversations": conversations,
        "failed": await _failed(session, ids),
        "unread": await reads.unread_ids(session, actor.user_id, conversations),
        "previews": await _previews(session, ids),
        "agent_filter": agent_filter,
    }


async def _messenger_page(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    frame: Shell,
    conv: Conversation | None,
    agent_filter: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context: dict[str, Any] = {"conv": conv, "error": error, "messages": [], "origin": None}
    if frame.current is not None:
        context.update(await _sidebar(session, actor, frame.current.id, agent_filter))
    if conv is not None:
        messages = await convs.list_messages(session, conv.id, limit=100_000)
        user_ids = {m.author_user_id for m in messages if m.author_user_id}
        names = {}
        if user_ids:
            names = {
                u.id: u.name
                for u in await session.scalars(select(User).where(User.id.in_(user_ids)))
            }
        context["messages"] = messages
        files = await media_attachments.for_messages(session, [m.id for m in messages])
        context["attachments"] = {
            mid: [media_attachments.view(a) for a in rows] for mid, rows in files.items()
        }
        context["user_names"] = names
        context["viewer_id"] = actor.user_id
        context["body_html"] = body_html
        context["agent"] = await session.get(Agent, conv.agent_id)
        # Hand-offs: who handed a message over, and whom a reply handed the turn to.
        context["handoffs"] = await handoff_links.for_messages(session, messages)
        rows = await session.execute(
            select(Agent.id, Agent.name).where(Agent.org_id == conv.org_id)
        )
        context["agent_names"] = {agent_id: name for agent_id, name in rows.all()}
        context["active"] = bool(await runs_domain.active_runs(session, conv.id))
        if conv.forked_from_conversation_id:
            context["origin"] = await session.get(Conversation, conv.forked_from_conversation_id)
    return render(
        request, "messenger/page.html", frame, context, status_code=status_code, nav="messenger"
    )


@router.get("/messenger", response_class=HTMLResponse)
async def messenger(
    request: Request, actor: ActorDep, session: SessionDep, agent: str | None = None
) -> HTMLResponse:
    frame = await shell(request, session, actor)
    return await _messenger_page(request, session, actor, frame, None, agent_filter=agent)


@router.get("/messenger/{conversation_id}", response_class=HTMLResponse)
async def conversation(
    conversation_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> HTMLResponse:
    conv = await find_conversation(session, actor, conversation_id)
    if conv is None:
        frame = await shell(request, session, actor)
        return not_found(request, frame, texts.WEB_CONVERSATION_NOT_FOUND)
    frame = await shell(request, session, actor, conv.org_id)
    # Opening a conversation clears its unread mark (on every device: it is stored per user).
    await reads.mark_seen(session, actor.user_id, conv.id)
    await session.commit()
    return await _messenger_page(request, session, actor, frame, conv)


@router.post("/messenger/{conversation_id}/seen")
async def seen(
    conversation_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> Response:
    """The open conversation page reports that new messages arrived while it was shown."""
    conv, missing = await _load(request, session, actor, conversation_id)
    if conv is None:
        assert missing is not None
        return missing
    await reads.mark_seen(session, actor.user_id, conv.id)
    await session.commit()
    return Response(status_code=204)


@router.post("/messenger/new", response_class=HTMLResponse)
async def new_conversation(
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    agent_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    agent = await find_agent(session, actor, agent_id) if agent_id else None
    if agent is None:
        return not_found(request, await shell(request, session, actor), texts.WEB_AGENT_NOT_FOUND)
    conv = await convs.create_conversation(session, agent, user_id=actor.user_id, actor=actor.label)
    await session.commit()
    return RedirectResponse(f"/messenger/{conv.id}", status_code=303)


async def _load(
    request: Request, session: AsyncSession, actor: Actor, conversation_id: str
) -> tuple[Conversation | None, Response | None]:
    conv = await find_conversation(session, actor, conversation_id)
    if conv is None:
        frame = await shell(request, session, actor)
        return None, not_found(request, frame, texts.WEB_CONVERSATION_NOT_FOUND)
    return conv, None


@router.post("/messenger/{conversation_id}/messages", response_class=HTMLResponse)
async def send_message(
    conversation_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
    body: Annotated[str, Form(max_length=BODY_MAX)] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    conv, missing = await _load(request, session, actor, conversation_id)
    if conv is None:
        assert missing is not None
        return missing
    error, status = None, 200
    uploads = [f for f in files or [] if f.filename]
    attached = []
    if conv.bound:
        error, status = texts.BOUND_CONVERSATION_READ_ONLY, 409
    elif not body.strip() and not uploads:
        error, status = texts.WEB_MESSAGE_EMPTY, 422
    elif uploads and services.runs.media is not None:
        try:
            attached = await store_uploads(services.runs.media, uploads)
        except UploadRefused as exc:
            error, status = str(exc), 413
    if error is not None:
        if _wants_fragment(request):
            return PlainTextResponse(error, status_code=status)
        frame = await shell(request, session, actor, conv.org_id)
        return await _messenger_page(
            request, session, actor, frame, conv, error=error, status_code=status
        )
    text = body.strip() or " ".join(
        texts.MEDIA_ONLY_BODY.format(what=texts.MEDIA_WHAT["file"].format(name=a.name))
        for a in attached
    )
    await chat.post_user_message(
        services,
        session,
        conv,
        text,
        author_user_id=actor.user_id,
        source="local",
        attachments=attached,
    )
    await reads.mark_seen(session, actor.user_id, conv.id)  # one's own message is not news
    await session.commit()
    if _wants_fragment(request):
        return Response(status_code=204)
    return RedirectResponse(f"/messenger/{conversation_id}", status_code=303)


@router.post("/messenger/{conversation_id}/stop", response_class=HTMLResponse)
async def stop(
    conversation_id: str,
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    conv, missing = await _load(request, session, actor, conversation_id)
    if conv is None:
        assert missing is not None
        return missing
    active = list(await runs_domain.active_runs(session, conv.id))
    await chat.cancel_runs(services, session, active)
    if _wants_fragment(request):
        return Response(status_code=204)
    return RedirectResponse(f"/messenger/{conversation_id}", status_code=303)


@router.post("/messenger/{conversation_id}/fork", response_class=HTMLResponse)
async def fork(
    conversation_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> Response:
    conv, missing = await _load(request, session, actor, conversation_id)
    if conv is None:
        assert missing is not None
        return missing
    copy = await convs.fork(session, conv, user_id=actor.user_id, actor=actor.label)
    await session.commit()
    return RedirectResponse(f"/messenger/{copy.id}", status_code=303)

"""Request dependencies: services, a database session, and who is calling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.config import DeploymentMode
from rudder.db.models import Agent, Conversation, Run, User
from rudder.domain import agents as agents_domain
from rudder.domain import auth, orgs
from rudder.domain import conversations as convs
from rudder.domain import runs as runs_domain
from rudder.domain.errors import Forbidden, NotFound, Unauthorized
from rudder.security import LoginRequired, session_registry
from rudder.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_session(
    services: Annotated[Services, Depends(get_services)],
) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str | None
    # An agent token acts for this agent alone (AGENT_TOKEN_ROUTES and the loaders below).
    agent_id: str | None = None
    # An agent token acts only inside its own organization.
    token_org_id: str | None = None

    @property
    def label(self) -> str:
        return f"agent:{self.agent_id}" if self.agent_id else f"user:{self.user_id}"


# What an agent token may call: read its agent, talk in its agent's conversations, follow its
# runs, post through its agent's bot. Everything else (changing an agent, members, secrets,
# tokens, bot connections, other routes added later) is refused by default; the loaders below
# then keep every id to that one agent's agent, conversations and runs.
AGENT_TOKEN_ROUTES = frozenset(
    {
        ("GET", "/api/auth/me"),
        ("GET", "/api/orgs"),
        ("GET", "/api/orgs/{org_id}"),
        ("GET", "/api/agents/{agent_id}"),
        ("GET", "/api/agents/{agent_id}/runs"),
        ("GET", "/api/agents/{agent_id}/integrations/feishu"),
        ("POST", "/api/agents/{agent_id}/integrations/feishu/messages"),
        ("GET", "/api/orgs/{org_id}/conversations"),
        ("POST", "/api/orgs/{org_id}/conversations"),
        ("GET", "/api/conversations/{conversation_id}"),
        ("GET", "/api/conversations/{conversation_id}/messages"),
        ("POST", "/api/conversations/{conversation_id}/messages"),
        ("POST", "/api/conversations/{conversation_id}/stop"),
        ("GET", "/api/conversations/{conversation_id}/events"),
        ("GET", "/api/runs/{run_id}"),
        ("GET", "/api/runs/{run_id}/events"),
        ("POST", "/api/runs/{run_id}/cancel"),
    }
)


def _agent_token_may_call(request: Request) -> bool:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    method = "GET" if request.method == "HEAD" else request.method
    return (method, path) in AGENT_TOKEN_ROUTES


async def current_actor(request: Request, services: ServicesDep, session: SessionDep) -> Actor:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found = await auth.resolve_token(session, header[7:].strip())
        if found is None:
            raise Unauthorized("invalid or revoked API token")
        token, user = found
        await session.commit()
        if token.agent_id is not None and not _agent_token_may_call(request):
            raise Forbidden(texts.AGENT_TOKEN_OUT_OF_SCOPE)
        return Actor(
            user_id=user.id if user else None, agent_id=token.agent_id, token_org_id=token.org_id
        )
    if services.settings.deployment_mode is DeploymentMode.LOCAL:
        owner_id = services.components.local_owner_id
        if owner_id is None:
            owner = await orgs.local_owner(session)
            await session.commit()
            owner_id = services.components.local_owner_id = owner.id
        return Actor(user_id=owner_id)
    user_id = await signed_in_user(request, services, session)
    if user_id is None:
        detail = "sign in first, or send an API token as 'Authorization: Bearer ...'"
        if request.url.path == "/api" or request.url.path.startswith("/api/"):
            raise Unauthorized(detail)
        # A page: the browser is sent to /login, and back here (GET only) once signed in.
        query = f"?{request.url.query}" if request.url.query else ""
        next_path = request.url.path + query if request.method == "GET" else None
        raise LoginRequired(detail, next_path)
    return Actor(user_id=user_id)


async def signed_in_user(request: Request, services: Services, session: AsyncSession) -> str | None:
    """The user of the session cookie, if its session id is still live and the password unchanged.

    The cookie alone is not enough: it is signed, not revocable, so the session id it carries must
    still be in the registry (sign-out removes it) and the password must be the one it was
    started with (a new password ends every older session, even one started in another process).
    """
    if "session" not in request.scope:
        return None
    sid, user_id = request.session.get("sid"), request.session.get("user_id")
    if not isinstance(sid, str) or not isinstance(user_id, str):
        return None
    registry = session_registry(services)
    entry = await registry.get(sid)
    if entry is None or entry.user_id != user_id:
        return None
    user = await session.get(User, user_id)
    if user is None or auth.password_fingerprint(user.password_hash) != entry.password_fingerprint:
        await registry.end(sid)
        return None
    return user_id


ActorDep = Annotated[Actor, Depends(current_actor)]


async def require_org(session: AsyncSession, actor: Actor, org_id: str) -> None:
    """Raise NotFound unless the caller belongs to `org_id` (no existence leak)."""
    if actor.token_org_id is not None and actor.token_org_id != org_id:
        raise NotFound("not found")
    if actor.user_id is None:
        if actor.token_org_id == org_id:
            return
        raise NotFound("not found")
    await orgs.require_member(session, actor.user_id, org_id)


def _outside_agent_scope(actor: Actor, agent_id: str) -> bool:
    """An agent token reaches only its own agent's rows (answered 404, like another org's)."""
    return actor.agent_id is not None and actor.agent_id != agent_id


async def load_agent(session: AsyncSession, actor: Actor, agent_id: str) -> Agent:
    agent = await agents_domain.get_agent(session, agent_id)
    try:
        await require_org(session, actor, agent.org_id)
    except NotFound:
        raise NotFound("agent not found") from None
    if _outside_agent_scope(actor, agent.id):
        raise NotFound("agent not found")
    return agent


async def load_conversation(
    session: AsyncSession, actor: Actor, conversation_id: str
) -> Conversation:
    conv = await convs.get_conversation(session, conversation_id)
    try:
        await require_org(session, actor, conv.org_id)
    except NotFound:
        raise NotFound("conversation not found") from None
    if _outside_agent_scope(actor, conv.agent_id):
        raise NotFound("conversation not found")
    return conv


async def load_run(session: AsyncSession, actor: Actor, run_id: str) -> Run:
    run = await runs_domain.get_run(session, run_id)
    try:
        await require_org(session, actor, run.org_id)
    except NotFound:
        raise NotFound("run not found") from None
    if _outside_agent_scope(actor, run.agent_id):
        raise NotFound("run not found")
    return run

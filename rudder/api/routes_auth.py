"""Signing in and out (JSON), who am I, and API tokens; `sign_in` / `sign_out` serve the pages too."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from rudder import texts
from rudder.api.deps import Actor, ActorDep, ServicesDep, SessionDep, load_agent, require_org
from rudder.api.schemas import Input, Model
from rudder.config import DeploymentMode
from rudder.db.models import ApiToken, Organization, User
from rudder.domain import activity, auth, orgs
from rudder.domain.errors import Conflict, Forbidden, NotFound, Unauthorized
from rudder.security import session_registry, throttles
from rudder.services import Services

router = APIRouter(prefix="/api", tags=["auth"])


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        return texts.AUTH_THROTTLED.format(minutes=max(1, -(-self.retry_after // 60)))


def _client_address(request: Request) -> str:
    # The socket's peer: behind a reverse proxy every client shares the proxy's address, so the
    # per-address limit then acts for all clients together (X-Forwarded-For is not trusted).
    return request.client.host if request.client else "unknown"


async def sign_in(
    request: Request, services: Services, session: AsyncSession, email: str, password: str
) -> User:
    """Check the password (throttled), then start a fresh session for the user.

    Raises LoginThrottled, or Unauthorized with one message for an unknown email and a wrong
    password alike.
    """
    limits = throttles(services)
    email_key = "email:" + auth.normalize_email(email)
    address_key = "address:" + _client_address(request)
    waits = [
        limits.per_email.retry_after([email_key]),
        limits.per_address.retry_after([address_key]),
    ]
    # Checked before the password: a correct guess must not get through once the limit is hit.
    if any(waits):
        raise LoginThrottled(max(w for w in waits if w))
    # Counted as failed until the password proves right: the check runs off the event loop, so
    # parallel attempts would otherwise all pass the limit above before the first one fails.
    attempt = limits.per_email.failed([email_key])
    limits.per_address.failed([address_key])
    user = await auth.authenticate(session, email, password)
    if user is None:
        raise Unauthorized(texts.AUTH_LOGIN_FAILED)
    limits.per_email.succeeded(email_key)
    limits.per_address.forgive(address_key, attempt)
    await session.commit()  # a password rehashed with newer argon2 parameters
    await _start_session(request, services, user)
    return user


async def _start_session(request: Request, services: Services, user: User) -> None:
    """Clear and re-issue: whatever the cookie held before (perhaps planted) is gone."""
    registry = session_registry(services)
    old = request.session.get("sid")
    if isinstance(old, str):
        await registry.end(old)
    request.session.clear()
    sid = await registry.start(user.id, auth.password_fingerprint(user.password_hash))
    request.session.update({"sid": sid, "user_id": user.id, "user_name": user.name or user.email})


async def sign_out(request: Request, services: Services) -> None:
    sid = request.session.get("sid")
    if isinstance(sid, str):
        await session_registry(services).end(sid)
    request.session.clear()


# -- JSON -----------------------------------------------------------------------------------------


class LoginIn(Input):
    email: str = Field(min_length=1, max_length=320)
    # Capped: argon2 is deliberately slow and a huge body must not make it slower.
    password: str = Field(min_length=1, max_length=1024)


class MeOrg(BaseModel):
    id: str
    name: str
    slug: str
    role: str


class MeOut(BaseModel):
    deployment_mode: Literal["local", "authenticated"]
    user_id: str | None
    email: str | None
    name: str | None
    agent_id: str | None
    orgs: list[MeOrg]


@router.post("/auth/login", response_model=MeOut, responses={401: {}, 409: {}, 429: {}})
async def login(
    body: LoginIn, request: Request, services: ServicesDep, session: SessionDep
) -> MeOut:
    if services.settings.deployment_mode is DeploymentMode.LOCAL:
        raise Conflict(texts.AUTH_LOCAL_MODE)
    try:
        user = await sign_in(request, services, session, body.email, body.password)
    except LoginThrottled as exc:
        raise StarletteHTTPException(
            429, exc.detail, headers={"Retry-After": str(exc.retry_after)}
        ) from None
    return await _me(session, services, user, None)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, services: ServicesDep) -> Response:
    await sign_out(request, services)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=MeOut)
async def me(actor: ActorDep, services: ServicesDep, session: SessionDep) -> MeOut:
    user = await session.get(User, actor.user_id) if actor.user_id else None
    return await _me(session, services, user, actor)


async def _me(
    session: AsyncSession, services: Services, user: User | None, actor: Actor | None
) -> MeOut:
    found: list[MeOrg] = []
    if user is not None:
        for org in await orgs.user_orgs(session, user.id):
            member = await orgs.membership(session, user.id, org.id)
            found.append(
                MeOrg(id=org.id, name=org.name, slug=org.slug, role=member.role if member else "")
            )
    token_org = actor.token_org_id if actor else None
    if token_org is not None:
        found = [o for o in found if o.id == token_org]
        if user is None and (token_org_row := await session.get(Organization, token_org)):
            o = token_org_row
            found = [MeOrg(id=o.id, name=o.name, slug=o.slug, role="agent")]
    return MeOut(
        deployment_mode=services.settings.deployment_mode.value,
        user_id=user.id if user else None,
        email=user.email if user else None,
        name=user.name if user else None,
        agent_id=actor.agent_id if actor else None,
        orgs=found,
    )


# -- API tokens -----------------------------------------------------------------------------------


class TokenIn(Input):
    name: str = Field(min_length=1, max_length=200)
    agent_id: str | None = Field(default=None, max_length=64)


class TokenOut(Model):
    id: str
    org_id: str
    name: str
    user_id: str | None
    agent_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret, shown this once; only its SHA-256 is stored.")


async def _role(session: AsyncSession, actor_user_id: str | None, org_id: str) -> str:
    if actor_user_id is None:
        raise Forbidden(texts.AUTH_TOKEN_NEEDS_USER)
    return (await orgs.require_member(session, actor_user_id, org_id)).role


@router.post(
    "/orgs/{org_id}/api-tokens",
    response_model=TokenCreatedOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_token(
    org_id: str, body: TokenIn, actor: ActorDep, session: SessionDep
) -> TokenCreatedOut:
    await require_org(session, actor, org_id)
    role = await _role(session, actor.user_id, org_id)
    if body.agent_id is not None:
        if role not in ("owner", "admin"):
            raise Forbidden(texts.AUTH_TOKEN_AGENT_NOT_ALLOWED)
        agent = await load_agent(session, actor, body.agent_id)
        if agent.org_id != org_id:
            raise NotFound("agent not found")
        # An agent's token acts as the agent alone, not as the person who created it.
        row, secret = await auth.issue_token(
            session, org_id=org_id, name=body.name.strip(), agent_id=agent.id
        )
    else:
        row, secret = await auth.issue_token(
            session, org_id=org_id, name=body.name.strip(), user_id=actor.user_id
        )
    activity.record(
        session,
        org_id=org_id,
        actor=actor.label,
        action="api_token.created",
        entity_type="api_token",
        entity_id=row.id,
        details={"agent_id": body.agent_id} if body.agent_id else None,
    )
    await session.commit()
    return TokenCreatedOut.model_validate({**_fields(row), "token": secret})


@router.get("/orgs/{org_id}/api-tokens", response_model=list[TokenOut])
async def list_tokens(org_id: str, actor: ActorDep, session: SessionDep) -> list[TokenOut]:
    await require_org(session, actor, org_id)
    role = await _role(session, actor.user_id, org_id)
    only = None if role in ("owner", "admin") else actor.user_id
    return [
        TokenOut.model_validate(t) for t in await auth.list_tokens(session, org_id, user_id=only)
    ]


@router.delete("/api-tokens/{token_id}", response_model=TokenOut)
async def revoke_token(token_id: str, actor: ActorDep, session: SessionDep) -> TokenOut:
    row = await auth.get_token(session, token_id)
    try:
        await require_org(session, actor, row.org_id)
        role = await _role(session, actor.user_id, row.org_id)
    except (NotFound, Forbidden):
        raise NotFound("API token not found") from None
    if role not in ("owner", "admin") and row.user_id != actor.user_id:
        raise NotFound("API token not found")  # members do not see each other's tokens
    auth.revoke_token(row)
    activity.record(
        session,
        org_id=row.org_id,
        actor=actor.label,
        action="api_token.revoked",
        entity_type="api_token",
        entity_id=row.id,
    )
    await session.commit()
    return TokenOut.model_validate(row)


def _fields(row: ApiToken) -> dict[str, object]:
    return TokenOut.model_validate(row).model_dump()

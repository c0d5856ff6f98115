"""Health, organizations, members and secrets."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from rudder import __version__, texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, require_org
from rudder.api.schemas import (
    HealthOut,
    MemberIn,
    MemberOut,
    OrgIn,
    OrgOut,
    SecretIn,
    SecretOut,
    error_responses,
)
from rudder.config import DeploymentMode
from rudder.db.models import Secret, User
from rudder.domain import activity, orgs, secret_store
from rudder.domain.errors import Forbidden

router = APIRouter(prefix="/api")


@router.get("/health", response_model=HealthOut)
async def health(services: ServicesDep) -> HealthOut:
    backend = "sqlite" if services.settings.is_sqlite else "postgresql"
    return HealthOut(status="ok", version=__version__, database=backend)


@router.get("/orgs", response_model=list[OrgOut])
async def list_orgs(actor: ActorDep, session: SessionDep) -> list[OrgOut]:
    if actor.user_id is None:
        from rudder.db.models import Organization

        org = await session.get(Organization, actor.token_org_id)
        return [OrgOut.model_validate(org)] if org else []
    return [OrgOut.model_validate(o) for o in await orgs.user_orgs(session, actor.user_id)]


@router.post(
    "/orgs",
    response_model=OrgOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403),
)
async def create_org(
    body: OrgIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> OrgOut:
    if actor.user_id is None:
        raise Forbidden("only a member can create organizations")
    user = await session.get(User, actor.user_id)
    assert user is not None
    # Whoever creates an organization owns it, and owners choose its runtimes and bots: in
    # authenticated mode that is the operator's decision, not a self-service one by default.
    settings = services.settings
    if (
        settings.deployment_mode is DeploymentMode.AUTHENTICATED
        and not settings.allow_org_creation
        and not user.is_instance_admin
    ):
        raise Forbidden(texts.ORG_CREATION_ADMINS_ONLY)
    org = await orgs.create_org(session, body.name.strip(), user)
    await session.commit()
    return OrgOut.model_validate(org)


@router.get("/orgs/{org_id}", response_model=OrgOut)
async def get_org(org_id: str, actor: ActorDep, session: SessionDep) -> OrgOut:
    from rudder.db.models import Organization

    await require_org(session, actor, org_id)
    return OrgOut.model_validate(await session.get(Organization, org_id))


@router.get("/orgs/{org_id}/members", response_model=list[MemberOut])
async def list_members(org_id: str, actor: ActorDep, session: SessionDep) -> list[MemberOut]:
    await require_org(session, actor, org_id)
    return [
        MemberOut(id=m.id, user_id=u.id, email=u.email, name=u.name, role=m.role, status=m.status)
        for m, u in await orgs.members(session, org_id)
    ]


async def _require_admin(session: SessionDep, actor: ActorDep, org_id: str) -> None:
    await require_org(session, actor, org_id)
    if actor.user_id is None:
        raise Forbidden("agent tokens cannot manage the organization")
    member = await orgs.require_member(session, actor.user_id, org_id)
    if member.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins can do this")


@router.post(
    "/orgs/{org_id}/members",
    response_model=MemberOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 409),
)
async def add_member(
    org_id: str, body: MemberIn, actor: ActorDep, session: SessionDep
) -> MemberOut:
    await _require_admin(session, actor, org_id)
    m, u = await orgs.add_member(session, org_id, body.email, body.name, body.role, actor.label)
    await session.commit()
    return MemberOut(
        id=m.id, user_id=u.id, email=u.email, name=u.name, role=m.role, status=m.status
    )


@router.get("/orgs/{org_id}/secrets", response_model=list[SecretOut])
async def list_secrets(org_id: str, actor: ActorDep, session: SessionDep) -> list[SecretOut]:
    await require_org(session, actor, org_id)
    rows = await session.scalars(
        select(Secret).where(Secret.org_id == org_id).order_by(Secret.name)
    )
    # Values are never returned; only that a secret exists and when it changed.
    return [SecretOut(id=r.id, name=r.name, updated_at=r.updated_at) for r in rows]


@router.put("/orgs/{org_id}/secrets", response_model=SecretOut, responses=error_responses(403))
async def put_secret(
    org_id: str, body: SecretIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> SecretOut:
    await _require_admin(session, actor, org_id)
    row = await secret_store.put_secret(session, services.box, org_id, body.name, body.value)
    activity.record(
        session,
        org_id=org_id,
        actor=actor.label,
        action="secret.updated",
        entity_type="secret",
        entity_id=row.id,
        details={"name": body.name},
    )
    await session.commit()
    return SecretOut(id=row.id, name=row.name, updated_at=row.updated_at)

"""The organization's skills library."""

from __future__ import annotations

from fastapi import APIRouter, UploadFile, status
from sqlalchemy import select

from rudder.api.deps import ActorDep, SessionDep, require_org
from rudder.api.schemas import SkillIn, SkillOut, error_responses
from rudder.db.models import Agent, Skill
from rudder.domain import agents, skills
from rudder.domain.errors import Invalid

router = APIRouter()
SKILLS_ADMINS_ONLY = "only owners and admins can change the skills library"


async def _out(session: SessionDep, skill: Skill) -> SkillOut:
    users = [
        a.name
        for a in await session.scalars(select(Agent).where(Agent.org_id == skill.org_id))
        if skill.name in (a.skills or [])
    ]
    return SkillOut(
        id=skill.id,
        name=skill.name,
        description=skill.description,
        skill_md=skill.body,
        files=sorted(skill.files or {}),
        updated_at=skill.updated_at,
        agents=users,
    )


def _skill_md(body: SkillIn) -> str:
    if body.skill_md is not None:
        return body.skill_md
    assert body.name is not None and body.description is not None
    return skills.compose_skill_md(body.name, body.description, body.instructions or "")


@router.get("/orgs/{org_id}/skills", response_model=list[SkillOut], responses=error_responses(404))
async def list_skills(org_id: str, actor: ActorDep, session: SessionDep) -> list[SkillOut]:
    await require_org(session, actor, org_id)
    return [await _out(session, s) for s in await skills.list_skills(session, org_id)]


@router.post(
    "/orgs/{org_id}/skills",
    response_model=SkillOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 422),
)
async def create_skill(
    org_id: str, body: SkillIn, actor: ActorDep, session: SessionDep
) -> SkillOut:
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, SKILLS_ADMINS_ONLY)
    skill = await skills.save_skill(session, org_id, _skill_md(body), body.files, actor.label)
    await session.commit()
    return await _out(session, skill)


@router.post(
    "/orgs/{org_id}/skills/import",
    response_model=SkillOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 422),
)
async def import_skill(
    org_id: str,
    actor: ActorDep,
    session: SessionDep,
    file: UploadFile | None = None,
    replace: bool = False,
) -> SkillOut:
    """A zipped skill folder (SKILL.md at its top, or in one folder inside)."""
    # Who asks first: another organization's caller gets 404 whatever it sent.
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, SKILLS_ADMINS_ONLY)
    if file is None:
        raise Invalid("file: upload the zipped skill folder as the multipart field 'file'")
    data = await file.read(skills.MAX_ZIP_BYTES + 1)
    skill_md, files = skills.read_zip(data)
    skill = await skills.save_skill(session, org_id, skill_md, files, actor.label, replace=replace)
    await session.commit()
    return await _out(session, skill)


@router.get("/orgs/{org_id}/skills/{name}", response_model=SkillOut, responses=error_responses(404))
async def get_skill(org_id: str, name: str, actor: ActorDep, session: SessionDep) -> SkillOut:
    await require_org(session, actor, org_id)
    return await _out(session, await skills.get_skill(session, org_id, name))


@router.put(
    "/orgs/{org_id}/skills/{name}",
    response_model=SkillOut,
    responses=error_responses(403, 404, 422),
)
async def put_skill(
    org_id: str, name: str, body: SkillIn, actor: ActorDep, session: SessionDep
) -> SkillOut:
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, SKILLS_ADMINS_ONLY)
    await skills.get_skill(session, org_id, name)
    text = _skill_md(body)
    parsed_name, _, _ = skills.parse_skill_md(text)
    if parsed_name != name:
        raise Invalid(f"name: the SKILL.md names {parsed_name!r}, not {name!r}")
    skill = await skills.save_skill(session, org_id, text, body.files, actor.label, replace=True)
    await session.commit()
    return await _out(session, skill)


@router.delete("/orgs/{org_id}/skills/{name}", status_code=204, responses=error_responses(403, 404))
async def delete_skill(org_id: str, name: str, actor: ActorDep, session: SessionDep) -> None:
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, SKILLS_ADMINS_ONLY)
    await skills.delete_skill(session, org_id, name, actor.label)
    await session.commit()

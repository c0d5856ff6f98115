"""Organization pages: switching organization, Members (list, add) and Settings (read-only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rudder import __version__, texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep
from rudder.domain import orgs
from rudder.domain.errors import DomainError
from rudder.web.templating import ORG_SESSION_KEY, Shell, render, shell

router = APIRouter(include_in_schema=False)

ROLES = ("member", "admin", "owner")


@router.post("/switch-org")
async def switch_org(
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    org_id: Annotated[str, Form(max_length=64)] = "",
) -> RedirectResponse:
    frame = await shell(request, session, actor)
    if any(o.id == org_id for o in frame.orgs):
        request.session[ORG_SESSION_KEY] = org_id
    return RedirectResponse("/agents", status_code=303)


async def _members_page(
    request: Request,
    session: SessionDep,
    frame: Shell,
    form: dict[str, str],
    errors: list[str],
    status_code: int = 200,
) -> HTMLResponse:
    rows = await orgs.members(session, frame.current.id) if frame.current else []
    context: dict[str, Any] = {
        "members": rows,
        "roles": ROLES,
        "form": form,
        "errors": errors,
        "added": request.query_params.get("added") == "1",
    }
    return render(
        request, "org/members.html", frame, context, status_code=status_code, nav="members"
    )


@router.get("/members", response_class=HTMLResponse)
async def members(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    frame = await shell(request, session, actor)
    return await _members_page(request, session, frame, {"role": "member"}, [])


@router.post("/members", response_class=HTMLResponse)
async def add_member(
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "member",
) -> Response:
    frame = await shell(request, session, actor)
    form = {"email": email, "name": name, "role": role}
    errors: list[str] = []
    email, name = email.strip(), name.strip()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        errors.append(texts.WEB_MEMBER_EMAIL_INVALID)
    if not name:
        errors.append(texts.WEB_MEMBER_NAME_REQUIRED)
    if role not in ROLES:
        errors.append(texts.WEB_MEMBER_ROLE_INVALID)
    if frame.current is None or actor.user_id is None:
        errors.append(texts.WEB_MEMBER_NOT_ALLOWED)
    else:
        me = await orgs.membership(session, actor.user_id, frame.current.id)
        if me is None or me.role not in ("owner", "admin"):
            errors.append(texts.WEB_MEMBER_NOT_ALLOWED)
    if not errors and frame.current is not None:
        try:
            await orgs.add_member(session, frame.current.id, email, name, role, actor.label)
            await session.commit()
        except DomainError as exc:
            await session.rollback()
            errors.append(exc.detail)
    if errors:
        frame = await shell(request, session, actor)  # reloaded: a rollback expires rows
        return await _members_page(request, session, frame, form, errors, status_code=422)
    return RedirectResponse("/members?added=1", status_code=303)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(
    request: Request, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> HTMLResponse:
    frame = await shell(request, session, actor)
    settings = services.settings
    context = {
        "version": __version__,
        "deployment_mode": settings.deployment_mode.value,
        "public_url": settings.effective_public_url,
        "database": "SQLite (embedded)" if settings.is_sqlite else "PostgreSQL",
        "home": str(settings.home_dir),
        "feishu_override": settings.feishu_base_url,
    }
    return render(request, "org/settings.html", frame, context, nav="settings")

"""Organization pages: switching organization, Members (list, add, Feishu identities) and
Settings (read-only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rudder import __version__, texts
from rudder.api.deps import ActorDep, ServicesDep, SessionDep
from rudder.db.models import Integration
from rudder.domain import orgs
from rudder.domain.errors import DomainError, NotFound
from rudder.feishu import bindings, identities
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
    feishu_errors: list[str] | None = None,
) -> HTMLResponse:
    rows = await orgs.members(session, frame.current.id) if frame.current else []
    seen = await identities.identities(session, frame.current.id) if frame.current else []
    context: dict[str, Any] = {
        "members": rows,
        "active_members": [(m, u) for m, u in rows if m.status == "active"],
        "identities": seen,
        "roles": ROLES,
        "form": form,
        "errors": errors,
        "feishu_errors": feishu_errors or [],
        "added": request.query_params.get("added") == "1",
        "feishu_done": {
            "bound": texts.WEB_FEISHU_BOUND_DONE,
            "unbound": texts.WEB_FEISHU_UNBOUND_DONE,
        }.get(request.query_params.get("feishu", "")),
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


async def _feishu_change(
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    change: str,
    apply: Callable[[str], Awaitable[None]],
) -> Response:
    """Run a bind/unbind for the current organization; errors re-render the page."""
    frame = await shell(request, session, actor)
    errors: list[str] = []
    try:
        if frame.current is None:
            raise NotFound(texts.WEB_FEISHU_BIND_NOT_ALLOWED)
        await identities.require_admin(session, actor.user_id, frame.current.id)
        await apply(frame.current.id)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        errors.append(exc.detail)
    if errors:
        frame = await shell(request, session, actor)
        return await _members_page(
            request, session, frame, {"role": "member"}, [], 422, feishu_errors=errors
        )
    return RedirectResponse(f"/members?feishu={change}#feishu", status_code=303)


@router.post("/members/feishu-bindings", response_class=HTMLResponse)
async def bind_feishu_user(
    request: Request,
    actor: ActorDep,
    session: SessionDep,
    integration_id: Annotated[str, Form(max_length=64)] = "",
    open_id: Annotated[str, Form(max_length=100)] = "",
    user_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    async def apply(org_id: str) -> None:
        integration = await session.get(Integration, integration_id)
        if integration is None or integration.org_id != org_id or not open_id:
            raise NotFound(texts.WEB_FEISHU_IDENTITY_UNKNOWN)
        await bindings.bind(session, integration, open_id, None, user_id, actor=actor.label)

    return await _feishu_change(request, actor, session, "bound", apply)


@router.post("/members/feishu-bindings/{binding_id}/delete", response_class=HTMLResponse)
async def unbind_feishu_user(
    binding_id: str, request: Request, actor: ActorDep, session: SessionDep
) -> Response:
    async def apply(org_id: str) -> None:
        await identities.unbind(session, org_id, binding_id, actor.label)

    return await _feishu_change(request, actor, session, "unbound", apply)


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

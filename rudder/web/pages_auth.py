"""The sign-in page and sign-out (authenticated mode; in local mode there is nobody to sign in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rudder.api.deps import ServicesDep, SessionDep, signed_in_user
from rudder.api.routes_auth import LoginThrottled, sign_in, sign_out
from rudder.config import DeploymentMode
from rudder.domain.errors import Unauthorized
from rudder.security import safe_next
from rudder.web.templating import fragment

router = APIRouter(include_in_schema=False)


def _login_page(
    request: Request,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    context = {
        "next": next_path,
        "email": email,
        "error": error,
        "signed_out": request.query_params.get("signed_out") == "1",
    }
    response = fragment(request, "auth/login.html", context, status_code=status_code)
    response.headers.update(headers or {})
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if services.settings.deployment_mode is DeploymentMode.LOCAL:
        return RedirectResponse(next_path, status_code=303)
    if await signed_in_user(request, services, session):
        return RedirectResponse(next_path, status_code=303)
    return _login_page(request, next_path=next_path)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    next_path = safe_next(next)
    if services.settings.deployment_mode is DeploymentMode.LOCAL:
        return RedirectResponse(next_path, status_code=303)
    try:
        await sign_in(request, services, session, email, password)
    except LoginThrottled as exc:
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error=exc.detail,
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except Unauthorized as exc:
        return _login_page(
            request, next_path=next_path, email=email, error=exc.detail, status_code=401
        )
    return RedirectResponse(next_path, status_code=303)


@router.post("/logout")
async def logout(request: Request, services: ServicesDep) -> RedirectResponse:
    await sign_out(request, services)
    if services.settings.deployment_mode is DeploymentMode.LOCAL:
        return RedirectResponse("/", status_code=303)
    return RedirectResponse("/login?signed_out=1", status_code=303)

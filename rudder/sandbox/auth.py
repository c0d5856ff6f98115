"""Open host: access tokens (auth v3) and bot info."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox.envelope import (
    authorize,
    bad_request,
    find_app,
    gate,
    json_response,
    read_json_object,
)
from rudder.sandbox.tokens import TokenKind

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

APP_SECRET_INVALID = 10014


async def _issue(request: Request, kind: TokenKind) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    body = await read_json_object(request)
    if body is None:
        return bad_request()
    app_id, app_secret = body.get("app_id"), body.get("app_secret")
    if (
        not isinstance(app_id, str)
        or not app_id
        or not isinstance(app_secret, str)
        or not app_secret
    ):
        return json_response({"code": 10003, "msg": "param is invalid"}, status=400)
    app = find_app(sandbox, request, app_id)
    # Token endpoints answer HTTP 200 with code 10014 for both failures (reference §3.1).
    if app is None:
        return json_response({"code": APP_SECRET_INVALID, "msg": "app id not exists"})
    if app_secret != app.app_secret:
        return json_response({"code": APP_SECRET_INVALID, "msg": "app secret invalid"})
    blocked = gate(sandbox, request, f"auth.{kind}_access_token", app.app_id)
    if blocked is not None:
        return blocked
    now = sandbox.clock.now()
    # Token responses put their fields at top level, not under "data".
    if kind == "tenant":
        token, expire = sandbox.tokens.issue(app.app_id, "tenant", now)
        return json_response(
            {"code": 0, "msg": "ok", "tenant_access_token": token.value, "expire": expire}
        )
    token, expire = sandbox.tokens.issue(app.app_id, "app", now)
    tenant, _ = sandbox.tokens.issue(app.app_id, "tenant", now)
    return json_response(
        {
            "code": 0,
            "msg": "ok",
            "app_access_token": token.value,
            "expire": expire,
            "tenant_access_token": tenant.value,
        }
    )


async def tenant_access_token(request: Request) -> Response:
    return await _issue(request, "tenant")


async def app_access_token(request: Request) -> Response:
    return await _issue(request, "app")


async def bot_info(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, "bot.info")
    if isinstance(app, Response):
        return app
    bot = {
        "activate_status": 2,
        "app_name": app.name,
        "avatar_url": "",
        "ip_white_list": [],
        "open_id": app.bot_open_id,
    }
    # bot/v3/info puts "bot" at top level, not under "data" (reference §3.4).
    return json_response({"code": 0, "msg": "ok", "bot": bot})


routes = [
    Route("/open-apis/auth/v3/tenant_access_token/internal", tenant_access_token, methods=["POST"]),
    Route("/open-apis/auth/v3/app_access_token/internal", app_access_token, methods=["POST"]),
    Route("/open-apis/bot/v3/info", bot_info, methods=["GET"]),
]

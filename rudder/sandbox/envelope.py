"""Feishu-shaped HTTP answers, request parsing, host brands and bearer-token checks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rudder.sandbox.state import App, Brand

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

ORIGINAL_HOST_HEADER = "x-rudder-original-host"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Feishu's generic answer to a request it cannot parse.
BAD_REQUEST_CODE = 9499
MISSING_TOKEN = 99991661
INVALID_TOKEN = 99991663
RATE_LIMITED = 99991400


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Feishu always answers application/json; charset=utf-8, and the py SDK only parses JSON
    # when the Content-Type says so (reference §0).
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(raw, status_code=status, headers=headers, media_type=JSON_CONTENT_TYPE)


def ok(data: Any = None, msg: str = "success") -> Response:
    return json_response({"code": 0, "msg": msg, "data": {} if data is None else data})


def fail(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": code, "msg": msg, "data": {}}, status=status, headers=headers)


ACCESS_DENIED = 99991672


def access_denied(scopes: tuple[str, ...]) -> Response:
    """The app lacks every scope that would allow the call (the message names them, as Feishu's)."""
    return fail(
        ACCESS_DENIED,
        f"Access denied. One of the following scopes is required: [{', '.join(scopes)}].",
    )


def bad_request(detail: str = "Bad Request") -> Response:
    return fail(BAD_REQUEST_CODE, detail)


def control_error(status: int, error: str, detail: str) -> Response:
    return json_response({"error": error, "detail": detail}, status=status)


async def read_json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object, or None if it is absent, malformed or not an object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def host_brand(request: Request) -> Brand | None:
    """The brand of the host the caller meant, when it says (X-Rudder-Original-Host)."""
    host = request.headers.get(ORIGINAL_HOST_HEADER, "").strip().lower().split(":")[0]
    if not host:
        return None
    if host == "larksuite.com" or host.endswith(".larksuite.com"):
        return "lark"
    if host.endswith(("feishu.cn", "larkoffice.com")):
        return "feishu"
    return None


HOST_PREFIX = "/_hosts/"


class HostPrefix:
    """`/_hosts/<host>/<path>` serves `<path>` as if it had been asked of `<host>`.

    The sandbox is one origin for every Feishu and Lark host. A client that can add a header says
    which host it meant in X-Rudder-Original-Host; one that only takes a base URL (the SDKs'
    `domain`), or a person's browser following a link, names the host in the path instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and path.startswith(HOST_PREFIX):
            named, slash, rest = path[len(HOST_PREFIX) :].partition("/")
            if named and slash:
                header = ORIGINAL_HOST_HEADER.encode()
                headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != header]
                headers.append((header, named.lower().encode("latin-1", "replace")))
                scope = {
                    **scope,
                    "path": "/" + rest,
                    "raw_path": ("/" + rest).encode(),
                    "headers": headers,
                }
        await self.app(scope, receive, send)


def app_visible(app: App, request: Request) -> bool:
    # Feishu and Lark are separate clouds: an app of one is unknown on the other's hosts.
    brand = host_brand(request)
    return brand is None or brand == app.brand


def find_app(sandbox: Sandbox, request: Request, app_id: object) -> App | None:
    if not isinstance(app_id, str):
        return None
    app = sandbox.apps.get(app_id)
    if app is None or not app_visible(app, request):
        return None
    return app


def rate_limit_response(limit: int, reset_s: int) -> Response:
    return fail(
        RATE_LIMITED,
        "request trigger frequency limit",
        status=429,
        headers={"x-ogw-ratelimit-limit": str(limit), "x-ogw-ratelimit-reset": str(reset_s)},
    )


def gate(sandbox: Sandbox, request: Request, api: str, app_id: str) -> Response | None:
    """Injected faults first, then the per app x API rate limit."""
    fault = sandbox.take_fault(api, request.url.path, app_id)
    if fault is not None:
        return fault
    limited = sandbox.api_limiter.check(
        app_id, api, sandbox.settings.api_per_second, sandbox.settings.api_per_minute
    )
    if limited is not None:
        return rate_limit_response(limited.limit, limited.reset_s)
    return None


def authorize(sandbox: Sandbox, request: Request, api: str) -> App | Response:
    """Resolve the bearer token to its app, or answer the way the open host does."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return fail(
            MISSING_TOKEN,
            "Missing access token for authorization. Please make a request with token attached.",
        )
    token = sandbox.tokens.lookup(value, sandbox.clock.now())
    app = sandbox.apps.get(token.app_id) if token is not None else None
    if app is None or not app_visible(app, request):
        return fail(
            INVALID_TOKEN,
            "Invalid access token for authorization. Please make a request with token attached.",
        )
    return gate(sandbox, request, api, app.app_id) or app

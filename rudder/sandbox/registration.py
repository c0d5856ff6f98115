"""Accounts host: one-click app registration (device flow) and its confirm page (reference §2)."""

from __future__ import annotations

import base64
import gzip
import html
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from rudder.sandbox.envelope import HOST_PREFIX, host_brand, json_response
from rudder.sandbox.state import Brand, Registration, RegistrationStatus, new_user_code

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

DEFAULT_USER_NAME = "Sandbox User"


def _error(error: str, description: str, code: int | None = None) -> Response:
    # Device-flow errors come back as HTTP 400 with a JSON body (RFC 8628 style, §2.1).
    body: dict[str, Any] = {"error": error, "error_description": description}
    if code is not None:
        body["code"] = code
    return json_response(body, status=400)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


async def registration(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    try:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return _error("invalid_request", "body is not form-encoded UTF-8")
    action = (form.get("action") or [""])[0]
    if action == "init":
        return json_response({"supported_auth_methods": ["client_secret"]})
    if action == "begin":
        return _begin(sandbox, request)
    if action == "poll":
        return _poll(sandbox, request, (form.get("device_code") or [""])[0])
    return _error("invalid_request", f"unsupported action {action!r}")


def _begin(sandbox: Sandbox, request: Request) -> Response:
    # Both accounts hosts answer `begin` (third-party clients begin on accounts.larksuite.com and
    # get an open.larksuite.com link back); the official SDKs and CLI always begin on Feishu's.
    now = sandbox.clock.now()
    reg = Registration(
        device_code=secrets.token_urlsafe(32),
        user_code=new_user_code(),
        created_at=now,
        expires_in=sandbox.settings.registration_expires_in,
        begin_brand=host_brand(request) or "feishu",
    )
    sandbox.registrations[reg.device_code] = reg
    sandbox.touch()
    base = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    if (named := host_brand(request)) is not None:
        # The link is on the open host of the brand that was asked (open.feishu.cn/page/...).
        base += f"{HOST_PREFIX}open.{'larksuite.com' if named == 'lark' else 'feishu.cn'}"
    return json_response(
        {
            "device_code": reg.device_code,
            "user_code": reg.user_code,
            "verification_uri": f"{base}/page/cli",
            "verification_uri_complete": f"{base}/page/cli?user_code={reg.user_code}",
            "interval": _number(sandbox.settings.registration_interval),
            # go and hermes read expire_in, node/py/cli read expires_in: send both (§2.3).
            "expires_in": reg.expires_in,
            "expire_in": reg.expires_in,
        }
    )


def _poll(sandbox: Sandbox, request: Request, device_code: str) -> Response:
    reg = sandbox.registrations.get(device_code)
    if reg is None:
        return _error("invalid_grant", "unknown device_code")
    host = host_brand(request)
    reg.polls[host or ""] = reg.polls.get(host or "", 0) + 1
    now = sandbox.clock.now()
    if reg.expired(now):
        return _error("expired_token", "the device code has expired")
    last, reg.last_poll_at = reg.last_poll_at, now
    interval = sandbox.settings.registration_interval
    # Allow for timer jitter: a client sleeping exactly `interval` must not be told to slow down.
    if last is not None and interval > 0 and now - last < interval * 0.8:
        return _error("slow_down", "polling too frequently")
    if reg.status is RegistrationStatus.DENIED:
        return _error("access_denied", "the user denied the request")
    if reg.status is RegistrationStatus.PENDING:
        return _error("authorization_pending", "", code=20094)
    app = sandbox.apps.get(reg.app_id or "")
    user = sandbox.users.get(reg.user_id or "")
    if app is None or user is None:
        return _error("expired_token", "the approved app no longer exists")
    user_info = {"open_id": user.open_id(app.app_id), "tenant_brand": app.brand}
    if _answering_brand(reg, host) != app.brand:
        # Feishu and Lark are separate clouds: the secret of a tenant's new app comes only from
        # its own brand's accounts host. The other host names the tenant's brand, without the
        # secret; the SDKs then re-poll the same device_code there at once (reference §2.5).
        reg.brand_switch_served = True
        # That immediate re-poll on the other host is not "too fast".
        reg.last_poll_at = None
        return json_response({"client_id": app.app_id, "user_info": user_info})
    return json_response(
        {"client_id": app.app_id, "client_secret": app.app_secret, "user_info": user_info}
    )


def _answering_brand(reg: Registration, host: Brand | None) -> Brand:
    """The brand of the accounts host answering this poll."""
    if host is not None:
        return host
    # One origin and no host named: answer as the host the registration began on until the
    # switch answer has been served, and as the tenant's host afterwards, so a client given the
    # same URL for both hosts still completes.
    if reg.brand_switch_served and reg.approved_brand is not None:
        return reg.approved_brand
    return reg.begin_brand


def find_by_user_code(sandbox: Sandbox, user_code: str) -> Registration | None:
    wanted = user_code.strip().upper()
    return next((r for r in sandbox.registrations.values() if r.user_code == wanted), None)


def approve(
    sandbox: Sandbox,
    reg: Registration,
    user_name: str | None = None,
    brand: Brand | None = None,
    app_name: str | None = None,
) -> dict[str, Any]:
    if reg.status is RegistrationStatus.APPROVED and reg.app_id in sandbox.apps:
        app = sandbox.apps[reg.app_id]
        user = sandbox.users[reg.user_id or ""]
    else:
        name = user_name or DEFAULT_USER_NAME
        user = sandbox.find_user_by_name(name) or sandbox.create_user(name)
        # Whoever approves is signed in to the product whose confirm page they opened.
        chosen: Brand = brand or reg.page_brand or reg.begin_brand
        prefill_name = reg.prefill.get("name")
        label = app_name or (prefill_name if isinstance(prefill_name, str) and prefill_name else "")
        app = sandbox.create_app((label or "Sandbox Bot").replace("{user}", user.name), chosen)
        desc = reg.prefill.get("desc")
        app.description = desc.replace("{user}", user.name) if isinstance(desc, str) else ""
        # The app holds what the preset asked for (and the person approved), nothing more.
        addons = reg.prefill.get("addons")
        if isinstance(addons, dict):
            app.scopes = granted_scopes(addons)
            app.callback_types = granted_callbacks(addons)
        reg.status = RegistrationStatus.APPROVED
        reg.app_id, reg.user_id, reg.approved_brand = app.app_id, user.user_id, chosen
        sandbox.touch()
    return {
        "user_code": reg.user_code,
        "status": reg.status.value,
        "app_id": app.app_id,
        "app_secret": app.app_secret,
        "brand": app.brand,
        "user_id": user.user_id,
        "open_id": user.open_id(app.app_id),
    }


def deny(sandbox: Sandbox, reg: Registration) -> dict[str, Any]:
    if reg.status is RegistrationStatus.PENDING:
        reg.status = RegistrationStatus.DENIED
        sandbox.touch()
    return {"user_code": reg.user_code, "status": reg.status.value}


def decode_addons(raw: str) -> dict[str, Any]:
    """addons = base64url(gzip(JSON)) without padding (§2.4); {} when unreadable."""
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value = json.loads(gzip.decompress(base64.urlsafe_b64decode(padded)))
    except (ValueError, OSError, EOFError):
        return {}
    return value if isinstance(value, dict) else {}


def granted_scopes(addons: dict[str, Any]) -> list[str]:
    """The scope names the preset asked for (tenant and user), as the app then holds them."""
    scopes = addons.get("scopes")
    found: list[str] = []
    if isinstance(scopes, dict):
        for kind in ("tenant", "user"):
            items = scopes.get(kind)
            if isinstance(items, list):
                found.extend(s for s in items if isinstance(s, str) and s not in found)
    return found


def granted_callbacks(addons: dict[str, Any]) -> list[str]:
    """The callbacks a preset subscribes (`callbacks.items`); none when it names none."""
    callbacks = addons.get("callbacks")
    items = callbacks.get("items") if isinstance(callbacks, dict) else None
    return [c for c in items if isinstance(c, str)] if isinstance(items, list) else []


def requested_scopes(addons: dict[str, Any]) -> list[str]:
    scopes = addons.get("scopes")
    found: list[str] = []
    if isinstance(scopes, dict):
        for kind in ("tenant", "user"):
            items = scopes.get(kind)
            if isinstance(items, list):
                found.extend(f"{s} ({kind})" for s in items if isinstance(s, str))
    return found


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Create app · Sandbox</title>
<link rel="stylesheet" href="/_sandbox/page.css"></head><body class="confirm"><div class="card">
<h1>Create a bot app</h1><p>Feishu/Lark Open Platform sandbox · code <b id="user-code">{user_code}</b> · {status}</p>
<form method="post" action="/page/cli/decision">
<input type="hidden" name="user_code" value="{user_code}">
<dl><dt>App name</dt><dd><input name="app_name" id="app-name" value="{name}"></dd>
<dt>Description</dt><dd id="app-desc">{desc}</dd>
<dt>Requested scopes</dt><dd><ul id="scopes">{scopes}</ul></dd>
<dt>Events</dt><dd><ul id="events">{events}</ul></dd>
<dt>You are</dt><dd><input name="user_name" value="{user_name}"></dd>
<dt>Tenant</dt><dd><select name="brand"><option value="feishu"{feishu_sel}>Feishu</option>
<option value="lark"{lark_sel}>Lark</option></select></dd></dl>
<button name="decision" value="approve" id="approve">Approve</button>
<button name="decision" value="deny" id="deny">Deny</button></form></div></body></html>"""


def _items(values: list[str]) -> str:
    return "".join(f"<li>{html.escape(v)}</li>" for v in values) or "<li>(none)</li>"


async def confirm_page(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    q = request.query_params
    reg = find_by_user_code(sandbox, q.get("user_code", ""))
    if reg is None:
        return HTMLResponse("<h1>Link expired</h1><p>Unknown or expired user code.</p>", 404)
    addons = decode_addons(q.get("addons", ""))
    for key in ("name", "desc"):
        if q.get(key):
            reg.prefill[key] = q[key]
    if addons:
        reg.prefill["addons"] = addons
    items = (
        addons.get("events", {}).get("items", {}) if isinstance(addons.get("events"), dict) else {}
    )
    events = [e for v in items.values() if isinstance(v, list) for e in v if isinstance(e, str)]
    page_host = host_brand(request)
    if page_host is not None and reg.status is RegistrationStatus.PENDING:
        reg.page_brand = page_host
    brand = page_host or reg.page_brand or reg.begin_brand
    status = "expired" if reg.expired(sandbox.clock.now()) else reg.status.value
    page = _PAGE.format(
        user_code=html.escape(reg.user_code),
        status=html.escape(status),
        name=html.escape(str(reg.prefill.get("name", ""))),
        desc=html.escape(str(reg.prefill.get("desc", ""))),
        scopes=_items(requested_scopes(addons)),
        events=_items(events),
        user_name=html.escape(DEFAULT_USER_NAME),
        feishu_sel=" selected" if brand == "feishu" else "",
        lark_sel=" selected" if brand == "lark" else "",
    )
    return HTMLResponse(page)


async def confirm_decision(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    form = parse_qs((await request.body()).decode(errors="replace"))
    field = {k: v[0] for k, v in form.items() if v}
    reg = find_by_user_code(sandbox, field.get("user_code", ""))
    if reg is None or reg.expired(sandbox.clock.now()):
        return HTMLResponse("<h1>Link expired</h1>", 404)
    if field.get("decision") == "deny":
        deny(sandbox, reg)
        return HTMLResponse("<h1>Denied</h1><p>You can close this page.</p>")
    brand_field = field.get("brand")
    brand: Brand | None = brand_field if brand_field in ("feishu", "lark") else None  # type: ignore[assignment]
    result = approve(sandbox, reg, field.get("user_name"), brand, field.get("app_name"))
    return HTMLResponse(
        f"<h1>Approved</h1><p>App <code>{html.escape(result['app_id'])}</code> created. "
        "You can close this page.</p>"
    )


routes = [
    Route("/oauth/v1/app/registration", registration, methods=["POST"]),
    Route("/page/cli", confirm_page, methods=["GET"]),
    Route("/page/launcher", confirm_page, methods=["GET"]),
    Route("/page/cli/decision", confirm_decision, methods=["POST"]),
]

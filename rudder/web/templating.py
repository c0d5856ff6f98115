"""Jinja2 environment and the page shell: the current organization and the org switcher."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from rudder import texts
from rudder.api.deps import Actor
from rudder.db.models import Organization
from rudder.domain import orgs
from rudder.media.sniff import INLINE_TYPES

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

ORG_SESSION_KEY = "org_id"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the database stores naive UTC
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


templates.env.filters["when"] = _when


def _filesize(value: int) -> str:
    size = float(value)
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MB"


templates.env.filters["filesize"] = _filesize
# Attachments shown inline in a conversation (everything else is a download).
templates.env.globals["inline_image_types"] = INLINE_TYPES
templates.env.globals["texts"] = texts


@dataclass(frozen=True, slots=True)
class Shell:
    """What every page's frame needs: the caller's organizations and which one is current."""

    orgs: list[Organization]
    current: Organization | None


async def shell(
    request: Request, session: AsyncSession, actor: Actor, org_id: str | None = None
) -> Shell:
    """The caller's organizations; `org_id` (from the page's object) wins over the remembered one."""
    org_list = await orgs.user_orgs(session, actor.user_id) if actor.user_id else []
    wanted = org_id or request.session.get(ORG_SESSION_KEY)
    current = next((o for o in org_list if o.id == wanted), org_list[0] if org_list else None)
    if current is not None and org_id is not None:
        request.session[ORG_SESSION_KEY] = current.id
    return Shell(orgs=org_list, current=current)


def sandbox_url(base_url: str | None) -> str | None:
    """The sandbox's user page when Rudder talks to the offline sandbox (a loopback Feishu URL)."""
    if not base_url:
        return None
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None
    return base_url.rstrip("/") + "/_sandbox/"


def _sandbox_link(request: Request) -> str | None:
    services = getattr(request.app.state, "services", None)
    settings = getattr(services, "settings", None)
    return sandbox_url(getattr(settings, "feishu_base_url", None))


def render(
    request: Request,
    name: str,
    frame: Shell | None,
    context: dict[str, Any],
    status_code: int = 200,
    nav: str = "",
) -> HTMLResponse:
    data = {"shell": frame, "nav": nav, "sandbox_url": _sandbox_link(request), **context}
    return templates.TemplateResponse(request, name, data, status_code=status_code)


def fragment(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def not_found(request: Request, frame: Shell | None, what: str) -> HTMLResponse:
    return render(
        request, "not_found.html", frame, {"what": what}, status_code=404, nav="not_found"
    )

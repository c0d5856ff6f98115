"""`/connect/{setup_id}`: a short link to a pending setup's authorization page.

The authorization URL carries the bot's name, description and preset scopes (~530 characters),
too long for a QR code that fits an 80-column terminal; this link is short enough for one that
fits in 40. It needs no sign-in (it is opened on a phone), and tells no more than the
authorization URL it leads to, which is what the QR code showed before.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rudder import texts
from rudder.db.models import SetupSession, utcnow
from rudder.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/connect/{setup_id}")
async def setup_link(setup_id: str, request: Request) -> Response:
    services = request.app.state.services
    row = None
    if len(setup_id) <= 64:
        async with services.sessions() as session:
            row = await session.get(SetupSession, setup_id)
    if row is None:
        return _ended(request, texts.SETUP_LINK_UNKNOWN, 404)
    if row.status != "pending" or row.expires_at <= utcnow():
        return _ended(request, texts.SETUP_LINK_ENDED.format(status=row.status), 410)
    return RedirectResponse(row.verification_url, status_code=307)


def _ended(request: Request, reason: str, status: int) -> HTMLResponse:
    context = {"heading": texts.SETUP_LINK_HEADING, "reason": reason}
    return render(request, "setup_link.html", None, context, status_code=status)


def short_setup_link(public_url: str, setup_id: str) -> str:
    return f"{public_url.rstrip('/')}/connect/{setup_id}"

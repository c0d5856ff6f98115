"""The user page's media and card behaviour, served as a static script (no inline code)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCRIPT = Path(__file__).with_name("static") / "page-extras.js"


async def script(request: Request) -> Response:
    return Response(
        SCRIPT.read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


routes = [Route("/_sandbox/page-extras.js", script, methods=["GET"])]

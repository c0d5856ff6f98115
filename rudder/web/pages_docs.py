"""The API reference at /docs, served from files in the package (it must work offline), and the icon."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from rudder.web.templating import HERE

router = APIRouter(include_in_schema=False)

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Rudder API</title>
  <link rel="icon" href="{static}/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{static}/swagger/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{static}/swagger/swagger-ui-bundle.js"></script>
  <script src="{static}/swagger/init.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    # Paths only: the page names no origin at all, its own included.
    static = request.app.url_path_for("web-static", path="x").removesuffix("/x")
    openapi = request.app.openapi_url or "/openapi.json"
    return HTMLResponse(_DOCS_PAGE.format(static=static, openapi=openapi))


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

"""HTML pages. A small index for now; the full UI grows here."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from rudder import texts
from rudder.api.deps import ActorDep, SessionDep
from rudder.domain import agents, orgs

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, actor: ActorDep, session: SessionDep) -> HTMLResponse:
    org_list = await orgs.user_orgs(session, actor.user_id) if actor.user_id else []
    sections = [(org, await agents.list_agents(session, org.id)) for org in org_list]
    return templates.TemplateResponse(
        request, "index.html", {"sections": sections, "example_label": texts.EXAMPLE_AGENT_LABEL}
    )

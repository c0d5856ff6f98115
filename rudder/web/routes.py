"""The HTML pages, one module per page group, plus their static files (vendored htmx, CSS)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from rudder.web import (
    pages_agents,
    pages_agents_host,
    pages_auth,
    pages_chat_policy,
    pages_connect,
    pages_docs,
    pages_integrations,
    pages_messenger,
    pages_org,
    pages_org_host,
)
from rudder.web.templating import HERE

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=HERE / "static"), name="web-static")
router.include_router(pages_auth.router)
router.include_router(pages_docs.router)
router.include_router(pages_connect.router)
# Before pages_agents and pages_messenger: /agents/new and /messenger/attention are not ids.
router.include_router(pages_agents_host.router)
router.include_router(pages_org_host.router)
router.include_router(pages_agents.router)
router.include_router(pages_integrations.router)
router.include_router(pages_chat_policy.router)
router.include_router(pages_messenger.router)
router.include_router(pages_org.router)

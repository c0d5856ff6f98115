"""Stored XSS and framing: every page, with hostile names and messages planted, must carry the
security headers and contain no inline script, inline event handler, inline style or
`javascript:` URL, so that nothing a stranger writes can run even where escaping slipped.

On the old code this fails on every page: the org switcher had `onchange=`, the Disconnect
button `onsubmit="return confirm('… {{ agent.name|e }}?')"` (an agent named
`Ex'+(document.title='PWNED')+'` ran script), the bind page and the sandbox's pages inline
scripts and styles, and no response had a Content-Security-Policy.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser

import httpx
import pytest

from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.server import RunningServer, create_app
from rudder.services import Services
from rudder.web.headers import OTHER_CSP, PAGE_CSP
from tests.hostile.conftest import count
from tests.hostile.hostile_world import World, bind_and_resend, plant

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data"}


class InlineCode(HTMLParser):
    """Everything in a page that would run or style without a file of ours behind it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower() for k, _ in attrs}
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…> (inline event handler)")
            elif name == "style":
                self.found.append(f"<{tag} style=…> (inline style)")
            elif name.startswith("hx-on") or name.startswith("data-hx-on"):
                self.found.append(f"<{tag} {name}=…> (htmx inline handler)")
            elif name in ("hx-vals", "hx-vars", "data-hx-vals") and (value or "").startswith("js:"):
                self.found.append(f"<{tag} {name}=js:…> (htmx eval)")
            elif name in URL_ATTRIBUTES and (value or "").strip().lower().startswith(
                ("javascript:", "vbscript:", "data:text/html")
            ):
                self.found.append(f"<{tag} {name}={value!r}> (script URL)")
        if tag == "script":
            if "src" not in names:
                self.found.append("<script> without src (inline script)")
            self._in_script = True
        elif tag == "style":
            self.found.append("<style> element (inline style)")
        elif tag in ("iframe", "object", "embed", "base"):
            self.found.append(f"<{tag}> element")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("<script src> with inline text")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


def header_problems(response: httpx.Response, csp: str) -> list[str]:
    h = response.headers
    wanted = {
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "same-origin",
    }
    return [f"{k}: {h.get(k)!r}, wanted {v!r}" for k, v in wanted.items() if h.get(k) != v]


@dataclass
class Site:
    url: str
    sandbox_url: str
    api: httpx.AsyncClient
    sb: httpx.AsyncClient
    services: Services
    world: World


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[Site]:
    async with SandboxServer() as sandbox, httpx.AsyncClient(base_url=sandbox.url) as sb:
        await sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})
        settings.feishu_base_url = sandbox.url
        app = create_app(settings)
        async with (
            RunningServer(app) as server,
            httpx.AsyncClient(base_url=server.url, timeout=20) as api,
        ):
            settings.public_url = server.url
            services: Services = app.state.services
            world = await plant(api, sb, services)
            await bind_and_resend(api, sb, world)
            yield Site(server.url, sandbox.url, api, sb, services, world)


def _check_page(response: httpx.Response, where: str) -> list[str]:
    problems = [f"{where}: status {response.status_code}"] if response.status_code >= 500 else []
    if "text/html" not in response.headers.get("content-type", ""):
        return [*problems, f"{where}: not HTML ({response.headers.get('content-type')})"]
    problems += [f"{where}: {p}" for p in header_problems(response, PAGE_CSP)]
    problems += [f"{where}: {p}" for p in inline_code(response.text)]
    return problems


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_page_has_headers_and_no_inline_code(site: Site) -> None:
    """Every page of Rudder and of the sandbox, with hostile text planted on each."""
    problems: list[str] = []
    pages = 0
    for path in site.world.rudder_pages():
        response = await site.api.get(path, follow_redirects=True)
        found = _check_page(response, path)
        count("pages checked for headers and inline code", 1)
        count("pages with missing headers or inline code", 1 if found else 0)
        problems += found
        pages += 1
    for path in site.world.sandbox_pages():
        response = await site.sb.get(path, follow_redirects=True)
        found = _check_page(response, f"sandbox {path}")
        count("pages checked for headers and inline code", 1)
        count("pages with missing headers or inline code", 1 if found else 0)
        problems += found
        pages += 1
    assert pages >= 25
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_answers_that_are_not_pages_are_not_frameable_or_sniffable(site: Site) -> None:
    """JSON, event streams, static files, errors: the common headers and a deny-all CSP."""
    w = site.world
    answers = [
        await site.api.get("/api/orgs"),
        await site.api.get(f"/api/agents/{w.quote_agent}"),
        await site.api.get("/api/agents/no-such-agent"),
        await site.api.post(f"/api/orgs/{w.org_id}/agents", json={"name": ""}),
        await site.api.get("/static/app.js"),
        await site.api.get("/static/app.css"),
        await site.api.get("/openapi.json"),
        await site.api.post(
            f"/api/orgs/{w.org_id}/agents",
            json={"name": "x"},
            headers={"Origin": "https://evil.example"},
        ),
        await site.sb.get("/_sandbox/api/users"),
        await site.sb.get("/_sandbox/page.js"),
    ]
    async with site.api.stream("GET", f"/api/conversations/{w.conversation}/events") as stream:
        answers.append(stream)
    problems = []
    for response in answers:
        where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
        found = header_problems(response, OTHER_CSP)
        count("non-page answers checked for headers", 1)
        count("non-page answers with missing headers", 1 if found else 0)
        problems += [f"{where}: {p}" for p in found]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_api_reference_runs_only_scripts_of_its_own(client: httpx.AsyncClient) -> None:
    """/docs is Swagger UI served from the package: scripts from this origin only, none inline."""
    docs = await client.get("/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    assert not re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'"]
    assert "frame-ancestors 'none'" in csp
    assert docs.headers["x-frame-options"] == "DENY"

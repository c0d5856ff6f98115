"""Security headers on every HTTP response: a strict Content-Security-Policy for pages.

Pages carry text anyone can write (agent and org names, Feishu messages, runtime output). Jinja
escapes it, and the CSP makes a slip harmless: no inline script, no inline event handler, no
`javascript:` URL and no inline style runs, nothing loads from another site, and no other site may
frame the page (clickjacking of the Disconnect button or the Feishu bind page). The scripts live
under `rudder/web/static/` (`app.js` for `data-confirm` and `data-autosubmit`).

`Referrer-Policy: same-origin`, not `no-referrer`: bind links carry their code in the path, so
no other site may see our URLs, but a browser sends `Origin: null` on a form POST when the policy
is `no-referrer`, and the CSRF check (`rudder.security`) refuses that. `same-origin` keeps the
Origin of our own form posts and sends nothing to other sites.

A small ASGI middleware of our own: Starlette has none for these headers and the policy needs
one exception (the API reference below), which a generic library would not know about.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# JSON, event streams, static files: nothing in them may run or be framed if opened directly.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
)

# The API reference (/docs, rudder.web.pages_docs): Swagger UI from files in the package, no user
# text. Its widgets draw icons as data: images and style elements inline, which pages don't need.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DOCS_PATHS = frozenset({"/docs"})


def _is_html(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"text/html" in v.lower() for k, v in headers)


class SecurityHeaders:
    """Add the CSP (pages: `page_csp`; anything else: `OTHER_CSP`) and the common headers.

    A response that sets its own Content-Security-Policy keeps it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        page_csp: str = PAGE_CSP,
        docs_paths: frozenset[str] = DOCS_PATHS,
    ) -> None:
        self.app = app
        self.page_csp = page_csp
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path") in self.docs_paths else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._add(list(message.get("headers", [])), csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(
        self, headers: list[tuple[bytes, bytes]], csp: str | None
    ) -> list[tuple[bytes, bytes]]:
        present = {k.lower() for k, _ in headers}
        if b"content-security-policy" not in present:
            if csp is None:
                csp = self.page_csp if _is_html(headers) else OTHER_CSP
            headers.append((b"content-security-policy", csp.encode()))
        for name, value in COMMON_HEADERS:
            if name.encode() not in present:
                headers.append((name.encode(), value.encode()))
        return headers

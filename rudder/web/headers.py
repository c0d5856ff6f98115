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
two exceptions (the API explorer pages below), which a generic library would not know about.
"""

from __future__ import annotations

import base64
import hashlib
import re
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

# FastAPI's own API explorer pages (/docs, /redoc): fixed content (title and the OpenAPI URL),
# no user text, loaded from the jsDelivr CDN. Their one inline script is allowed by its hash,
# computed from the page itself; their widgets set inline styles.
EXPLORER_CDN = "https://cdn.jsdelivr.net"
EXPLORER_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def explorer_csp(body: bytes) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(body)
    )
    return (
        f"default-src 'none'; script-src {EXPLORER_CDN} {hashes}; "
        f"style-src {EXPLORER_CDN} https://fonts.googleapis.com 'unsafe-inline'; "
        f"font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
        f"https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; object-src 'none'; "
        f"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


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
        explorer_paths: frozenset[str] = EXPLORER_PATHS,
    ) -> None:
        self.app = app
        self.page_csp = page_csp
        self.explorer_paths = explorer_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.explorer_paths:
            await self._explorer(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._add(list(message.get("headers", [])), None)
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

    async def _explorer(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Hold the (small, fixed) page back until its body is known, then hash its inline script.
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                headers = list(start.get("headers", []))
                csp = explorer_csp(body) if _is_html(headers) else None
                start["headers"] = self._add(headers, csp)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, buffer)

"""Browser-facing protections: the CSRF origin check, login throttling, server-side sessions.

Sessions live in Starlette's signed cookie, which alone cannot be revoked: a copy taken before
sign-out would stay valid until it expires. So the cookie carries a random session id that must
also be known to the `SessionRegistry` here; signing out (or a new password) forgets it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from rudder import texts
from rudder.config import DeploymentMode, Settings
from rudder.domain.errors import Unauthorized
from rudder.services import Services

SESSION_COOKIE = "session"  # Starlette SessionMiddleware's default name, used by create_app
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Feishu and Lark post events server-to-server with their own signature (webhook_codec.py);
# they send no Origin and carry no cookie, and must never be refused for it.
CSRF_EXEMPT_PATHS = (re.compile(r"^/api/integrations/feishu/[^/]+/webhook/?$"),)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SESSION_COOKIE_RE = re.compile(rf"(?:^|;)\s*{SESSION_COOKIE}=")


# -- Loopback and the Host header -----------------------------------------------------------------


def is_loopback_host(name: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: names no DNS answer can point elsewhere."""
    if not name:
        return False
    name = name.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str | None:
    """The name in a Host header (`name`, `name:port`, `[v6]:port`), or None if malformed."""
    try:
        parts = urlsplit(f"//{host_header.strip()}")
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    return parts.hostname


class LocalHostCheck:
    """Local mode answers only to a Host that names this machine, or RUDDER_PUBLIC_URL's host.

    Local mode has no sign-in. Without this check a page on `rebind.evil.example`, whose DNS
    answer the attacker switches to 127.0.0.1, is same-origin with itself while it talks to
    Rudder on loopback, and can read and drive the whole API (DNS rebinding). Its requests carry
    `Host: rebind.evil.example`, which is refused here with 421 `{error, detail}`.
    """

    def __init__(self, app: ASGIApp, *, public_url: str | None) -> None:
        self.app = app
        public = urlsplit(public_url).hostname if public_url else None
        self.public_host = public.lower() if public else None

    def allows(self, host_header: str) -> bool:
        name = _host_name(host_header)
        return is_loopback_host(name) or (name is not None and name == self.public_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not any(
            p.match(scope["path"]) for p in CSRF_EXEMPT_PATHS
        ):
            host = Headers(scope=scope).get("host")
            # No Host at all is HTTP/1.0 from a script: browsers always send one.
            if host is not None and not self.allows(host):
                detail = texts.HOST_NOT_ALLOWED.format(host=host[:200])
                response = JSONResponse(
                    {"error": "misdirected_request", "detail": detail}, status_code=421
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- CSRF ------------------------------------------------------------------------------------------


def _origin(url: str) -> str | None:
    """`scheme://host[:port]` in lower case with the default port dropped, or None if unusable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def csrf_problem(
    method: str,
    path: str,
    headers: Headers,
    scheme: str,
    *,
    public_url: str | None,
    strict: bool,
) -> str | None:
    """Why this request looks cross-site, or None when it may go on.

    Browsers set Origin (or at least Referer) and Sec-Fetch-Site themselves and a page on another
    site cannot change them, so a match with our own origin proves the request came from our
    pages. Our origin is `public_url`'s, or the request's own `scheme://Host` when that Host is
    loopback (a port-forward, `rudder start` on this machine); never another Host, which anyone
    can point at our address. A request with neither Origin nor Referer is not from a browser page at all (curl, a
    script, the test client) and carries no ambient authority unless it has our session cookie:
    in `strict` (authenticated) mode such a cookie request is refused, elsewhere it goes on.
    """
    if method.upper() in SAFE_METHODS:
        return None
    if any(p.match(path) for p in CSRF_EXEMPT_PATHS):
        return None
    if headers.get("authorization", "").lower().startswith("bearer "):
        return None  # a page on another site cannot add this header without a CORS preflight
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    allowed = set()
    if public_url and (public := _origin(public_url)):
        allowed.add(public)
    # The request's own Host only when it names this machine: any other name may be the
    # attacker's, pointed at our address (DNS rebinding), and their page would then match it.
    own = _origin(f"{scheme}://{headers.get('host', '')}")
    if own is not None and is_loopback_host(urlsplit(own).hostname):
        allowed.add(own)
    origin = headers.get("origin")
    if origin is not None:
        if _origin(origin) not in allowed:
            return f"Origin {origin!r} is not this site"
        return None
    referer = headers.get("referer")
    if referer is not None:
        if _origin(referer) not in allowed:
            return "Referer is not this site"
        return None
    if strict and _SESSION_COOKIE_RE.search(headers.get("cookie", "")):
        return "a signed-in request needs an Origin or Referer header; scripts should use a Bearer API token"
    return None


class CSRFMiddleware:
    """Refuse unsafe cross-site requests with 403 `{error: "csrf", detail}` (see `csrf_problem`)."""

    def __init__(self, app: ASGIApp, *, public_url: str | None, strict: bool) -> None:
        self.app = app
        self.public_url = public_url
        self.strict = strict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = csrf_problem(
                scope["method"],
                scope["path"],
                Headers(scope=scope),
                scope.get("scheme", "http"),
                public_url=self.public_url,
                strict=self.strict,
            )
            if problem is not None:
                response = JSONResponse({"error": "csrf", "detail": problem}, status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- Login throttling ------------------------------------------------------------------------------


class LoginThrottle:
    """At most `limit` failed sign-ins per key (an email, a client address) in a sliding window.

    In memory: counts restart with the process and are not shared between processes.
    """

    MAX_KEYS = 10_000

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _now(self) -> float:
        return self._clock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until the first blocked key may try again, or None when none is blocked."""
        now = self._now()
        waits = [
            times[0] + self.window_s - now
            for key in keys
            if len(times := self._recent(key, now)) >= self.limit
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, keys: Iterable[str]) -> float:
        """Count a failure for each key; answers its time, for `forgive`."""
        now = self._now()
        if len(self._failures) > self.MAX_KEYS:
            # Many one-off keys (sprayed emails) are otherwise only dropped when seen again.
            for stale in list(self._failures):
                self._recent(stale, now)
        for key in keys:
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)
        return now

    def forgive(self, key: str, at: float) -> None:
        """Take back the one failure counted for `key` at `at` (it turned out a success)."""
        times = self._failures.get(key)
        if times is not None and at in times:
            times.remove(at)
            if not times:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True, slots=True)
class Throttles:
    # A guessed password per email is slow; an address may try several emails (a shared office).
    per_email: LoginThrottle
    per_address: LoginThrottle


def throttles(services: Services) -> Throttles:
    found = services.components.login_throttles
    if found is None:
        found = services.components.login_throttles = Throttles(
            per_email=LoginThrottle(limit=5, window_s=15 * 60),
            per_address=LoginThrottle(limit=20, window_s=15 * 60),
        )
    return found


# -- Sessions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionEntry:
    user_id: str
    password_fingerprint: str
    started: float


class SessionRegistry:
    """Session ids that are signed in right now.

    In memory: a restart signs everyone out, and several instances do not share it. The methods
    are async so that a database-backed registry can take its place without changing callers.
    """

    def __init__(self, lifetime_s: float = 14 * 24 * 3600) -> None:
        self.lifetime_s = lifetime_s  # the session cookie's own max age
        self._entries: dict[str, SessionEntry] = {}

    async def start(self, user_id: str, password_fingerprint: str) -> str:
        now = time.time()
        self._entries = {
            sid: e for sid, e in self._entries.items() if e.started > now - self.lifetime_s
        }
        sid = secrets.token_urlsafe(32)
        self._entries[sid] = SessionEntry(user_id, password_fingerprint, now)
        return sid

    async def get(self, sid: str) -> SessionEntry | None:
        entry = self._entries.get(sid)
        if entry is not None and entry.started <= time.time() - self.lifetime_s:
            del self._entries[sid]
            return None
        return entry

    async def end(self, sid: str) -> None:
        self._entries.pop(sid, None)

    async def end_user(self, user_id: str) -> None:
        self._entries = {s: e for s, e in self._entries.items() if e.user_id != user_id}


def session_registry(services: Services) -> SessionRegistry:
    found = services.components.auth_sessions
    if found is None:
        found = services.components.auth_sessions = SessionRegistry()
    return found


# -- Not signed in ---------------------------------------------------------------------------------


class LoginRequired(Unauthorized):
    """Raised for a page (not /api) when nobody is signed in: the browser goes to /login."""

    def __init__(self, detail: str, next_path: str | None) -> None:
        super().__init__(detail)
        self.next_path = next_path


def login_url(next_path: str | None) -> str:
    from urllib.parse import quote

    return f"/login?next={quote(next_path, safe='/')}" if next_path else "/login"


def safe_next(value: str | None) -> str:
    """Only a path on this site: `//evil.example` or `https://…` would be an open redirect."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = login_url(exc.next_path)
    if request.headers.get("hx-request"):
        # htmx follows a 303 inside its XHR and would swap the login page into a fragment.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def install(app: FastAPI, settings: Settings) -> None:
    """The CSRF check (outside the session middleware), in local mode the Host check (outside
    that), and the page redirect to /login."""
    app.add_middleware(
        CSRFMiddleware,
        public_url=settings.effective_public_url,
        strict=settings.deployment_mode is DeploymentMode.AUTHENTICATED,
    )
    if settings.deployment_mode is DeploymentMode.LOCAL:
        app.add_middleware(LocalHostCheck, public_url=settings.effective_public_url)
    app.add_exception_handler(LoginRequired, _login_required)

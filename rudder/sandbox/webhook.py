"""Pushing events to an app's request URL ("send notifications to developer's server")."""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import httpx

from rudder.sandbox.crypto import encrypt_body, sign
from rudder.sandbox.state import App

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox


def compact_json(value: Any) -> bytes:
    """JSON the way the Open Platform writes it: no spaces, UTF-8 as is.

    The Node SDK signs over `JSON.stringify(body)`, which is compact; a body with spaces after
    `:` or `,` fails its signature check ("verification failed event").
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def build_request(app: App, plaintext: bytes) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers Feishu sends: encrypted when the app has an Encrypt Key."""
    if app.encrypt_key:
        body = compact_json({"encrypt": encrypt_body(app.encrypt_key, plaintext)})
    else:
        body = plaintext
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(8)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
    }
    if app.encrypt_key:
        # Signed only when an Encrypt Key is configured (py SDK _verify_sign; reference §7.4).
        headers["X-Lark-Signature"] = sign(timestamp, nonce, app.encrypt_key, body)
    return body, headers


class WebhookSender:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _post(self, app: App, plaintext: bytes) -> httpx.Response:
        if not app.webhook_url:
            raise httpx.InvalidURL("no webhook_url configured")
        body, headers = build_request(app, plaintext)
        # Feishu gives the receiver 3 s in total (event-subscription overview).
        timeout = self._sandbox.settings.webhook_timeout_s
        return await self._http().post(
            app.webhook_url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
        )

    async def exchange(self, app: App, plaintext: bytes) -> httpx.Response:
        """POST one body and hand back the receiver's answer (callbacks answer in the body)."""
        return await self._post(app, plaintext)

    async def deliver(self, app: App, plaintext: bytes) -> tuple[bool, str]:
        try:
            response = await self._post(app, plaintext)
        except (httpx.HTTPError, OSError) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if response.status_code == 200:
            return True, "HTTP 200"
        return False, f"HTTP {response.status_code}"

    async def url_verification(self, app: App) -> dict[str, Any]:
        """POST the challenge; the receiver must echo it back as plaintext JSON."""
        challenge = secrets.token_urlsafe(12)
        event = {
            "challenge": challenge,
            "token": app.verification_token,
            "type": "url_verification",
        }
        try:
            response = await self._post(app, compact_json(event))
        except (httpx.HTTPError, OSError) as exc:
            return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        try:
            echoed = response.json().get("challenge")
        except (ValueError, AttributeError):
            echoed = None
        ok = response.status_code == 200 and echoed == challenge
        detail = "challenge echoed" if ok else f"HTTP {response.status_code}, challenge not echoed"
        return {"ok": ok, "detail": detail, "status": response.status_code}

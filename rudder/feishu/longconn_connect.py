"""Opening one long connection: endpoint discovery, then the WebSocket handshake (reference §8.1-8.2).

Each failure is sorted into *retry* (Feishu busy, network trouble) or *fatal* (Feishu refused
this app for good), because the SDKs stop reconnecting on the latter and so must we: retrying
bad credentials or a full connection quota forever only hides the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from rudder.feishu.frames import (
    HEADER_HANDSHAKE_AUTH_ERRCODE,
    HEADER_HANDSHAKE_MSG,
    HEADER_HANDSHAKE_STATUS,
)
from rudder.feishu.regions import Endpoint, Region

__all__ = [
    "DISCOVERY_PATH",
    "Discovery",
    "FatalConnectError",
    "RetryableConnectError",
    "discover",
    "open_socket",
]

DISCOVERY_PATH = "/callback/ws/endpoint"
MAX_CONNECTIONS_PER_APP = 50  # "max 50 connections per app" (long-connection doc, §8)

# Endpoint answer codes (py ws/const.py): 1 and 1000040343 are worth retrying; 0 is success;
# every other code (514 auth failed, 403 forbidden, 1000040344 no credential, ...) is final.
_OK = 0
_RETRY_CODES = frozenset({1, 1000040343})
_AUTH_FAILED = 514
_FORBIDDEN = 403
_EXCEED_CONN_LIMIT = 1000040350

# Readable reasons, shown on the integration (kept together so tests assert on the same text).
CREDENTIALS_REFUSED = (
    "{product} refused the app credentials (code {code}: {msg}); check App ID and App Secret."
)
CONNECTION_REFUSED = "{product} refused the long connection (code {code}: {msg})."
TOO_MANY_CONNECTIONS = (
    "Too many long connections for this app ({product} allows {limit} per app); "
    "stop the other clients that use it."
)


class RetryableConnectError(Exception):
    """This attempt failed; a later one may work."""


class FatalConnectError(Exception):
    """Feishu refused this app; retrying will not help. ``str()`` is the readable reason."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Discovery:
    url: str
    client_config: dict[str, Any] | None
    service_id: int
    device_id: str | None


async def discover(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    region: Region,
    app_id: str,
    app_secret: str,
    timeout_s: float,
) -> Discovery:
    """POST /callback/ws/endpoint; every (re)connect asks again for a fresh URL and ticket (§8.7)."""
    try:
        response = await http.post(
            endpoint.url(DISCOVERY_PATH),
            json={"AppID": app_id, "AppSecret": app_secret},
            headers=endpoint.headers,
            timeout=timeout_s,
        )
    except httpx.InvalidURL as exc:
        raise FatalConnectError(f"The {region.label} base URL is not usable: {exc}") from exc
    except httpx.HTTPError as exc:
        raise RetryableConnectError(
            f"endpoint discovery failed: {type(exc).__name__}: {exc}"
        ) from exc
    if response.status_code != 200:
        # Non-200 is a ServerException in the py SDK, i.e. retried.
        raise RetryableConnectError(f"endpoint discovery answered HTTP {response.status_code}")
    try:
        body = json.loads(response.content)
    except ValueError:
        raise RetryableConnectError(
            "endpoint discovery answered something that is not JSON"
        ) from None
    if not isinstance(body, dict):
        raise RetryableConnectError("endpoint discovery answered something that is not an object")
    code, msg = body.get("code"), str(body.get("msg") or "")
    if code != _OK:
        if code in _RETRY_CODES:
            raise RetryableConnectError(f"endpoint discovery: code {code} ({msg or 'system busy'})")
        product = region.label
        text = CREDENTIALS_REFUSED if code in (_AUTH_FAILED, _FORBIDDEN) else CONNECTION_REFUSED
        raise FatalConnectError(
            text.format(product=product, code=code, msg=msg or "no message"), _int(code)
        )
    data = body.get("data")
    url = data.get("URL") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url:
        raise RetryableConnectError("endpoint discovery answered no URL")
    raw_config = data.get("ClientConfig") if isinstance(data, dict) else None
    query = parse_qs(urlsplit(url).query)
    # service_id goes into every frame we send; device_id is the connection id Feishu logs (§8.2).
    service_id = _int((query.get("service_id") or ["0"])[0]) or 0
    device_ids = query.get("device_id")
    device_id = device_ids[0] if device_ids else None
    return Discovery(
        url=url,
        client_config=raw_config if isinstance(raw_config, dict) else None,
        service_id=service_id,
        device_id=device_id,
    )


async def open_socket(
    url: str, headers: dict[str, str], region: Region, open_timeout_s: float, close_timeout_s: float
) -> ClientConnection:
    try:
        return await connect(
            url,
            additional_headers=headers or None,
            # Never through an environment proxy: Feishu's frontier is reached directly.
            proxy=None,
            open_timeout=open_timeout_s,
            close_timeout=close_timeout_s,
            # Liveness is the protocol's own ping/pong (§8.4); library pings would double the timers.
            ping_interval=None,
            # No permessage-deflate: its zlib state costs ~100s of KB per socket, and one process
            # holds many bots' sockets; Feishu's frames are small protobufs.
            compression=None,
        )
    except InvalidStatus as exc:
        raise _handshake_error(exc, region) from exc
    except (InvalidURI, InvalidHandshake, OSError, TimeoutError) as exc:
        raise RetryableConnectError(
            f"WebSocket connect failed: {type(exc).__name__}: {exc}"
        ) from exc


def _handshake_error(exc: InvalidStatus, region: Region) -> Exception:
    """Map handshake-status headers the way py ``_parse_ws_conn_exception`` does (§8.2)."""
    headers = exc.response.headers
    status = _int(headers.get(HEADER_HANDSHAKE_STATUS))
    msg = headers.get(HEADER_HANDSHAKE_MSG) or "no message"
    if (
        status == _AUTH_FAILED
        and _int(headers.get(HEADER_HANDSHAKE_AUTH_ERRCODE)) == _EXCEED_CONN_LIMIT
    ):
        reason = TOO_MANY_CONNECTIONS.format(product=region.label, limit=MAX_CONNECTIONS_PER_APP)
        return FatalConnectError(reason, _EXCEED_CONN_LIMIT)
    if status == _FORBIDDEN:
        return FatalConnectError(
            CONNECTION_REFUSED.format(product=region.label, code=status, msg=msg), status
        )
    shown = status if status is not None else exc.response.status_code
    return RetryableConnectError(f"WebSocket handshake refused ({shown}: {msg})")


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None

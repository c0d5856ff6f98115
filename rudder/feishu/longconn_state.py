"""What a long connection tells the outside world: its lifecycle, its figures, its knobs."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "ACK_FAILED",
    "ACK_OK",
    "MIN_PING_INTERVAL_S",
    "AckResult",
    "ClientConfig",
    "ConnectionState",
    "ConnectionStatus",
    "IllegalTransition",
    "Timings",
    "check_transition",
]


# Feishu sends 120 s; the sandbox goes as low as 0.2 s in tests. Below this it is a spin.
MIN_PING_INTERVAL_S = 0.1


class ConnectionStatus(enum.StrEnum):
    IDLE = "idle"  # created; run() has not started yet
    CONNECTING = "connecting"  # first attempt: endpoint discovery and WebSocket handshake
    CONNECTED = "connected"  # the socket is open; events can arrive
    RECONNECTING = (
        "reconnecting"  # the socket was lost (or an attempt failed); backing off, retrying
    )
    STOPPED = "stopped"  # stop() or cancellation; final
    FAILED = (
        "failed"  # Feishu refused for good (credentials, connection limit, retries spent); final
    )


_S = ConnectionStatus
_TRANSITIONS: dict[ConnectionStatus, frozenset[ConnectionStatus]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.STOPPED}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.RECONNECTING, _S.STOPPED, _S.FAILED}),
    _S.CONNECTED: frozenset({_S.RECONNECTING, _S.STOPPED, _S.FAILED}),
    _S.RECONNECTING: frozenset({_S.CONNECTED, _S.STOPPED, _S.FAILED}),
    _S.STOPPED: frozenset(),
    _S.FAILED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: ConnectionStatus, new: ConnectionStatus) -> None:
    if new is not current and new not in _TRANSITIONS[current]:
        raise IllegalTransition(f"long connection cannot go from {current} to {new}")


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """A snapshot; times are Unix seconds (for people), None until the thing first happens."""

    status: ConnectionStatus
    connected_since: float | None = (
        None  # start of the current connection (None when not connected)
    )
    last_frame_at: float | None = None  # any frame from the server, pongs included
    last_event_at: float | None = None  # last complete event handed to on_event
    reconnects: int = 0  # connections opened after the first one
    failed_attempts: int = 0  # consecutive failed attempts in the current outage
    events: int = 0  # complete events received (fragments count once)
    last_error: str | None = None  # readable; for FAILED it is the reason
    connection_id: str | None = None  # device_id of the current socket, as Feishu logs it


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Feishu's ``ClientConfig`` (seconds); defaults are the SDKs' when Feishu sends none (§8.1)."""

    reconnect_count: int = -1  # attempts per outage; -1 = forever
    reconnect_interval: float = 120.0
    reconnect_nonce: float = 30.0
    ping_interval: float = 120.0

    def merged(self, raw: Mapping[str, Any] | None) -> ClientConfig:
        """Apply the keys Feishu sent (in discovery answers and pong payloads); ignore bad values."""
        if not raw:
            return self
        changes: dict[str, Any] = {}
        count = raw.get("ReconnectCount")
        if isinstance(count, int) and not isinstance(count, bool) and count >= -1:
            changes["reconnect_count"] = count
        for key, attr in (
            ("ReconnectInterval", "reconnect_interval"),
            ("ReconnectNonce", "reconnect_nonce"),
            ("PingInterval", "ping_interval"),
        ):
            value = raw.get(key)
            # isfinite: JSON's 1e999 parses as infinity, and an infinite ping interval would
            # switch the stale-socket watchdog off for good.
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            ):
                changes[attr] = float(value)
        # A zero or near-zero ping interval would mean a busy ping loop; keep the previous one.
        if changes.get("ping_interval", MIN_PING_INTERVAL_S) < MIN_PING_INTERVAL_S:
            del changes["ping_interval"]
        return replace(self, **changes) if changes else self


@dataclass(frozen=True, slots=True)
class Timings:
    """Our own timeouts, plus optional overrides of Feishu's ClientConfig (tests use short ones)."""

    # The SDK's discovery POST has no timeout and can wedge reconnects forever
    # (oapi-sdk-python#169, reference §8.7); ours always has one.
    http_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 1.0
    # Exponential backoff between failed attempts starts here and is capped by ReconnectInterval.
    backoff_base_s: float = 1.0
    # Incomplete fragment sets are dropped after 5 s, as the py/go SDKs do (reference §8.5).
    fragment_ttl_s: float = 5.0
    # On stop(), handlers in flight get this long to finish (and ack) before being cancelled.
    stop_grace_s: float = 1.0
    ping_interval_s: float | None = None
    reconnect_interval_s: float | None = None
    reconnect_nonce_s: float | None = None
    reconnect_count: int | None = None

    def apply(self, config: ClientConfig) -> ClientConfig:
        changes: dict[str, Any] = {}
        if self.ping_interval_s is not None:
            changes["ping_interval"] = self.ping_interval_s
        if self.reconnect_interval_s is not None:
            changes["reconnect_interval"] = self.reconnect_interval_s
        if self.reconnect_nonce_s is not None:
            changes["reconnect_nonce"] = self.reconnect_nonce_s
        if self.reconnect_count is not None:
            changes["reconnect_count"] = self.reconnect_count
        return replace(config, **changes) if changes else config


@dataclass(frozen=True, slots=True)
class AckResult:
    """What on_event answers once the event is durably recorded (or could not be)."""

    ok: bool = True
    # A callback's answer (card.action.trigger); sent base64-encoded in the ack's "data" (§8.6).
    data: bytes | None = None


ACK_OK = AckResult()
ACK_FAILED = AckResult(ok=False)  # Feishu re-pushes after 15 s, 5 min, 1 h, 6 h (§7.5)

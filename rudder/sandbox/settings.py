"""Knobs a test can turn: the sandbox clock, timeouts, intervals and limits."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Feishu re-pushes an unacknowledged event after 15 s, 5 min, 1 h and 6 h, then gives up
# (event-subscription overview; reference §7.5).
RETRY_LADDER_S: tuple[float, ...] = (15.0, 300.0, 3600.0, 21600.0)


@dataclass(slots=True)
class Clock:
    """Wall time plus an offset tests can advance; ``factor`` scales delivery waits only."""

    factor: float = 1.0
    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def scaled(self, seconds: float) -> float:
        return seconds * self.factor


@dataclass(slots=True)
class Settings:
    # Registration (device flow): observed interval 5 s and expires_in 3600 s (reference §2.3).
    registration_interval: float = 5
    registration_expires_in: int = 3600
    # Long connection: the 3-s ack rule, and the ClientConfig handed to clients (seconds).
    ack_timeout_s: float = 3.0
    webhook_timeout_s: float = 3.0
    ws_ping_interval: int = 30
    ws_reconnect_interval: int = 5
    ws_reconnect_nonce: int = 2
    ws_reconnect_count: int = -1
    ws_max_connections: int = 50
    ws_fragment_size: int = 0  # 0 = never fragment; tests set it small to exercise sum/seq
    retry_ladder_s: list[float] = field(default_factory=lambda: list(RETRY_LADDER_S))
    # Rate limits (reference §6.8): per app x API, and per receiving chat or user.
    api_per_second: int = 50
    api_per_minute: int = 1000
    target_per_second: int = 5
    card_ops_per_second: int = 10
    edit_limit: int = 20
    uuid_ttl_s: float = 3600.0
    # Media (image.create / file.create / message_resource.get docs): bytes.
    image_upload_limit: int = 10 * 1024 * 1024
    file_upload_limit: int = 30 * 1024 * 1024
    resource_download_limit: int = 100 * 1024 * 1024
    # A card callback must be answered within 3 s or the person sees an error.
    callback_timeout_s: float = 3.0
    # A test knob: the message history API answers this many seconds late (a slow Feishu).
    history_delay_s: float = 0.0

    def public(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply known keys with type coercion; return the unknown or invalid ones."""
        rejected: list[str] = []
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                rejected.append(key)
                continue
            current = getattr(self, key)
            try:
                if isinstance(current, list):
                    if not isinstance(value, list):
                        raise TypeError
                    coerced: Any = [float(v) for v in value]
                elif isinstance(current, bool):
                    coerced = bool(value)
                elif isinstance(current, int) and not isinstance(current, bool):
                    if isinstance(value, bool):
                        raise TypeError
                    coerced = int(value) if float(value) == int(value) else float(value)
                else:
                    if isinstance(value, bool):
                        raise TypeError
                    coerced = float(value)
            except (TypeError, ValueError, OverflowError):
                rejected.append(key)
                continue
            setattr(self, key, coerced)
        return rejected

    def client_config(self) -> dict[str, int]:
        return {
            "ReconnectCount": self.ws_reconnect_count,
            "ReconnectInterval": self.ws_reconnect_interval,
            "ReconnectNonce": self.ws_reconnect_nonce,
            "PingInterval": self.ws_ping_interval,
        }

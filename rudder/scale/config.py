"""Timings of the scale-out machinery, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class ScaleConfig:
    # A lease lasts this long past its last renewal, on the database clock.
    lease_ttl_s: float = 8.0
    # Instances heartbeat and renew their leases this often.
    heartbeat_s: float = 2.0
    # An instance (or run worker) silent this long is dead: its bots and runs are taken over.
    dead_after_s: float = 6.0
    # Runs an instance executes itself at once (0: leave every run to `rudder worker`).
    instance_runs: int = 8

    @classmethod
    def from_env(cls) -> ScaleConfig:
        config = cls(
            lease_ttl_s=_env_float("RUDDER_LEASE_TTL_S", cls.lease_ttl_s),
            heartbeat_s=_env_float("RUDDER_HEARTBEAT_S", cls.heartbeat_s),
            dead_after_s=_env_float("RUDDER_INSTANCE_DEAD_S", cls.dead_after_s),
            instance_runs=_env_int("RUDDER_INSTANCE_RUNS", cls.instance_runs),
        )
        config.check()
        return config

    @property
    def fence_margin_s(self) -> float:
        """Close a bot's connection this long before its lease could expire.

        It covers stopping the connection (handlers in flight get about a second) and a
        local clock that runs a little slow against the database's.
        """
        return max(self.lease_ttl_s / 4, 0.5)

    def check(self) -> None:
        # At least two renewals must fit before the fence, or one slow query drops every bot.
        if self.heartbeat_s * 2 > self.lease_ttl_s - self.fence_margin_s:
            raise ValueError(
                "RUDDER_HEARTBEAT_S must be at most (RUDDER_LEASE_TTL_S - margin) / 2 "
                f"(got heartbeat {self.heartbeat_s} s, lease {self.lease_ttl_s} s)"
            )
        if self.dead_after_s <= self.heartbeat_s:
            raise ValueError("RUDDER_INSTANCE_DEAD_S must exceed RUDDER_HEARTBEAT_S")

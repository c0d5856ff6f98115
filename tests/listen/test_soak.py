"""A short soak in `make test`: 150 messages at 10/s from bound users to two bots, Rudder killed
with SIGKILL once in the middle and started again 2 s later, API clients posting meanwhile.

The same code as `benchmarks/soak.py` (which measures the full 600 at 15/s with two kills),
run smaller and asserted: every message is answered exactly once, with the real answer (the
agent's text derived from the message), no failure notice, no card left streaming, no 5xx.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rudder_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _assert_exactly_once(result: dict[str, Any], messages: int) -> None:
    summary = {k: v for k, v in result.items() if k not in ("tables", "samples")}
    assert result["sent"] == messages, summary
    assert result["answered_once_real"] == messages, (summary, result["samples"])
    assert result["failure_notices"] == 0 and result["doubled"] == 0, result["samples"]
    assert result["lost"] == 0 and result["stuck_cards"] == 0, result["samples"]
    assert result["api_5xx"] == 0, result["api_errors"]
    assert result["log_database_locked"] == 0
    assert result["restart_to_healthy_s"] and len(result["restart_to_healthy_s"]) == 1


ARGS = [
    "--messages", "150", "--rate", "10", "--kills", "1", "--bots", "2", "--users", "20",
    "--api-clients", "2", "--settle", "180", "--linger", "2", "--poll", "1",
    "--agent-delay", "0.5",  # so that the kill finds runs in flight
]  # fmt: skip


@pytest.mark.timeout(600)
async def test_soak_sqlite_one_kill() -> None:
    soak = _soak()
    result = await soak.soak(soak.parse(ARGS))
    _assert_exactly_once(result, 150)


@pytest.mark.timeout(600)
async def test_soak_postgres_one_kill() -> None:
    if not os.environ.get("RUDDER_TEST_POSTGRES_URL"):
        pytest.skip("RUDDER_TEST_POSTGRES_URL is not set")
    soak = _soak()
    result = await soak.soak(soak.parse([*ARGS, "--db", "postgres"]))
    _assert_exactly_once(result, 150)

"""Seconds the upgrade to migration 0005 takes to strip the Verification Token from an inbox
an older version wrote (every row carrying `header.token`), on the embedded SQLite default.

Usage: python benchmarks/token_scrub.py [--rows N]; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Text, cast, func, insert, select

from rudder.db import migrate
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import Agent, InboundEvent, Integration, Organization, new_id, utcnow

TOKEN = "v-token-" + "x" * 24


def _event(i: int, app_id: str, integration_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id(),
        "created_at": now,
        "integration_id": integration_id,
        "app_id": app_id,
        "event_id": f"ev-{i}",
        "event_type": "im.message.receive_v1",
        "message_id": f"om_{i}",
        "chat_id": "oc_bench",
        "chat_type": "p2p",
        "sender_open_id": "ou_bench",
        "payload": {
            "schema": "2.0",
            "header": {
                "event_id": f"ev-{i}",
                "event_type": "im.message.receive_v1",
                "app_id": app_id,
                "create_time": "1",
                "token": TOKEN,
                "tenant_key": "t",
            },
            "event": {
                "sender": {"sender_id": {"open_id": "ou_bench"}, "sender_type": "user"},
                "message": {
                    "message_id": f"om_{i}",
                    "chat_id": "oc_bench",
                    "chat_type": "p2p",
                    "message_type": "text",
                    "content": json.dumps({"text": f"message {i}"}),
                },
            },
        },
        "received_at": now,
        "outcome": "processed",
        "reason": "queued a run",
    }


async def run(url: str, rows: int) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(migrate.alembic_config(c), "0003"))
        async with session_factory(engine)() as session, session.begin():
            org = Organization(name="Bench", slug="bench")
            session.add(org)
            await session.flush()
            agent = Agent(org_id=org.id, name="Bench", runtime_type="example")
            session.add(agent)
            await session.flush()
            integration = Integration(
                org_id=org.id, agent_id=agent.id, region="feishu", app_id="cli_bench"
            )
            session.add(integration)
            await session.flush()
            for start in range(0, rows, 5000):
                batch = [
                    _event(i, "cli_bench", integration.id)
                    for i in range(start, min(rows, start + 5000))
                ]
                await session.execute(insert(InboundEvent), batch)
        started = time.perf_counter()
        await migrate.upgrade(engine)
        seconds = time.perf_counter() - started
        async with session_factory(engine)() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(cast(InboundEvent.payload, Text).like(f"%{TOKEN}%"))
            )
        return {
            "benchmark": "token_scrub",
            "database": "sqlite",
            "rows": rows,
            "upgrade_s": round(seconds, 3),
            "rows_per_s": round(rows / seconds) if seconds else None,
            "rows_still_with_token": int(left or 0),
            "loadavg": os.getloadavg(),
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite+aiosqlite:///{Path(home) / 'rudder.db'}"
        print(json.dumps(asyncio.run(run(url, args.rows))))


if __name__ == "__main__":
    main()

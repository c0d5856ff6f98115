"""Failover of bot connections between two Rudder instances on PostgreSQL.

Usage: python benchmarks/failover.py [--bots N] [--database-url URL]   (default 20 bots;
the URL, default $RUDDER_TEST_POSTGRES_URL, is an admin connection used to create and drop a
scratch database). Prints one JSON object last:
  takeover_s   seconds from `kill -9` of the instance holding the most bots until the sandbox
               holds exactly one connection again for every bot it held
  lost         messages (sent before, during and after) that never became a user message
  duplicated   messages that became more than one
Lease timings come from RUDDER_LEASE_TTL_S / RUDDER_HEARTBEAT_S / RUDDER_INSTANCE_DEAD_S
(defaults here: 6 / 1 / 4 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudder.sandbox import SandboxServer  # noqa: E402
from tests.scale.cluster import FAST, Cluster  # noqa: E402
from tests.scale.dialogue import Bot, connect_bots, connections, say, wait_until  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine  # noqa: E402


async def _connected_once(sb: httpx.AsyncClient, bots: list[Bot]) -> bool:
    return all(c == 1 for c in await asyncio.gather(*(connections(sb, b) for b in bots)))


def _became(cluster: Cluster, ids: list[str]) -> Counter[str]:
    rows = cluster.query(
        "SELECT external_message_id FROM messages WHERE external_message_id = ANY(%s)", ids
    )
    return Counter(r[0] for r in rows)


async def _settled(cluster: Cluster, ids: list[str]) -> bool:
    return len(_became(cluster, ids)) == len(ids)


async def run(n_bots: int, database_url: str, home: Path) -> dict[str, object]:
    async with SandboxServer() as sandbox, httpx.AsyncClient(base_url=sandbox.url) as sb:
        await sb.patch("/_sandbox/api/settings", json={"retry_ladder_s": [0.5] * 10 + [1.0] * 60})
        cluster = Cluster(database_url, sandbox.url, home, secrets.token_hex(32))
        for key, value in FAST.items():
            cluster.env_extra[key] = os.environ.get(key, value)
        cluster.env_extra["RUDDER_EXAMPLE_DELAY_MS"] = "5"
        try:
            a = await cluster.instance("a")
            b = await cluster.instance("b")
            async with httpx.AsyncClient(base_url=str(a.url), timeout=30) as api:
                bots = await connect_bots(api, sb, n_bots)
                await wait_until(lambda: _connected_once(sb, bots), timeout=60)
                ids = cluster.instance_ids()
                held = Counter(cluster.leases().values())
                victim = a if held[ids[a.popen.pid]] >= held[ids[b.popen.pid]] else b
                leases = cluster.leases()
                orphaned = [
                    x for x in bots if leases.get(x.integration_id) == ids[victim.popen.pid]
                ]
                sent = [await say(sb, x, f"before {i}") for i, x in enumerate(bots)]
                await wait_until(lambda: _settled(cluster, sent), timeout=60)

                killed_at = time.monotonic()
                victim.kill9()
                during = [await say(sb, x, f"during {i}") for i, x in enumerate(bots)]
                await wait_until(lambda: _connected_once(sb, orphaned), timeout=120, interval=0.05)
                takeover_s = time.monotonic() - killed_at
                after = [await say(sb, x, f"after {i}") for i, x in enumerate(bots)]
                everything = sent + during + after
                try:
                    await wait_until(lambda: _settled(cluster, everything), timeout=90)
                except AssertionError:
                    pass  # counted as lost below
                became = _became(cluster, everything)
        finally:
            await cluster.close()
    return {
        "bots": n_bots,
        "orphaned": len(orphaned),
        "lease_ttl_s": float(cluster.env_extra["RUDDER_LEASE_TTL_S"]),
        "takeover_s": round(takeover_s, 2),
        "messages": len(everything),
        "lost": sum(1 for m in everything if became[m] == 0),
        "duplicated": sum(1 for m in everything if became[m] > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=20)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "RUDDER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    admin = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"rudder_failover_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(run(args.bots, f"{admin.rpartition('/')[0]}/{name}", Path(tmp)))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps({**result, **machine()}))


if __name__ == "__main__":
    main()

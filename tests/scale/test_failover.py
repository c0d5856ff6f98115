"""Two instances share the bots; kill -9 one: the survivor takes its bots over, and every
message sent before, during and after is processed exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.scale.cluster import FAST, Cluster
from tests.scale.dialogue import Bot, connect_bots, connections, say, wait_until

BOTS = 20


async def _all_connected_once(sb: httpx.AsyncClient, bots: list[Bot]) -> bool:
    counts = await asyncio.gather(*(connections(sb, b) for b in bots))
    return all(c == 1 for c in counts)


def _processed(cluster: Cluster, message_ids: list[str]) -> Counter[str]:
    """How many user messages each Feishu message became (exactly once = 1)."""
    rows = cluster.query(
        "SELECT external_message_id FROM messages WHERE external_message_id = ANY(%s)",
        message_ids,
    )
    return Counter(r[0] for r in rows)


async def test_kill_an_instance_its_bots_move_and_nothing_is_lost_or_doubled(
    cluster: Cluster, sandbox: object
) -> None:
    a = await cluster.instance("a")
    b = await cluster.instance("b")
    assert a.url and b.url
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=20) as api,
        httpx.AsyncClient(base_url=cluster.sandbox_url, timeout=20) as sb,
    ):
        bots = await connect_bots(api, sb, BOTS)
        await wait_until(lambda: _all_connected_once(sb, bots), timeout=20)
        ids = cluster.instance_ids()
        holders = Counter(cluster.leases().values())
        assert set(holders) == {ids[a.popen.pid], ids[b.popen.pid]}, holders  # spread over both
        assert sum(holders.values()) == BOTS

        sent = [await say(sb, bot, f"before {i}") for i, bot in enumerate(bots)]
        await wait_until(lambda: _done(cluster, sent), timeout=30)

        victim, survivor = (
            (a, b) if holders[ids[a.popen.pid]] >= holders[ids[b.popen.pid]] else (b, a)
        )
        orphaned = [
            bot for bot in bots if cluster.leases()[bot.integration_id] == ids[victim.popen.pid]
        ]
        victim.kill9()
        during = [await say(sb, bot, f"during {i}") for i, bot in enumerate(bots)]
        took = await wait_until(lambda: _all_connected_once(sb, orphaned), timeout=20)
        # Lease expiry plus a round and a reconnect; generous for a loaded CI machine
        # (benchmarks/failover.py measures it).
        assert took <= float(FAST["RUDDER_LEASE_TTL_S"]) * 3, took
        assert set(cluster.leases().values()) == {ids[survivor.popen.pid]}

        after = [await say(sb, bot, f"after {i}") for i, bot in enumerate(bots)]
        everything = sent + during + after
        await wait_until(lambda: _done(cluster, everything), timeout=40)
        counts = _processed(cluster, everything)
        assert [m for m in everything if counts[m] != 1] == []


async def _done(cluster: Cluster, message_ids: list[str]) -> bool:
    """Each message became a user message whose run reached a final state."""
    rows = cluster.query(
        "SELECT count(*) FROM messages m JOIN runs r ON r.id = m.run_id "
        "WHERE m.external_message_id = ANY(%s) AND r.status IN ('succeeded', 'failed', 'cancelled')",
        message_ids,
    )
    return bool(rows[0][0] >= len(message_ids))

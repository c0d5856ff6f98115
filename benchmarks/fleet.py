"""Many bots' long connections in one Rudder process: RSS per idle bot and time to connect.

Usage: python benchmarks/fleet.py [--bots N]   (default 1000); prints one JSON object last.

The sandbox runs in its own process. Rudder (embedded SQLite) gets N agents, each with its own
connected bot. Rudder is then restarted, and ``connect_s`` is the time from that process's
launch until the sandbox holds a live connection for every bot (start-up included). Each bot
then receives one event, which must be acked. ``rss_per_bot_kb`` compares the restarted
process, idle, with a fresh one holding a single bot.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    connect_bot,
    default_org_and_agent,
    machine,
    new_agent,
    new_app,
    rss_kb,
    start_rudder,
    start_sandbox,
    stop,
    wait_connections,
)

IDLE_S = 5.0  # let start-up garbage go and the first pings pass before reading RSS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=1000)
    args = parser.parse_args()
    sandbox, url = start_sandbox()
    try:
        with (
            httpx.Client(base_url=url, timeout=60) as sb,
            tempfile.TemporaryDirectory() as home,
        ):
            proc, base = start_rudder(home, url)
            try:
                with httpx.Client(base_url=base, timeout=60) as rudder:
                    org_id, agent_id = default_org_and_agent(rudder)
                    first = new_app(sb, "Fleet 0")
                    connect_bot(rudder, first, agent_id)
                    wait_connections(sb, [first["app_id"]])
                    time.sleep(IDLE_S)
                    one_bot_kb = rss_kb(proc.pid)
                    apps = [first]
                    started = time.monotonic()
                    for i in range(1, args.bots):
                        app = new_app(sb, f"Fleet {i}")
                        connect_bot(rudder, app, new_agent(rudder, org_id, f"Fleet {i}"))
                        apps.append(app)
                    wait_connections(sb, [a["app_id"] for a in apps], timeout=600)
                    setup_s = time.monotonic() - started
            finally:
                stop(proc)
            gc.collect()
            app_ids = [a["app_id"] for a in apps]
            launched = time.monotonic()
            proc, base = start_rudder(home, url)
            try:
                healthy_s = time.monotonic() - launched
                wait_connections(sb, app_ids, timeout=600)
                connect_s = time.monotonic() - launched
                time.sleep(IDLE_S)
                fleet_kb = rss_kb(proc.pid)
                live = sb.get("/_bench/connections").json()
                pushed = sb.post(
                    "/_bench/push",
                    json={"app_ids": app_ids, "count": len(app_ids), "window": 200},
                    timeout=300,
                ).json()
            finally:
                stop(proc)
    finally:
        stop(sandbox, timeout=5)
    bots = args.bots
    print(
        json.dumps(
            {
                "bots": bots,
                "connected": len(set(app_ids) & set(live["app_ids"])),
                "rss_per_bot_kb": round((fleet_kb - one_bot_kb) / max(bots - 1, 1), 1),
                "connect_s": round(connect_s, 2),
                "start_to_healthy_s": round(healthy_s, 2),
                "rss_one_bot_kb": one_bot_kb,
                "rss_fleet_kb": fleet_kb,
                **machine(),
                "setup_via_api_s": round(setup_s, 1),
                "events_acked": pushed["acked"],
                "event_ack_p99_ms": pushed["ack_p99_ms"],
            }
        )
    )


if __name__ == "__main__":
    main()

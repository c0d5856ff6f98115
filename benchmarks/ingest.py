"""Inbound events per second durably recorded by Rudder, against two baselines on one sandbox.

Usage: python benchmarks/ingest.py [--events N] [--bots B] [--window W]
Prints one JSON object last (ARCHITECTURE §9).

The sandbox runs in its own process and pushes N ``im.message.receive_v1`` events over long
connections, at most W unacked at once, to three clients in turn, each on its own fresh app(s):

- ``rudder``: ``rudder start`` (embedded SQLite) with B bots connected; every event is committed
  to ``inbound_events`` before its ack (and then routed: a group message that mentions nobody
  is ``ignored``). The rows are counted afterwards.
- ``null``: our long-connection client acking at once, recording nothing — the generator's
  ceiling on this machine.
- ``lark_oapi``: the official SDK's ``ws.Client`` with an empty handler, recording nothing.

Ack latency (p50/p99, as the sandbox sees it) is measured in a second phase paced at
``--rate`` events/s (default 200) for every client.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    HERE,
    connect_bot,
    default_org_and_agent,
    machine,
    new_agent,
    new_app,
    start_rudder,
    start_sandbox,
    stop,
    wait_connections,
)


def phase(
    sb: httpx.Client,
    app_ids: list[str],
    args: argparse.Namespace,
    settle: Callable[[], dict[str, Any]] = dict,
) -> dict[str, Any]:
    # Warm-up: connections, code paths and caches, outside the figures.
    run(sb, app_ids, count=min(200, args.events), rate=0, window=args.window)
    settle()
    burst = run(sb, app_ids, count=args.events, rate=0, window=args.window)
    # The paced phase measures a steady 200/s, not the burst's routing backlog.
    burst.update(settle())
    paced = run(sb, app_ids, count=int(args.rate * args.paced_s), rate=args.rate, window=1000)
    return {"burst": burst, "paced": paced}


def run(sb: httpx.Client, app_ids: list[str], *, count: int, rate: float, window: int) -> Any:
    body = {"app_ids": app_ids, "count": count, "rate": rate, "window": window}
    return sb.post("/_bench/push", json=body, timeout=600).json()


def drain(db_path: Path, timeout: float = 300) -> dict[str, Any]:
    """Wait until Rudder has routed every recorded event; report how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        db = sqlite3.connect(str(db_path))
        try:
            left = db.execute(
                "SELECT count(*) FROM inbound_events WHERE outcome = 'received'"
            ).fetchone()[0]
        finally:
            db.close()
        if not left:
            return {"routing_backlog_s": round(time.monotonic() - started, 2)}
        time.sleep(0.1)
    raise SystemExit("rudder did not finish routing within the time limit")


def bench_rudder(sb: httpx.Client, url: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        proc, base = start_rudder(home, url)
        try:
            with httpx.Client(base_url=base, timeout=30) as rudder:
                org_id, agent_id = default_org_and_agent(rudder)
                app_ids = []
                for i in range(args.bots):
                    app = new_app(sb, f"Rudder bench {i}")
                    agent = agent_id if i == 0 else new_agent(rudder, org_id, f"Bench {i}")
                    connect_bot(rudder, app, agent)
                    app_ids.append(app["app_id"])
                wait_connections(sb, app_ids)
                result = phase(sb, app_ids, args, lambda: drain(Path(home) / "rudder.db"))
            expected = min(200, args.events) + args.events + int(args.rate * args.paced_s)
            db = sqlite3.connect(str(Path(home) / "rudder.db"))
            recorded = db.execute("SELECT count(*) FROM inbound_events").fetchone()[0]
            db.close()
            result["recorded"] = recorded
            result["expected"] = expected
        finally:
            stop(proc)
    return result


def bench_client(sb: httpx.Client, url: str, script: str, args: argparse.Namespace) -> Any:
    app = new_app(sb, script)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), url, app["app_id"], app["app_secret"]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_connections(sb, [app["app_id"]])
        return phase(sb, [app["app_id"]], args)
    finally:
        stop(proc, timeout=3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--bots", type=int, default=1)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--paced-s", type=float, default=5.0)
    parser.add_argument(
        "--only-rudder",
        action="store_true",
        help="skip the two baselines (quick iterations; the summary then has Rudder's rows only)",
    )
    args = parser.parse_args()
    if args.only_rudder:
        sandbox, url = start_sandbox()
        try:
            with httpx.Client(base_url=url, timeout=30) as sb:
                rudder = bench_rudder(sb, url, args)
        finally:
            stop(sandbox, timeout=5)
        print(json.dumps({"rudder": rudder}))
        return
    sandbox, url = start_sandbox()
    try:
        with httpx.Client(base_url=url, timeout=30) as sb:
            null = bench_client(sb, url, "_null_client.py", args)
            lark = bench_client(sb, url, "_lark_client.py", args)
            rudder = bench_rudder(sb, url, args)
    finally:
        stop(sandbox, timeout=5)
    rudder_rate = rudder["burst"]["events_per_s"]
    summary = {
        "rudder_events_per_s": rudder_rate,
        "lark_oapi_events_per_s": lark["burst"]["events_per_s"],
        "null_client_events_per_s": null["burst"]["events_per_s"],
        "ack_p50_ms": rudder["paced"]["ack_p50_ms"],
        "ack_p99_ms": rudder["paced"]["ack_p99_ms"],
        "ack_rate_per_s": args.rate,
        "events": args.events,
        "bots": args.bots,
        "rudder_vs_lark_oapi": round(rudder_rate / max(lark["burst"]["events_per_s"], 1e-9), 2),
        "rudder_vs_null_client": round(rudder_rate / max(null["burst"]["events_per_s"], 1e-9), 2),
        "rudder_recorded": rudder["recorded"],
        "rudder_expected": rudder["expected"],
        "rudder_burst_ack_p99_ms": rudder["burst"]["ack_p99_ms"],
        "rudder_routing_backlog_s": rudder["burst"]["routing_backlog_s"],
        "lark_oapi_ack_p99_ms": lark["paced"]["ack_p99_ms"],
        "null_client_ack_p99_ms": null["paced"]["ack_p99_ms"],
        "failed": {
            "rudder": rudder["burst"]["failed"] + rudder["paced"]["failed"],
            "lark_oapi": lark["burst"]["failed"] + lark["paced"]["failed"],
            "null_client": null["burst"]["failed"] + null["paced"]["failed"],
        },
    }
    print(json.dumps({"rudder": rudder, "lark_oapi": lark, "null_client": null}), file=sys.stderr)
    print(json.dumps({**summary, **machine()}))


if __name__ == "__main__":
    started = time.monotonic()
    main()

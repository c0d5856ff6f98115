"""Memory while 20 Feishu users each send a 20 MB file at once: Rudder streams to disk.

Usage: python benchmarks/media_memory.py [--users N] [--mb M]
Prints one JSON object last (ARCHITECTURE §9).

The sandbox runs in its own process; `rudder start` (embedded SQLite) in another, with one bot
connected to the default agent. N people, each bound to the organization's owner in a direct
chat with the bot, send an N-MB file of random bytes at the same moment. Rudder downloads each
one (`GET …/messages/:id/resources/:key`), stores it as an attachment and hands it to the agent
(copied into each run's directory). The figure is Rudder's resident memory: its baseline, the
peak while the files arrive (sampled every 20 ms, and the kernel's high-water mark VmHWM), and
whether every stored file's sha256 matches what was sent. Whole files in memory would add
N × M MB; streaming keeps the growth to a small multiple of the 64-256 KiB chunks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    default_org_and_agent,
    machine,
    new_app,
    start_rudder,
    start_sandbox,
    stop,
    wait_connections,
)

CHUNK = 1024 * 1024


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def random_file(path: Path, mb: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(mb):
            piece = os.urandom(CHUNK)
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest()


def upload(sb: httpx.Client, path: Path, name: str) -> str:
    def body() -> Any:
        with path.open("rb") as handle:
            while piece := handle.read(CHUNK):
                yield piece

    r = sb.post(
        "/_sandbox/api/files",
        params={"kind": "file", "file_name": name},
        content=body(),
        headers={"content-type": "application/octet-stream"},
        timeout=120,
    )
    r.raise_for_status()
    return str(r.json()["key"])


def stored(db_path: Path) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(str(db_path))
    try:
        rows = db.execute(
            "SELECT status, coalesce(sha256, ''), size FROM attachments WHERE direction = 'in'"
        ).fetchall()
    finally:
        db.close()
    return [(str(a), str(b), int(c)) for a, b, c in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    sandbox, sandbox_url = start_sandbox()
    home = tempfile.mkdtemp(prefix="rudder-bench-media-")
    rudder, base = start_rudder(home, sandbox_url)
    try:
        with (
            httpx.Client(base_url=sandbox_url, timeout=30) as sb,
            httpx.Client(base_url=base, timeout=30) as api,
        ):
            org_id, agent_id = default_org_and_agent(api)
            app = new_app(sb, "Media bench")
            connected = api.post(
                f"/api/agents/{agent_id}/integrations/feishu/manual",
                json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
            )
            connected.raise_for_status()
            integration_id = connected.json()["id"]
            wait_connections(sb, [app["app_id"]])
            owner = api.get(f"/api/orgs/{org_id}/members").json()[0]
            people: list[dict[str, Any]] = []
            files = Path(home) / "bench-files"
            files.mkdir()
            for n in range(args.users):
                user_id = sb.post("/_sandbox/api/users", json={"name": f"P{n}"}).json()["user_id"]
                chat = sb.post(
                    "/_sandbox/api/chats",
                    json={"type": "p2p", "user_ids": [user_id], "app_ids": [app["app_id"]]},
                ).json()["chat_id"]
                users = sb.get(f"/_sandbox/api/users?app_id={app['app_id']}").json()["items"]
                open_id = next(u["open_id"] for u in users if u["user_id"] == user_id)
                bound = api.post(
                    f"/api/orgs/{org_id}/feishu-user-bindings",
                    json={
                        "integration_id": integration_id,
                        "open_id": open_id,
                        "user_id": owner["user_id"],
                    },
                )
                bound.raise_for_status()
                path = files / f"f{n}.bin"
                digest = random_file(path, args.mb)
                key = upload(sb, path, f"data-{n}.bin")
                path.unlink()
                people.append({"user_id": user_id, "chat": chat, "key": key, "sha256": digest})

            time.sleep(1.0)
            baseline = status_kb(rudder.pid, "VmRSS")
            hwm_before = status_kb(rudder.pid, "VmHWM")
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, status_kb(rudder.pid, "VmRSS"))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()

            def send(person: dict[str, Any]) -> None:
                with httpx.Client(base_url=sandbox_url, timeout=60) as client:
                    client.post(
                        f"/_sandbox/api/chats/{person['chat']}/messages",
                        json={
                            "user_id": person["user_id"],
                            "message_type": "file",
                            "file_key": person["key"],
                        },
                    ).raise_for_status()

            senders = [threading.Thread(target=send, args=(p,)) for p in people]
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            db_path = Path(home) / "rudder.db"
            deadline = time.monotonic() + 600
            rows: list[tuple[str, str, int]] = []
            while time.monotonic() < deadline:
                rows = stored(db_path)
                if len(rows) >= args.users:
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            time.sleep(2.0)  # the runs copy the files into their directories meanwhile
            done.set()
            sampler.join()
            hwm_after = status_kb(rudder.pid, "VmHWM")
            wanted = sorted(p["sha256"] for p in people)
            got = sorted(sha for status, sha, _ in rows if status == "stored")
            result = {
                "benchmark": "media_memory",
                "users": args.users,
                "file_mb": args.mb,
                "total_mb": args.users * args.mb,
                "stored": sum(1 for r in rows if r[0] == "stored"),
                "sha256_match": got == wanted,
                "seconds_to_store_all": round(elapsed, 2),
                "rss_baseline_mb": round(baseline / 1024, 1),
                "rss_peak_sampled_mb": round(peak / 1024, 1),
                "rss_growth_mb": round((peak - baseline) / 1024, 1),
                "vmhwm_before_mb": round(hwm_before / 1024, 1),
                "vmhwm_after_mb": round(hwm_after / 1024, 1),
                "machine": machine(),
            }
            print(json.dumps(result))
    finally:
        stop(rudder)
        stop(sandbox)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

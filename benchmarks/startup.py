"""Seconds from `rudder start` to /api/health answering 200 on the embedded default.

Usage: python benchmarks/startup.py [--runs N]; prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_start(fresh_home: bool, home: str) -> float:
    port = free_port()
    env = dict(os.environ, RUDDER_HOME=home, RUDDER_LOG_LEVEL="WARNING")
    env.pop("DATABASE_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rudder", "start", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise SystemExit("rudder did not become healthy within 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        first = one_start(True, home)  # creates the database and runs every migration
        warm = [one_start(False, home) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "start_to_healthy_s": round(statistics.median(warm), 3),
                "first_start_to_healthy_s": round(first, 3),
                "runs": args.runs,
                **machine(),
            }
        )
    )


if __name__ == "__main__":
    main()

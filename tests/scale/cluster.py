"""Real Rudder processes (instances and run workers) on one fresh PostgreSQL and one sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
# Short timings so a takeover happens within seconds (defaults: 8 s lease, 2 s heartbeat).
FAST = {
    "RUDDER_LEASE_TTL_S": "6",
    "RUDDER_HEARTBEAT_S": "1",
    "RUDDER_INSTANCE_DEAD_S": "4",
}
WORKER = "import typer; from rudder.cli_scale import worker; typer.run(worker)"


def free_port() -> int:
    # The child binds it itself; a clash within the few milliseconds between is unlikely.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    async def stop(self, timeout: float = 20.0) -> None:
        # Polled, not waited on: the sandbox lives in this event loop and must keep answering.
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            deadline = time.monotonic() + timeout
            while self.popen.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Cluster:
    database_url: str
    sandbox_url: str
    home: Path
    secrets_key: str
    procs: list[Proc] = field(default_factory=list)
    env_extra: dict[str, str] = field(default_factory=dict)

    def env(self, name: str, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(FAST)
        env.update(self.env_extra)
        env.update(
            DATABASE_URL=self.database_url,
            RUDDER_HOME=str(self.home / name),
            RUDDER_SECRETS_KEY=self.secrets_key,
            RUDDER_FEISHU_BASE_URL=self.sandbox_url,
            RUDDER_PUBLIC_URL="http://rudder.test",
            RUDDER_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.home / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def instance(self, name: str, **extra: str) -> Proc:
        port = free_port()
        proc = self._spawn(
            name,
            [sys.executable, "-m", "rudder", "start", "--port", str(port)],
            self.env(name, **extra),
        )
        proc.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if proc.popen.poll() is not None:
                    raise AssertionError(f"{name} exited:\n{proc.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(proc.url + "/api/health")).status_code == 200:
                        return proc
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not healthy:\n{proc.log.read_text()[-3000:]}")
                await asyncio.sleep(0.1)

    def worker(self, name: str, concurrency: int = 2) -> Proc:
        return self._spawn(
            name,
            [sys.executable, "-c", WORKER, "--concurrency", str(concurrency)],
            self.env(name),
        )

    async def close(self) -> None:
        await asyncio.gather(*(proc.stop() for proc in self.procs))

    # -- database views ------------------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def leases(self) -> dict[str, str]:
        """integration id → holding instance, for valid leases."""
        rows = self.query(
            "SELECT integration_id, owner_instance_id FROM bot_leases WHERE expires_at > now()"
        )
        return {r[0]: r[1] for r in rows}

    def instance_ids(self) -> dict[int, str]:
        """pid → instance id."""
        return {r[1]: r[0] for r in self.query("SELECT id, pid FROM instances")}

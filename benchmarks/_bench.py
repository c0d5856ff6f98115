"""Shared pieces of the Feishu benchmarks: processes on loopback and a connected Rudder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from rudder.runtimes import DEFAULT_AGENT_RUNTIME

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_sandbox_load.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the sandbox process did not start")
    return proc, str(json.loads(line)["url"])


def start_rudder(home: str, sandbox_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environ = dict(
        os.environ,
        RUDDER_HOME=home,
        RUDDER_LOG_LEVEL="WARNING",
        RUDDER_FEISHU_BASE_URL=sandbox_url,
        **env,
    )
    for key in ("DATABASE_URL", "RUDDER_DATABASE_URL"):
        environ.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rudder", "start", "--port", str(port)],
        env=environ,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"rudder exited with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit("rudder did not become healthy within 60 s")


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def new_app(sb: httpx.Client, name: str) -> dict[str, Any]:
    r = sb.post("/_sandbox/api/apps", json={"name": name, "brand": "feishu"})
    r.raise_for_status()
    app: dict[str, Any] = r.json()
    return app


def connect_bot(rudder: httpx.Client, app: dict[str, Any], agent_id: str) -> None:
    r = rudder.post(
        f"/api/agents/{agent_id}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    if r.status_code != 200:
        raise SystemExit(f"connecting {app['app_id']} failed: {r.status_code} {r.text}")


def new_agent(rudder: httpx.Client, org_id: str, name: str) -> str:
    runtime, config = DEFAULT_AGENT_RUNTIME
    r = rudder.post(
        f"/api/orgs/{org_id}/agents",
        json={"name": name, "runtime_type": runtime, "runtime_config": config},
    )
    r.raise_for_status()
    return str(r.json()["id"])


def default_org_and_agent(rudder: httpx.Client) -> tuple[str, str]:
    org = rudder.get("/api/orgs").json()[0]
    agent = rudder.get(f"/api/orgs/{org['id']}/agents").json()[0]
    return str(org["id"]), str(agent["id"])


def wait_connections(sb: httpx.Client, app_ids: list[str], timeout: float = 60) -> float:
    """Seconds until the sandbox holds a live connection for each of these apps."""
    started = time.monotonic()
    wanted = set(app_ids)
    while time.monotonic() - started < timeout:
        if wanted <= set(sb.get("/_bench/connections").json()["app_ids"]):
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"not all of {len(wanted)} apps connected within {timeout:g} s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def machine() -> dict[str, Any]:
    """How busy the machine was: a figure only means something next to its load average."""
    one, five, fifteen = os.getloadavg()
    return {
        "load_average": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "cpus": os.cpu_count(),
    }

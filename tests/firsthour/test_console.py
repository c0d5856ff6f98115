"""`rudder start` as a newcomer meets it: the console names the URL and the next steps, a
taken port is one line, and stopping with a live stream open prints no traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from rudder import texts
from rudder.domain.orgs import EXAMPLE_AGENT_NAME


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUDDER_")}
    env.pop("DATABASE_URL", None)
    # Wide enough that rich does not wrap the lines this test reads.
    return dict(env, RUDDER_HOME=str(home), COLUMNS="200", TERM="dumb")


async def _start(home: Path, port: int, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rudder", "start", "--port", str(port), *args,
        env=_env(home), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def _read_until(proc: asyncio.subprocess.Process, marker: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    seen = ""

    async def read() -> None:
        nonlocal seen
        assert proc.stdout is not None
        while marker not in seen:
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"rudder exited before printing {marker!r}:\n{seen}")
            seen += line.decode()

    await asyncio.wait_for(read(), timeout)
    # The lines printed right after the marker belong to the same message.
    await asyncio.sleep(0.5)
    return seen


async def _stop(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    proc.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return out.decode()


async def test_first_lines_name_the_url_the_example_agent_and_the_sandbox(tmp_path: Path) -> None:
    port = _free_port()
    proc = await _start(tmp_path / "home", port)
    try:
        head = await _read_until(proc, "API reference")
    finally:
        rest = await _stop(proc)
    assert f"Open http://127.0.0.1:{port} in your browser" in head
    assert EXAMPLE_AGENT_NAME in head
    assert "rudder start --sandbox" in head
    assert f"http://127.0.0.1:{port}/docs" in head
    assert "Traceback" not in head + rest
    assert proc.returncode == 0, head + rest


async def test_with_the_sandbox_the_console_says_where_it_is(tmp_path: Path) -> None:
    proc = await _start(tmp_path / "home", _free_port(), "--sandbox")
    try:
        head = await _read_until(proc, "API reference")
    finally:
        await _stop(proc)
    assert "/_sandbox/" in head and "Integrations tab" in head
    assert texts.CONSOLE_SANDBOX_HINT not in head


async def test_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await _start(tmp_path / "home", port)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in text
    assert f"--port {port + 1}" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 2, text


async def test_stopping_with_a_live_stream_open_is_quiet(tmp_path: Path) -> None:
    port = _free_port()
    proc = await _start(tmp_path / "home", port)
    try:
        await _read_until(proc, "API reference")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            org = (await api.get("/api/orgs")).json()[0]
            agent = (await api.get(f"/api/orgs/{org['id']}/agents")).json()[0]
            conv = (
                await api.post(
                    f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]}
                )
            ).json()
            async with api.stream("GET", f"/api/conversations/{conv['id']}/events") as events:
                lines = events.aiter_lines()
                assert (await anext(lines)).startswith("event: snapshot")
                started = asyncio.get_running_loop().time()
                out = await _stop(proc)
                elapsed = asyncio.get_running_loop().time() - started
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "ERROR" not in out, out
    # Well before uvicorn's graceful-shutdown timeout (5 s) would cancel the stream.
    assert elapsed < 4.5, elapsed


async def test_help_shows_the_defaults() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rudder", "start", "--help",
        env=dict(os.environ, COLUMNS="120"), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert "127.0.0.1" in text and "3100" in text and "--verbose" in text

"""Shared helpers for the runtime tests (a plain module, so tests import what they use)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from rudder.runtimes.base import AgentRuntime, ChatMessage, RunContext, RunEvent, RunEventKind

FAKES = Path(__file__).parent / "fakes"
FAKE_AGENT = str(FAKES / "agent.py")


def make_context(
    runtime_config: Mapping[str, Any],
    prompt: str = "hello",
    *,
    secrets: Mapping[str, str] | None = None,
    run_id: str = "run-1",
    **kwargs: Any,
) -> RunContext:
    known = dict(secrets or {})

    async def resolve(name: str) -> str:
        return known[name]

    messages = kwargs.pop(
        "messages",
        [
            ChatMessage("user", "earlier question", "Ada"),
            ChatMessage("assistant", "earlier answer"),
            ChatMessage("user", prompt, "Ada"),
        ],
    )
    # The fake endpoints of these tests listen on loopback: the operator's allowance, explicitly
    # (tests/hostile/test_ssrf.py shows the same request refused without it).
    kwargs.setdefault("allow_private_urls", True)
    return RunContext(
        run_id=run_id,
        agent_id="agent-1",
        agent_name="Helper",
        conversation_id="conv-1",
        messages=messages,
        runtime_config=runtime_config,
        instructions=kwargs.pop("instructions", "Be brief."),
        resolve_secret=resolve,
        **kwargs,
    )


def fake_agent(mode: str, arg: str = "", **config: Any) -> dict[str, Any]:
    return {"command": "python", "args": [FAKE_AGENT, mode, arg], **config}


async def collect(runtime: AgentRuntime, ctx: RunContext) -> list[RunEvent]:
    return [event async for event in runtime.stream(ctx)]


def text_of(events: list[RunEvent]) -> str:
    return "".join(e.text for e in events if e.kind is RunEventKind.TEXT)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # A zombie has exited; only its parent (maybe init) has not collected it yet.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def wait_gone(pids: list[int], within: float = 3.0) -> list[int]:
    """The pids still alive after `within` seconds (empty when all are gone)."""
    alive = pids
    for _ in range(int(within / 0.02)):
        alive = [p for p in alive if pid_alive(p)]
        if not alive:
            break
        await asyncio.sleep(0.02)
    return alive


def _pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def read_pids(path: Path, within: float = 5.0) -> list[int]:
    for _ in range(int(within / 0.01)):
        if pids := _pids_in(path):
            return pids
        await asyncio.sleep(0.01)
    raise AssertionError(f"the agent never wrote {path}")


def pids_of_run(run_id: str) -> list[int]:
    """Our own processes carrying RUDDER_RUN_ID=run_id: a runtime's children for that run."""
    needle = f"RUDDER_RUN_ID={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (proc / "environ").read_bytes().split(b"\0") and pid_alive(int(proc.name)):
                found.append(int(proc.name))
    return found


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port for the duration of the block."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)


def install_fake_clis(bin_dir: Path, monkeypatch: Any) -> None:
    """Fake `claude` and `codex` executables first on PATH (replaying fixture streams)."""
    import sys

    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("claude", "codex"):
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "fake_cli.py"}" "$@"\n')
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")


def read_calls(record: Path) -> list[dict[str, Any]]:
    """The fake CLI's invocations (argv, stdin, cwd), in order."""
    import json

    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]

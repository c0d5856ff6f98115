"""The official Node SDK (`@larksuiteoapi/node-sdk`, pinned in tests/node/lark-sdk/package.json).

The tests drive small scripts in tests/node/lark-sdk/ as subprocesses. Without `node` or the
installed SDK they skip, saying why — unless RUDDER_REQUIRE_NODE_SDK=1, which makes a missing
SDK a failure (CI sets it so the second oracle cannot silently drop out).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SDK_DIR = Path(__file__).resolve().parents[1] / "node" / "lark-sdk"
PACKAGE = "@larksuiteoapi/node-sdk"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (SDK_DIR / "node_modules" / PACKAGE / "package.json").is_file():
        return f"{PACKAGE} is not installed: run `npm ci` in {SDK_DIR}"
    return None


def require_node_sdk() -> Path:
    """The folder of the scripts; skips (or fails under RUDDER_REQUIRE_NODE_SDK=1) without it."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("RUDDER_REQUIRE_NODE_SDK") == "1":
            pytest.fail(f"RUDDER_REQUIRE_NODE_SDK=1 but {reason}")
        pytest.skip(reason)
    return SDK_DIR


def installed_version() -> str:
    manifest = SDK_DIR / "node_modules" / PACKAGE / "package.json"
    return str(json.loads(manifest.read_text())["version"])


class NodeScript:
    """One running script; its stdout is one JSON object per line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    async def next(self, timeout: float = 20) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        if not raw:
            await self.proc.wait()
            stderr = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(
                f"node script exited ({self.proc.returncode}): {stderr.decode()[-2000:]}"
            )
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line

    async def until(self, key: str, timeout: float = 20) -> dict[str, Any]:
        """The next line that has `key`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            line = await self.next(timeout=max(0.1, deadline - loop.time()))
            if key in line:
                return line

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


async def start(script: str, *args: str) -> NodeScript:
    folder = require_node_sdk()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(folder / script),
        *args,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
    )
    return NodeScript(proc)

"""The README's terminal walk, run as written against a real server: ids captured by the
commands themselves, a reply, and a long reply that `/stop` really stops."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from rudder.config import Settings
from rudder.server import RunningServer, create_app

README = Path(__file__).resolve().parents[2] / "README.md"


def _walk() -> str:
    text = README.read_text()
    found = re.search(r"<!-- walk:start -->\n```sh\n(.*?)```\n<!-- walk:end -->", text, re.S)
    assert found, "README.md has no walk block"
    return found.group(1)


async def test_the_readme_walk_runs_as_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example agent at its normal pace, so the long reply is still streaming at /stop.
    monkeypatch.setenv("RUDDER_EXAMPLE_DELAY_MS", "40")
    async with RunningServer(create_app(settings)) as server:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", _walk(),
            env={"RUDDER": server.url, "PATH": "/usr/bin:/bin"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    stdout = out.decode()
    assert proc.returncode == 0, stdout + err.decode()
    assert "event: snapshot" in stdout  # the live stream answered
    lines = [
        line
        for line in stdout.splitlines()
        if line and not line.startswith(("event:", "data:", "id:", ":"))
    ]
    assert lines[0] == "completed"  # the posted message
    assert lines[-1] == "stopped", stdout  # the long reply, stopped mid-stream

"""`rudder start` as a separate process (port 0), for attacks measured from outside: its memory,
its sockets, how it reads its environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
_RUNNING = re.compile(r"Rudder is running on (http://[^\s]+?)\.? Open ")


@dataclass
class RudderProcess:
    process: subprocess.Popen[str]
    url: str
    output: list[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss_kib(self) -> int:
        """Resident memory of the server process, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def rudder_env(home: Path | None, **extra: str) -> dict[str, str]:
    """A clean environment: only what a user would have, plus `extra`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "300",  # one line per message in rich's output
        "RUDDER_LOG_LEVEL": "WARNING",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    if home is not None:
        env["RUDDER_HOME"] = str(home)
    env.update(extra)
    return env


def rudder_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rudder", *args]


@contextmanager
def rudder_start(
    env: Mapping[str, str], *args: str, cwd: Path | None = None, timeout: float = 60.0
) -> Iterator[RudderProcess]:
    """Run `rudder start --port 0 ARGS` until the block ends; fails if it does not come up."""
    process = subprocess.Popen(
        rudder_command("start", "--port", "0", *args),
        env={"RUDDER_PORT": "0", **env},  # never a fixed port, whatever the CLI makes of --port
        cwd=cwd or ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader: threading.Thread | None = None
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if found := _RUNNING.search(line):
                url = found.group(1)
                break
        if url is None:
            raise RuntimeError("rudder start did not come up:\n" + "".join(output))
        # Keep reading: a full pipe would block the server's next log line.
        reader = threading.Thread(target=_drain, args=(process.stdout, output), daemon=True)
        reader.start()
        yield RudderProcess(process, url, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if reader is not None:
            reader.join(10)
        if process.stdout is not None:
            process.stdout.close()


def _drain(stream: IO[str], into: list[str]) -> None:
    with contextlib.suppress(ValueError, OSError):  # closed at the end
        for line in stream:
            into.append(line)

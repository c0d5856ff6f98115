"""A fake `claude` / `codex` CLI: replays a fixture stream from tests/runtimes/fixtures.

Driven by environment variables (set through the runtime config's `env`):
FAKE_CLI_FIXTURE (fixture name), FAKE_CLI_RECORD (append each invocation as JSON),
FAKE_CLI_DELAY_MS (pause between lines), FAKE_CLI_HANG (pid file; then wait to be stopped, with
a helper process in the group), FAKE_CLI_HANG_IF (hang only when the prompt contains this),
FAKE_CLI_STDERR (a line for stderr), FAKE_CLI_LOGGED_OUT (`login status` says so),
FAKE_CLI_EXIT (exit code after the fixture, as the real Claude exits 1 after a failed result),
FAKE_CLI_PAUSE (`LINE:MS`, pause that long after that fixture line, as a long tool call does),
FAKE_CLI_RECONNECT (print that many of Codex's "Reconnecting..." lines, 0.2 s apart, first).
A resume id starting with "stale" is unknown, and each CLI says so as the real one does: Claude
Code with a `result` line carrying `errors[]` (and the same on stderr), Codex with an error and a
backtrace on stderr. Codex warns on stderr as the real one does in a temporary CODEX_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures"


def resumed_id(argv: list[str]) -> str | None:
    for flag in ("--resume", "resume"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return None


def main() -> int:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print("9.9.9 (fake CLI)")
        return 0
    if argv == ["login", "status"]:
        if os.environ.get("FAKE_CLI_LOGGED_OUT"):
            print("Not logged in", file=sys.stderr)
            return 1
        print("Logged in using ChatGPT", file=sys.stderr)
        return 0
    prompt = sys.stdin.read()
    if record := os.environ.get("FAKE_CLI_RECORD"):
        with open(record, "a") as f:
            f.write(json.dumps({"argv": argv, "stdin": prompt, "cwd": os.getcwd()}) + "\n")
    is_codex = bool(argv) and argv[0] == "exec"
    if is_codex:
        print(
            "WARNING: proceeding, even though we could not create PATH aliases: Refusing to "
            'create helper binaries under temporary dir "/tmp"',
            file=sys.stderr,
            flush=True,
        )
    session = resumed_id(argv)
    if session and session.startswith("stale"):
        return unknown_session(session, is_codex)
    for _ in range(int(os.environ.get("FAKE_CLI_RECONNECT", "0"))):
        line = "Reconnecting... waiting for network (Connection failed: error sending request)"
        print(json.dumps({"type": "error", "message": line}), flush=True)
        time.sleep(0.2)
    if stderr_line := os.environ.get("FAKE_CLI_STDERR"):
        print(stderr_line, file=sys.stderr, flush=True)
    delay = float(os.environ.get("FAKE_CLI_DELAY_MS", "0")) / 1000
    fixture = FIXTURES / f"{os.environ['FAKE_CLI_FIXTURE']}.jsonl"
    pause_line, _, pause_ms = os.environ.get("FAKE_CLI_PAUSE", "0:0").partition(":")
    for number, line in enumerate(fixture.read_text().splitlines(), 1):
        print(line, flush=True)
        time.sleep(delay)
        if number == int(pause_line):
            time.sleep(float(pause_ms) / 1000)
    pid_file = os.environ.get("FAKE_CLI_HANG")
    if pid_file and os.environ.get("FAKE_CLI_HANG_IF", "") in prompt:
        # A helper in the same process group, as a real CLI's tool call would start.
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        Path(pid_file).write_text(f"{os.getpid()} {helper.pid}")
        time.sleep(60)
    return int(os.environ.get("FAKE_CLI_EXIT", "0"))


def unknown_session(session: str, is_codex: bool) -> int:
    if is_codex:
        print(
            f"Error: thread/resume: thread/resume failed: no rollout found for thread id "
            f"{session} (code -32600)\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>",
            file=sys.stderr,
        )
        return 1
    message = f"No conversation found with session ID: {session}"
    result = {
        "type": "result",
        "subtype": "error_during_execution",
        "duration_ms": 0,
        "is_error": True,
        "num_turns": 0,
        "session_id": session,
        "total_cost_usd": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "errors": [message],
    }
    print(json.dumps(result), flush=True)
    print(message, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""A fake agent for the process runtime tests: `python agent.py MODE [ARG]`.

Each mode is one behaviour a real agent can show: streaming, JSONL events, crashing, hanging
(with a helper process in its group), ignoring SIGTERM, printing garbage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def emit(obj: dict[str, object]) -> None:
    print(json.dumps(obj), flush=True)


def write_pids(path: str) -> None:
    # A helper in the same process group, as a real agent's tool call would start.
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path(path).write_text(f"{os.getpid()} {helper.pid}")


def main() -> int:
    mode = sys.argv[1]
    arg = sys.argv[2] if len(sys.argv) > 2 else ""
    context = json.loads(sys.stdin.read())
    if mode == "text":
        # Waits for the test to see the first delta: proves deltas stream before a newline.
        sys.stdout.write("Hello")
        sys.stdout.flush()
        deadline = time.monotonic() + 5
        while not Path(arg).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.stdout.write(", world")
    elif mode == "jsonl":
        emit({"type": "session", "session_id": "sess-1"})
        emit({"type": "thinking", "text": "pondering"})
        emit({"type": "tool_call", "name": "search", "id": "t1", "input": {"q": "rudder"}})
        emit({"type": "tool_result", "tool_use_id": "t1", "content": "found"})
        emit({"type": "text", "text": "Hello"})
        emit({"type": "something_new", "x": 1})
        emit({"type": "text", "text": " there"})
        emit({"type": "usage", "input_tokens": 10, "output_tokens": 3, "cost_usd": 0.001})
        sys.stdout.write(json.dumps({"type": "done"}))  # no final newline
    elif mode == "context":
        emit({"type": "text", "text": json.dumps(context)})
    elif mode == "env":
        sys.stdout.write(os.environ.get(arg, "<unset>"))
    elif mode == "crash":
        sys.stdout.write("partial answer")
        sys.stdout.flush()
        print(f"boom: the model broke ({os.environ.get('TOKEN', '')})", file=sys.stderr)
        return 2
    elif mode == "garbage":
        emit({"type": "text", "text": "fine so far"})
        print("this is not json", flush=True)
        time.sleep(5)
    elif mode == "error_event":
        emit({"type": "text", "text": "partial"})
        emit({"type": "error", "message": "model overloaded"})
        time.sleep(5)
    elif mode in ("hang", "hang_ignore_term"):
        if mode == "hang_ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        write_pids(arg)
        print("working", flush=True)
        time.sleep(60)
    elif mode == "ticker":
        write_pids(arg)
        for i in range(100000):
            sys.stdout.write(f"tick{i} ")
            sys.stdout.flush()
            time.sleep(0.01)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main())

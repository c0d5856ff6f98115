"""Rudder's bundled example agent: an offline stand-in for a real agent, run by the `process`
runtime as `python -m rudder.runtimes.example_agent`.

It reads the run context JSON on stdin and writes a plain-text reply word by word, so the default
agent streams (and can be stopped) without any model or network. It is deterministic on purpose:
tests and demos rely on its replies. Test hooks in the message:

- `slow`, or "count to N": a long reply, so a stop can land mid-stream;
- `fail`: exits non-zero with a reason on stderr.

`RUDDER_EXAMPLE_DELAY_MS` sets the pause between words (default 40).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

DEFAULT_DELAY_MS = 40
MAX_COUNT = 1000
SLOW_COUNT = 150
FAIL_EXIT_CODE = 3

INTRO = "Hi{name}! I'm Rudder's example agent, a small offline program bundled with Rudder (not an AI model)."
SWITCH_HINT = (
    "To give this agent a real brain, open its Configuration and switch the runtime to "
    "claude_local, codex_local, openai, http or process."
)
EMPTY = "You sent an empty message. Say something and I'll echo it back."
FAIL_REASON = "example agent: failing on purpose because the message asked for it (`fail`)"

_COUNT = re.compile(r"\bcount\s+to\s+(\d+)\b", re.IGNORECASE)
_SLOW = re.compile(r"\bslow\b", re.IGNORECASE)
_FAIL = re.compile(r"\bfail\b", re.IGNORECASE)


def _read_context(raw: str) -> dict[str, Any]:
    # Run by hand with plain text on stdin, the text is the prompt.
    try:
        context = json.loads(raw)
    except ValueError:
        return {"prompt": raw.strip(), "messages": []}
    return context if isinstance(context, dict) else {"prompt": str(context), "messages": []}


def _author(context: dict[str, Any]) -> str | None:
    for message in reversed(context.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            author = message.get("author")
            return author if isinstance(author, str) and author else None
    return None


def reply_for(context: dict[str, Any]) -> str:
    prompt = str(context.get("prompt") or "").strip()
    author = _author(context)
    intro = INTRO.format(name=f" {author}" if author else "")
    if not prompt:
        return f"{intro} {EMPTY}"
    count = _COUNT.search(prompt)
    if count or _SLOW.search(prompt):
        n = min(int(count.group(1)), MAX_COUNT) if count else SLOW_COUNT
        numbers = " ".join(str(i) for i in range(1, n + 1))
        return f"{intro} Counting to {n}: {numbers}. Done counting."
    words = len(prompt.split())
    turns = sum(
        1
        for message in context.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "user"
    )
    plural = "" if words == 1 else "s"
    return (
        f'{intro} You said: "{prompt}" ({words} word{plural}, {len(prompt)} characters). '
        f"That is message {max(turns, 1)} from you in this conversation. {SWITCH_HINT}"
    )


def _delay_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("RUDDER_EXAMPLE_DELAY_MS", DEFAULT_DELAY_MS)) / 1000)
    except ValueError:
        return DEFAULT_DELAY_MS / 1000


def main() -> int:
    context = _read_context(sys.stdin.read())
    if _FAIL.search(str(context.get("prompt") or "")):
        print(FAIL_REASON, file=sys.stderr, flush=True)
        return FAIL_EXIT_CODE
    delay = _delay_seconds()
    words = reply_for(context).split(" ")
    try:
        for index, word in enumerate(words):
            # Flushing each word is what makes the reply stream through a pipe.
            sys.stdout.write(word if index == 0 else " " + word)
            sys.stdout.flush()
            if delay and index < len(words) - 1:
                time.sleep(delay)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The run was stopped and stdout closed; nothing is left to say to anyone.
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

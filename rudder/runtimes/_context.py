"""The group's recent messages in the form each runtime takes them (rudder.feishu.group_context).

Always apart from the conversation and marked as untrusted context, never as instructions:

- process / http: `group_context` in the context JSON (`heading`, `notice`, `messages[]` with
  `sender`, `sender_type`, `sent_at`, `text`, `message_id`), next to `messages` and `prompt`;
- claude_local / codex_local / openai: a text block before the message answered (`block`).

In the text block every message is one entry starting with `- [time] sender:`, its further
lines indented, and only the block's own heading, notice and end line start at the margin: a
message's text can't close the block or pose as another sender.
"""

from __future__ import annotations

from typing import Any

from .base import ContextMessage, RunContext

INDENT = "    "


def document(ctx: RunContext) -> dict[str, Any] | None:
    from rudder import texts

    if not ctx.group_context:
        return None
    return {
        "heading": texts.CONTEXT_HEADING,
        "notice": texts.CONTEXT_NOTICE,
        "messages": [
            {
                "sender": m.sender,
                "sender_type": m.sender_type,
                "sent_at": m.sent_at,
                "text": m.text,
                "message_id": m.message_id,
            }
            for m in ctx.group_context
        ],
    }


def _when(m: ContextMessage) -> str:
    # "2026-12-01T20:15:00+00:00" → "2026-12-01 20:15 UTC"
    return f"{m.sent_at[:10]} {m.sent_at[11:16]} UTC" if len(m.sent_at) >= 16 else "?"


def _entry(m: ContextMessage) -> str:
    who = " ".join(m.sender.split()) or "?"
    if m.sender_type == "bot":
        who += " (bot)"
    lines = m.text.splitlines() or [""]
    rest = "".join(f"\n{INDENT}{line}" for line in lines[1:])
    return f"- [{_when(m)}] {who}: {lines[0]}{rest}"


def block(ctx: RunContext) -> str | None:
    from rudder import texts

    if not ctx.group_context:
        return None
    entries = "\n".join(_entry(m) for m in ctx.group_context)
    return f"{texts.CONTEXT_HEADING}\n{texts.CONTEXT_NOTICE}\n\n{entries}\n\n{texts.CONTEXT_END}"

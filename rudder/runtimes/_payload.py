"""What a runtime tells the agent: the context document and, for CLIs, the prompt text."""

from __future__ import annotations

from typing import Any

from . import _context
from ._attachments import payload_items, prompt_section
from .base import RunContext


def context_payload(ctx: RunContext, *, inline_attachments: bool = False) -> dict[str, Any]:
    """The JSON document the `process` runtime writes on stdin and the `http` runtime POSTs
    (which gets the attachments' bytes inline instead of their paths)."""
    extra: dict[str, Any] = {"skills": ctx.extra["skills"]} if "skills" in ctx.extra else {}
    if ctx.attachments:
        extra["attachments"] = payload_items(ctx, inline=inline_attachments)
    if ctx.run_dir and not inline_attachments:
        extra["run_dir"] = ctx.run_dir
    context = _context.document(ctx)
    if context is not None:
        extra["group_context"] = context
    return {
        **extra,
        "run_id": ctx.run_id,
        "agent": {"id": ctx.agent_id, "name": ctx.agent_name, "instructions": ctx.instructions},
        "conversation_id": ctx.conversation_id,
        "messages": [
            {"role": message.role, "body": message.body, "author": message.author}
            for message in ctx.messages
        ],
        "prompt": ctx.prompt,
        "session_id": ctx.session_id,
    }


def _earlier_messages(ctx: RunContext) -> list[str]:
    # Everything before the newest user message, which is the prompt itself.
    messages = list(ctx.messages)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            messages = messages[:index]
            break
    lines = []
    for message in messages:
        who = message.author or message.role
        lines.append(f"[{who}] {message.body}")
    return lines


def cli_prompt(ctx: RunContext, *, resuming: bool, preamble: str | None = None) -> str:
    """The prompt for a coding CLI.

    A resumed CLI session already holds the conversation, so it gets only the new message. A fresh
    one (first message, or a session the CLI forgot) gets the earlier messages as a transcript,
    so the agent does not lose what was said.
    """
    files = prompt_section(ctx)
    context = _context.block(ctx)
    if resuming:
        prompt = f"{context}\n\nNew message:\n{ctx.prompt}" if context else ctx.prompt
        return f"{prompt}\n\n{files}" if files else prompt
    parts = []
    if preamble:
        parts.append(preamble)
    earlier = _earlier_messages(ctx)
    if earlier:
        parts.append("Conversation so far:\n" + "\n".join(earlier))
    if context:
        parts.append(context)
    if earlier or context:
        parts.append("New message:\n" + ctx.prompt)
    else:
        parts.append(ctx.prompt)
    if files:
        parts.append(files)
    return "\n\n".join(parts)

"""What a run looks like from outside: live-event views and the update observers receive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rudder.db.models import Message, Run
from rudder.markdown_html import body_html


@dataclass
class RunUpdate:
    """What observers (e.g. the Feishu reply streamer) learn about a run."""

    run_id: str
    conversation_id: str
    agent_id: str
    source: str
    status: str
    text: str = ""
    error: str | None = None
    trigger_message_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Observer = Callable[[str, RunUpdate], Awaitable[None]]  # (phase, update); phase: start|text|end


def message_view(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "role": m.role,
        "body": m.body,
        "status": m.status,
        "author_user_id": m.author_user_id,
        "author_agent_id": m.author_agent_id,
        "external_sender_id": m.external_sender_id,
        "external_message_id": m.external_message_id,
        "run_id": m.run_id,
        "error": m.error,
        "created_at": m.created_at.isoformat() if m.created_at else None,
        # A finished reply's Markdown as safe HTML, for the web conversation (None otherwise).
        "body_html": body_html(m),
    }


def run_view(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "agent_id": r.agent_id,
        "conversation_id": r.conversation_id,
        "trigger_message_id": r.trigger_message_id,
        "reply_message_id": r.reply_message_id,
        "source": r.source,
        "status": r.status,
        "cancel_requested_at": r.cancel_requested_at.isoformat() if r.cancel_requested_at else None,
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "error": r.error,
        "usage": r.usage,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "handed_from_run_id": r.handed_from_run_id,
        "handoff_root_id": r.handoff_root_id,
        "handoff_hop": r.handoff_hop,
    }

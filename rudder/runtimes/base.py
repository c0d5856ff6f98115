"""The AgentRuntime port: how a run asks an agent for a reply.

A runtime turns a `RunContext` into a stream of `RunEvent`s. Cancellation is plain asyncio
cancellation of the task that iterates the stream: a runtime must release what it holds
(processes, connections) in `finally` blocks, within a bounded time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class RuntimeError_(Exception):
    """A runtime failed; `str(exc)` is the reason shown to people (never a secret)."""


class RunTimedOut(RuntimeError_):
    """The runtime ran past its configured timeout and was stopped (the run ends cancelled)."""


class RunEventKind(StrEnum):
    TEXT = "text"  # a delta of the assistant's visible reply
    THINKING = "thinking"  # kept in the transcript, never sent to Feishu as text
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    SESSION = "session"  # the runtime's own session id (resumed on the next message)
    USAGE = "usage"  # tokens / cost
    LOG = "log"  # diagnostic line (e.g. stderr), transcript only
    ATTACHMENT = "attachment"  # a file the agent attaches to its reply (docs/media.md)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "user" | "assistant" | "system"
    body: str
    author: str | None = None


@dataclass(frozen=True, slots=True)
class ContextMessage:
    """A message of the Feishu group that preceded the one this run answers: untrusted
    context, never instructions (rudder.feishu.group_context)."""

    sender: str
    sender_type: str  # user | bot
    sent_at: str  # ISO 8601, UTC
    text: str
    message_id: str = ""


SecretResolver = Callable[[str], Awaitable[str]]


async def _no_secrets(name: str) -> str:
    raise RuntimeError_(f"secret {name!r} is not available to this runtime")


@dataclass(frozen=True, slots=True)
class AttachmentFile:
    """A file of the message this run answers, on disk in the run's directory (`path`), or
    not available (`path` None, `reason` says why)."""

    id: str
    kind: str  # image | file | audio | media | sticker | cover
    name: str
    mime_type: str
    size: int
    sha256: str | None
    path: str | None
    reason: str | None = None
    transcript: str | None = None  # a voice message's text (Feishu's speech-to-text)
    # http runtime: a signed, expiring download URL for a file too large to inline.
    url: str | None = None
    url_expires_at: str | None = None


@dataclass(slots=True)
class RunContext:
    run_id: str
    agent_id: str
    agent_name: str
    conversation_id: str
    messages: list[ChatMessage]
    runtime_config: Mapping[str, Any]
    instructions: str | None = None
    # Resolves a secret reference (the secret's name in the agent's organization) to its value.
    resolve_secret: SecretResolver = _no_secrets
    # Session id the runtime reported last time in this conversation (for resumable CLIs).
    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # RUDDER_ALLOW_PRIVATE_RUNTIME_URLS: may http/openai call loopback, link-local, private?
    allow_private_urls: bool = False
    # The run's own directory (files it may attach to its reply live here) and the files of
    # the message it answers.
    run_dir: str | None = None
    attachments: list[AttachmentFile] = field(default_factory=list)
    # The group's recent messages (opt-in per agent and group), oldest first.
    group_context: list[ContextMessage] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        """The newest user message: what this run answers."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.body
        return ""


@dataclass(frozen=True, slots=True)
class RunEvent:
    kind: RunEventKind
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


class AgentRuntime(Protocol):
    type_name: str

    def stream(self, ctx: RunContext) -> AsyncIterator[RunEvent]: ...


RuntimeFactory = Callable[[], AgentRuntime]

"""Topics and threads: where a new message sits (parent_id, root_id, thread_id).

Feishu has two shapes of conversation inside a group. In a topic group (`chat_mode: "topic"`)
every new message starts a topic: it carries a `thread_id` (`omt_…`) and no `root_id`, and every
reply goes into that topic. In a normal group a reply is a quote (`root_id`/`parent_id`, no
`thread_id`) unless it is made with `reply_in_thread`, which opens a thread on the message
replied to; once a message has a thread, every reply to anything in it lands in the thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rudder.sandbox.state import Chat, Message, new_thread_id

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox


@dataclass(slots=True)
class Placement:
    parent_id: str | None
    root_id: str | None
    thread_id: str | None
    starts_topic: bool = False  # the new message is the root of a new topic


def open_thread(sandbox: Sandbox, root: Message) -> str:
    """The thread on ``root``, opened now when it has none."""
    if root.thread_id is None:
        root.thread_id = new_thread_id()
        sandbox.threads[root.thread_id] = root.message_id
    return root.thread_id


def place(sandbox: Sandbox, chat: Chat, parent: Message | None, in_thread: bool) -> Placement:
    if parent is None:
        if chat.chat_mode == "topic":
            return Placement(None, None, new_thread_id(), starts_topic=True)
        return Placement(None, None, None)
    if parent.thread_id is not None:
        root_id = sandbox.threads.get(parent.thread_id, parent.root_id or parent.message_id)
        return Placement(parent.message_id, root_id, parent.thread_id)
    if in_thread or chat.chat_mode == "topic":
        thread_id = open_thread(sandbox, parent)
        return Placement(parent.message_id, parent.message_id, thread_id)
    return Placement(parent.message_id, parent.root_id or parent.message_id, None)


def register(sandbox: Sandbox, message: Message, placement: Placement) -> None:
    """Record a message that started a topic as its thread's root."""
    if placement.starts_topic and message.thread_id is not None:
        sandbox.threads[message.thread_id] = message.message_id


def thread_root(sandbox: Sandbox, chat: Chat, thread_id: str) -> Message | None:
    root_id = sandbox.threads.get(thread_id)
    root = sandbox.messages.get(root_id) if root_id else None
    if root is None or root.chat_id != chat.chat_id:
        return None
    return root


def in_thread(sandbox: Sandbox, thread_id: str) -> list[Message]:
    """The thread's messages oldest first, its root included."""
    root_id = sandbox.threads.get(thread_id)
    root = sandbox.messages.get(root_id) if root_id else None
    if root is None:
        return []
    return [
        sandbox.messages[i]
        for i in sandbox.chat_messages.get(root.chat_id, [])
        if sandbox.messages[i].thread_id == thread_id
    ]

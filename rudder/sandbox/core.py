"""The sandbox: in-memory tenant state plus the event delivery engine."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from rudder.sandbox import events, render, threads
from rudder.sandbox.delivery import DeliveryEngine
from rudder.sandbox.envelope import fail
from rudder.sandbox.limits import ApiFault, ApiLimiter, SlidingWindow
from rudder.sandbox.longconn import ConnectionHub
from rudder.sandbox.resource_store import BlobFolder, Resource, StreamFault, keys_in_content
from rudder.sandbox.settings import Clock, Settings
from rudder.sandbox.speech_state import SpeechState
from rudder.sandbox.state import (
    App,
    Brand,
    Card,
    Chat,
    Mention,
    Message,
    Registration,
    SlashCommand,
    User,
    make_app,
    make_user,
    new_chat_id,
    new_message_id,
)
from rudder.sandbox.tokens import TokenStore
from rudder.sandbox.webhook import WebhookSender

if TYPE_CHECKING:
    from rudder.sandbox.callbacks import CallbackRecord

__all__ = ["Sandbox", "SandboxError"]


class SandboxError(ValueError):
    """A control-API request that cannot be honoured; ``status`` is the HTTP answer."""

    def __init__(self, detail: str, status: int = 400, error: str = "invalid_request") -> None:
        super().__init__(detail)
        self.status = status
        self.error = error


class Sandbox:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.clock = Clock()
        self.tenant_keys: dict[Brand, str] = {b: secrets.token_hex(8) for b in ("feishu", "lark")}
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.chats: dict[str, Chat] = {}
        self.messages: dict[str, Message] = {}
        self.chat_messages: dict[str, list[str]] = {}
        self.cards: dict[str, Card] = {}
        self.threads: dict[str, str] = {}  # thread_id -> its root message_id
        self.resources: dict[str, Resource] = {}
        self.blobs = BlobFolder()
        self.callbacks: list[CallbackRecord] = []
        self.stream_faults: list[StreamFault] = []
        self.slash_commands: dict[str, dict[str, SlashCommand]] = {}
        self.registrations: dict[str, Registration] = {}
        self.uuid_seen: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.faults: list[ApiFault] = []
        self.tokens = TokenStore()
        self.api_limiter = ApiLimiter()
        self.target_window = SlidingWindow()
        self.hub = ConnectionHub(self)
        self.webhooks = WebhookSender(self)
        self.deliveries = DeliveryEngine(self)
        self.speech = SpeechState()
        # Resource downloads (message_resource.get) in the order they were served, with
        # whether the event that carried the message had been acked by then.
        self.resource_gets: list[dict[str, Any]] = []
        self.order = 0  # one counter for acks and downloads: their order, without clocks
        self.version = 0  # bumped on every visible change; the human page polls it
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        await self.hub.close_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        await self.webhooks.aclose()
        self.blobs.close()

    def next_order(self) -> int:
        self.order += 1
        return self.order

    def touch(self) -> None:
        self.version += 1

    # -- tenant model --------------------------------------------------------------------

    def create_app(self, name: str, brand: Brand) -> App:
        app = make_app(name, brand, self.tenant_keys[brand])
        self.apps[app.app_id] = app
        self.touch()
        return app

    def create_user(self, name: str) -> User:
        user = make_user(name)
        self.users[user.user_id] = user
        self.touch()
        return user

    def find_user_by_name(self, name: str) -> User | None:
        return next((u for u in self.users.values() if u.name == name), None)

    def user(self, user_id: object) -> User:
        user = self.users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise SandboxError(f"unknown user {user_id!r}", 404, "not_found")
        return user

    def app(self, app_id: object) -> App:
        app = self.apps.get(app_id) if isinstance(app_id, str) else None
        if app is None:
            raise SandboxError(f"unknown app {app_id!r}", 404, "not_found")
        return app

    def chat(self, chat_id: object) -> Chat:
        chat = self.chats.get(chat_id) if isinstance(chat_id, str) else None
        if chat is None:
            raise SandboxError(f"unknown chat {chat_id!r}", 404, "not_found")
        return chat

    def create_chat(
        self,
        chat_type: str,
        user_ids: list[str],
        app_ids: list[str],
        name: str | None = None,
        chat_mode: str | None = None,
    ) -> Chat:
        users = [self.user(u) for u in user_ids]
        apps = [self.app(a) for a in app_ids]
        if chat_type == "p2p":
            if len(users) != 1 or len(apps) != 1:
                raise SandboxError("a p2p chat is one user and one bot")
            existing = self.p2p_chat(users[0].user_id, apps[0].app_id)
            if existing is not None:
                return existing
        elif chat_type != "group":
            raise SandboxError("type must be p2p or group")
        if chat_mode not in (None, "group", "topic") or (
            chat_mode == "topic" and chat_type != "group"
        ):
            raise SandboxError("chat_mode must be group or topic (topic for group chats only)")
        default_name = users[0].name if chat_type == "p2p" and users else "Group chat"
        chat = Chat(
            chat_id=new_chat_id(),
            chat_type="p2p" if chat_type == "p2p" else "group",
            name=name or default_name,
            user_ids=[u.user_id for u in users],
            app_ids=[a.app_id for a in apps],
            created_at=self.clock.now(),
            chat_mode="p2p"
            if chat_type == "p2p"
            else ("topic" if chat_mode == "topic" else "group"),
        )
        chat.joined_at = {a.app_id: chat.created_at for a in apps}
        self.chats[chat.chat_id] = chat
        self.chat_messages[chat.chat_id] = []
        if chat.chat_type == "group":
            operator = users[0] if users else None
            for app in apps:
                self.publish(
                    app, events.bot_membership(app, chat, operator, True, self.clock.now())
                )
        self.touch()
        return chat

    def p2p_chat(self, user_id: str, app_id: str) -> Chat | None:
        for chat in self.chats.values():
            if chat.chat_type == "p2p" and chat.user_ids == [user_id] and chat.app_ids == [app_id]:
                return chat
        return None

    def set_bot_membership(
        self, chat: Chat, app: App, present: bool, operator: User | None
    ) -> None:
        if chat.chat_type != "group":
            raise SandboxError("bots can be added to or removed from group chats only")
        if present == (app.app_id in chat.app_ids):
            return
        if present:
            chat.app_ids.append(app.app_id)
            chat.joined_at[app.app_id] = self.clock.now()
        else:
            chat.app_ids.remove(app.app_id)
        self.publish(app, events.bot_membership(app, chat, operator, present, self.clock.now()))
        self.touch()

    def add_message(self, message: Message) -> Message:
        self.messages[message.message_id] = message
        self.chat_messages.setdefault(message.chat_id, []).append(message.message_id)
        self.touch()
        return message

    def post_user_message(
        self,
        chat: Chat,
        user: User,
        msg_type: str,
        content: dict[str, Any],
        mention_app_ids: list[str],
        mention_user_ids: list[str],
        mention_all: bool,
        parent_id: str | None = None,
        thread_id: str | None = None,
    ) -> Message:
        if user.user_id not in chat.user_ids:
            raise SandboxError("the user is not a member of this chat")
        mentions: list[Mention] = []
        for app_id in mention_app_ids:
            app = self.app(app_id)
            mentions.append(
                Mention(key=f"@_user_{len(mentions) + 1}", name=app.name, app_id=app_id)
            )
        for user_id in mention_user_ids:
            person = self.user(user_id)
            mentions.append(
                Mention(key=f"@_user_{len(mentions) + 1}", name=person.name, user_id=user_id)
            )
        if msg_type == "text":
            text = str(content.get("text", ""))
            prefix = ""
            if mentions and "@_user_" not in text:
                prefix = " ".join(m.key for m in mentions) + " "
            if mention_all and "@_all" not in text:
                prefix = "@_all " + prefix
            content = {**content, "text": prefix + text}
        if mention_all:
            mentions.append(Mention(key="@_all", name="所有人"))
        parent = self.messages.get(parent_id) if parent_id else None
        if parent is not None and parent.chat_id != chat.chat_id:
            raise SandboxError("the message replied to is in another chat")
        if thread_id is not None and parent is None:
            parent = threads.thread_root(self, chat, thread_id)
            if parent is None:
                raise SandboxError(
                    f"unknown thread_id {thread_id!r} in this chat", 404, "not_found"
                )
        placement = threads.place(self, chat, parent, in_thread=thread_id is not None)
        now = self.clock.now()
        message = Message(
            message_id=new_message_id(),
            chat_id=chat.chat_id,
            sender_type="user",
            sender_id=user.user_id,
            msg_type=msg_type,
            content=json.dumps(content, ensure_ascii=False, separators=(",", ":")),
            create_time=now,
            update_time=now,
            parent_id=placement.parent_id,
            root_id=placement.root_id,
            thread_id=placement.thread_id,
            mentions=mentions,
        )
        threads.register(self, message, placement)
        self.add_message(message)
        for app_id in chat.app_ids:
            app = self.apps[app_id]
            mentioned = any(m.app_id == app_id for m in mentions) or mention_all
            if chat.chat_type == "group" and not mentioned and not app.receive_all_group_messages:
                continue
            wire_mentions = [self.event_mention(m, app) for m in mentions]
            self.publish(app, events.message_receive(app, chat, message, user, wire_mentions, now))
        return message

    def event_mention(self, mention: Mention, app: App) -> dict[str, Any]:
        if mention.app_id is not None:
            ids = {"union_id": "", "user_id": "", "open_id": self.apps[mention.app_id].bot_open_id}
        elif mention.user_id is not None:
            ids = events.user_id_triple(self.users[mention.user_id], app.app_id)
        else:  # @_all carries an empty id
            ids = {"union_id": "", "user_id": "", "open_id": ""}
        return {"key": mention.key, "id": ids, "name": mention.name, "tenant_key": app.tenant_key}

    def publish(self, app: App, event: dict[str, Any]) -> None:
        if event["header"]["event_type"] in app.event_types:
            self.deliveries.enqueue(app, event)

    # -- open-host helpers ---------------------------------------------------------------

    def take_fault(self, api: str, path: str, app_id: str | None) -> Response | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.matches(api, path, app_id):
                fault.remaining -= 1
                self.faults = [f for f in self.faults if f.remaining > 0]
                return fail(fault.code, fault.msg, status=fault.http_status)
        return None

    def uuid_lookup(self, app_id: str, scope: str, key: str) -> Message | None:
        # "Requests with the same uuid succeed at most once within 1 hour" (send doc, §6.1).
        hit = self.uuid_seen.get((app_id, scope, key))
        if hit is None:
            return None
        message_id, at = hit
        if self.clock.now() - at > self.settings.uuid_ttl_s:
            del self.uuid_seen[(app_id, scope, key)]
            return None
        return self.messages.get(message_id)

    def uuid_remember(self, app_id: str, scope: str, key: str, message_id: str) -> None:
        self.uuid_seen[(app_id, scope, key)] = (message_id, self.clock.now())

    # -- views ---------------------------------------------------------------------------

    def card_of(self, message: Message) -> dict[str, Any] | None:
        if message.msg_type != "interactive":
            return None
        content = render.parse_content(message.content)
        data = content.get("data")
        if content.get("type") == "card" and isinstance(data, dict):
            card = self.cards.get(str(data.get("card_id", "")))
            return card.data if card is not None else None
        return content

    def message_text(self, message: Message) -> str:
        names = {m.key: m.name for m in message.mentions}
        content = render.parse_content(message.content)
        if message.msg_type == "text":
            return render.text_of_text(content, names)
        if message.msg_type == "post":
            return render.text_of_post(content, names)
        if message.msg_type == "interactive":
            text = render.text_of_card(self.card_of(message))
            return render.resolve_at_tags(text, {a.bot_open_id: a.name for a in self.apps.values()})
        if message.msg_type in ("file", "media"):
            label = "file" if message.msg_type == "file" else "video"
            return f"[{label}] {content.get('file_name', '')}".strip()
        return f"[{message.msg_type}]"

    def message_resources(self, message: Message) -> list[dict[str, Any]]:
        """The stored resources a message names (bytes at /_sandbox/api/resources/{key})."""
        found = []
        content = render.parse_content(message.content)
        for key, kind in keys_in_content(message.msg_type, content):
            resource = self.resources.get(key)
            view: dict[str, Any] = {"key": key, "type": kind, "stored": resource is not None}
            if resource is not None:
                view.update(resource.public())
            found.append(view)
        return found

    def sent_mentions(self, message: Message, card: object) -> list[dict[str, Any]]:
        """The bots a bot's own message mentions (`<at>` tags in its text or card)."""
        if message.sender_type != "app":
            return []
        raw = message.content + (json.dumps(card, ensure_ascii=False) if card else "")
        bots = {a.bot_open_id: a for a in self.apps.values()}
        found = {bots[i].app_id: bots[i] for i in render.at_ids(raw) if i in bots}
        return [
            {"key": "", "name": a.name, "user_id": None, "app_id": a.app_id} for a in found.values()
        ]

    def message_view(self, message: Message) -> dict[str, Any]:
        if message.sender_type == "app":
            sender = {"id": message.sender_id, "id_type": "app_id", "sender_type": "app"}
            sender_name = self.apps[message.sender_id].name
        else:
            sender = {"id": message.sender_id, "id_type": "user_id", "sender_type": "user"}
            sender_name = self.users[message.sender_id].name
        card = self.card_of(message)
        content = render.parse_content(message.content)
        card_id = content.get("data", {}).get("card_id") if content.get("type") == "card" else None
        return {
            "message_id": message.message_id,
            "chat_id": message.chat_id,
            "sender": {**sender, "name": sender_name},
            "msg_type": message.msg_type,
            "text": self.message_text(message),
            "content": message.content,
            "parent_id": message.parent_id,
            "root_id": message.root_id,
            "thread_id": message.thread_id,
            "edits": message.edits,
            "resources": self.message_resources(message),
            "card": card,
            "card_id": card_id,
            "streaming": self.cards[card_id].streaming if card_id in self.cards else False,
            "mentions": [
                {"key": m.key, "name": m.name, "user_id": m.user_id, "app_id": m.app_id}
                for m in message.mentions
            ]
            or self.sent_mentions(message, card),
            "reactions": [
                {
                    "reaction_id": r.reaction_id,
                    "emoji_type": r.emoji_type,
                    "operator_type": r.operator_type,
                }
                for r in message.reactions
            ],
            "create_time": int(message.create_time * 1000),
            "update_time": int(message.update_time * 1000),
        }

"""Names of Feishu users and chats, read from Feishu once and kept for a while.

A person is "Ada Lovelace", not `ou_…`, and a chat is "Launch room", not "Group chat": the
contact API (scope `contact:user.base:readonly`) gives a user's name by open_id and
`im.v1.chat.get` (scope `im:chat:readonly`) a chat's. Names are cosmetic: a failed read never
fails a message. A missing scope is remembered per bot, so its Integrations tab can say which
permission to add, and the call is not repeated for every message meanwhile.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import FeishuUserBinding, Integration
from rudder.feishu.errors import FeishuError
from rudder.services import Services

log = logging.getLogger(__name__)

ACCESS_DENIED = 99991672
USER_SCOPE = "contact:user.base:readonly"
CHAT_SCOPE = "im:chat:readonly"
MESSAGE_SCOPE = "im:message"
KEEP_S = 3600.0  # names change rarely; an hour-old name is fine
RETRY_MISSING_S = 600.0  # after "no permission", ask again in ten minutes (scopes get added)
MAX_ENTRIES = 50_000


@dataclass
class NameBook:
    _names: dict[tuple[str, str], tuple[str | None, float]] = field(default_factory=dict)
    # integration id → scope → when it was found missing (monotonic seconds)
    missing: dict[str, dict[str, float]] = field(default_factory=dict)

    def cached(self, integration_id: str, key: str) -> tuple[bool, str | None]:
        hit = self._names.get((integration_id, key))
        if hit is None or hit[1] < time.monotonic():
            return False, None
        return True, hit[0]

    def keep(self, integration_id: str, key: str, name: str | None, ttl: float = KEEP_S) -> None:
        if len(self._names) >= MAX_ENTRIES:
            self._names.clear()  # a crude bound; names are cheap to read again
        self._names[(integration_id, key)] = (name, time.monotonic() + ttl)

    def scope_missing(self, integration_id: str, scope: str) -> bool:
        since = self.missing.get(integration_id, {}).get(scope)
        return since is not None and time.monotonic() - since < RETRY_MISSING_S

    def missing_scopes(self, integration_id: str) -> list[str]:
        return sorted(
            s for s in self.missing.get(integration_id, {}) if self.scope_missing(integration_id, s)
        )


def book(services: Services) -> NameBook:
    found = services.components.names
    if found is None:
        found = services.components.names = NameBook()
    return found


async def _read(
    services: Services,
    integration: Integration,
    key: str,
    scope: str,
    path: str,
    params: dict[str, str],
) -> dict[str, object] | None:
    names = book(services)
    if names.scope_missing(integration.id, scope):
        return None
    from rudder.feishu.bots import bot_for

    try:
        bot = await bot_for(services, integration.id)
        body = await bot.call("GET", path, params=params)
    except FeishuError as exc:
        if exc.code == ACCESS_DENIED:
            names.missing.setdefault(integration.id, {})[scope] = time.monotonic()
            log.warning(
                "bot %s lacks the %s permission: names are not shown until it is added",
                integration.app_id,
                scope,
            )
        else:
            log.info("could not read %s: %s", key, exc)
        names.keep(integration.id, key, None, ttl=RETRY_MISSING_S)
        return None
    except Exception as exc:  # the name is cosmetic; never fail a message over it
        log.info("could not read %s: %s", key, exc)
        return None
    names.missing.get(integration.id, {}).pop(scope, None)
    data = body.get("data")
    return data if isinstance(data, dict) else None


async def user_name(
    services: Services, integration: Integration, open_id: str | None
) -> str | None:
    """The Feishu user's name, or None when it can't be read."""
    if not open_id:
        return None
    names = book(services)
    hit, name = names.cached(integration.id, open_id)
    if hit:
        return name
    data = await _read(
        services,
        integration,
        open_id,
        USER_SCOPE,
        f"/open-apis/contact/v3/users/{open_id}",
        {"user_id_type": "open_id"},
    )
    user = data.get("user") if data else None
    found = user.get("name") if isinstance(user, dict) else None
    name = found if isinstance(found, str) and found.strip() else None
    if data is not None:
        names.keep(integration.id, open_id, name)
    return name


async def chat_name(services: Services, integration: Integration, chat_id: str) -> str | None:
    """A group chat's name, or None when it can't be read (p2p chats have none)."""
    names = book(services)
    hit, name = names.cached(integration.id, chat_id)
    if hit:
        return name
    data = await _read(
        services, integration, chat_id, CHAT_SCOPE, f"/open-apis/im/v1/chats/{chat_id}", {}
    )
    found = data.get("name") if data else None
    name = found if isinstance(found, str) and found.strip() else None
    if data is not None:
        names.keep(integration.id, chat_id, name)
    return name


async def message_text(services: Services, integration: Integration, message_id: str) -> str | None:
    """A text message's text (a topic's first message, to name the topic), or None."""
    names = book(services)
    key = "msg:" + message_id
    hit, text = names.cached(integration.id, key)
    if hit:
        return text
    data = await _read(
        services, integration, key, MESSAGE_SCOPE, f"/open-apis/im/v1/messages/{message_id}", {}
    )
    items = data.get("items") if data else None
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    body = first.get("body") if isinstance(first.get("body"), dict) else {}
    found: str | None = None
    try:
        content = json.loads(str(body.get("content") or "{}")) if body else {}
        value = content.get("text") if isinstance(content, dict) else None
        found = value if isinstance(value, str) and value.strip() else None
    except ValueError:
        found = None
    if data is not None:
        names.keep(integration.id, key, found)
    return found


async def display_names(
    session: AsyncSession, integration_id: str, open_ids: set[str]
) -> dict[str, str]:
    """The Feishu names kept on the bindings of these senders (open_id → name)."""
    if not open_ids:
        return {}
    rows = await session.execute(
        select(FeishuUserBinding.open_id, FeishuUserBinding.display_name).where(
            FeishuUserBinding.integration_id == integration_id,
            FeishuUserBinding.open_id.in_(open_ids),
            FeishuUserBinding.display_name.is_not(None),
        )
    )
    return {open_id: name for open_id, name in rows.all() if name}

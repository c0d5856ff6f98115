"""A small typed async client of the Feishu / Lark OpenAPI (one bot = one `BotClient`).

Why our own and not lark-oapi: the SDK fetches tokens synchronously even in async calls, opens
a fresh HTTP client per call and keeps a process-global token cache keyed by app id only
(reference §9.4); Rudder holds many bots in one event loop over one pooled `httpx.AsyncClient`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from rudder.feishu import pacing
from rudder.feishu.errors import FeishuError, FeishuTransportError
from rudder.feishu.regions import HostKind, Region, endpoint

# A tenant token lives 2 h; Feishu hands out a new one only when < 30 min remain (reference §3.1),
# so refreshing at that point never races the old token's expiry.
TOKEN_REFRESH_MARGIN_S = 30 * 60
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True, slots=True)
class BotInfo:
    open_id: str
    app_name: str
    activate_status: int | None = None
    avatar_url: str | None = None


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float  # monotonic


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("x-ogw-ratelimit-reset")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _decode(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FeishuTransportError(
            f"non-JSON answer (HTTP {response.status_code}) from {path}", path=path
        ) from None
    if not isinstance(body, dict):
        raise FeishuTransportError(f"unexpected answer from {path}", path=path)
    code = body.get("code", 0)
    if not isinstance(code, int):
        code = -1
    if code != 0 or response.status_code >= 400:
        raise FeishuError(
            code if code != 0 else -1,
            str(body.get("msg") or body.get("error") or f"HTTP {response.status_code}"),
            http_status=response.status_code,
            retry_after_s=_retry_after(response),
            path=path,
        )
    return body


class BotClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        region: Region,
        app_id: str,
        app_secret: str,
        *,
        base_url_override: str | None = None,
    ) -> None:
        self.http = http
        self.region = region
        self.app_id = app_id
        self._app_secret = app_secret
        self.open = endpoint(region, HostKind.OPEN, base_url_override)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()

    # -- tokens --------------------------------------------------------------------------------

    async def tenant_token(self, *, force: bool = False) -> str:
        async with self._token_lock:
            now = time.monotonic()
            if not force and self._token and self._token.expires_at - now > TOKEN_REFRESH_MARGIN_S:
                return self._token.value
            path = "/open-apis/auth/v3/tenant_access_token/internal"
            body = await self._raw(
                "POST", path, json={"app_id": self.app_id, "app_secret": self._app_secret}
            )
            token = body.get("tenant_access_token")
            if not isinstance(token, str) or not token:
                raise FeishuError(-1, "no tenant_access_token in the answer", path=path)
            expire = body.get("expire", 7200)
            self._token = _Token(
                token, now + float(expire if isinstance(expire, int | float) else 7200)
            )
            return token

    def forget_token(self) -> None:
        self._token = None

    # -- requests ------------------------------------------------------------------------------

    async def _raw(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method,
                self.open.url(path),
                json=json,
                params=params,
                headers={**self.open.headers, **(headers or {})},
                timeout=DEFAULT_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise FeishuTransportError(
                f"{type(exc).__name__} calling {path}: {exc}", path=path
            ) from exc
        return _decode(response, path)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        chat: str | None = None,
        paced: bool = True,
    ) -> dict[str, Any]:
        """An authenticated call; an invalid token (99991663) is refreshed once and retried.

        Paced (pacing.py): it first waits for a slot of its API and, for message sends,
        replies and edits, of its `chat`, so the app stays under Feishu's rate limits.
        """
        for attempt in (1, 2):
            if paced:
                await pacing.pacer(self.app_id).take(pacing.api_key(method, path), chat)
            token = await self.tenant_token(force=attempt == 2)
            try:
                return await self._raw(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except FeishuError as exc:
                if exc.token_invalid and attempt == 1:
                    continue
                raise
        raise AssertionError("unreachable")

    # -- bot -----------------------------------------------------------------------------------

    async def bot_info(self) -> BotInfo:
        body = await self.call("GET", "/open-apis/bot/v3/info")
        bot = body.get("bot")  # top-level, not under `data` (reference §3.4)
        if not isinstance(bot, dict) or not bot.get("open_id"):
            raise FeishuError(
                -1, "bot info is missing; is the bot capability enabled?", path="/bot/v3/info"
            )
        return BotInfo(
            open_id=str(bot["open_id"]),
            app_name=str(bot.get("app_name") or ""),
            activate_status=bot.get("activate_status"),
            avatar_url=bot.get("avatar_url"),
        )

    # -- messages ------------------------------------------------------------------------------

    async def send_message(
        self,
        receive_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        receive_id_type: str = "chat_id",
        uuid: str | None = None,
    ) -> dict[str, Any]:
        chat = receive_id
        payload: dict[str, Any] = {
            "receive_id": receive_id,
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),
        }
        if uuid:
            payload["uuid"] = uuid
        body = await self.call(
            "POST",
            "/open-apis/im/v1/messages",
            json=payload,
            params={"receive_id_type": receive_id_type},
            chat=chat,
        )
        return dict(body.get("data") or {})

    async def reply_message(
        self,
        message_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        uuid: str | None = None,
        reply_in_thread: bool = False,
        chat: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),
            "reply_in_thread": reply_in_thread,
        }
        if uuid:
            payload["uuid"] = uuid
        # `chat`: the chat of `message_id`, when known, for its 5-per-second limit.
        body = await self.call(
            "POST", f"/open-apis/im/v1/messages/{message_id}/reply", json=payload, chat=chat
        )
        return dict(body.get("data") or {})

    async def edit_message(self, message_id: str, msg_type: str, content: dict[str, Any]) -> None:
        await self.call(
            "PUT",
            f"/open-apis/im/v1/messages/{message_id}",
            json={"msg_type": msg_type, "content": json.dumps(content, ensure_ascii=False)},
        )

    async def add_reaction(self, message_id: str, emoji_type: str) -> str:
        body = await self.call(
            "POST",
            f"/open-apis/im/v1/messages/{message_id}/reactions",
            json={"reaction_type": {"emoji_type": emoji_type}},
        )
        return str((body.get("data") or {}).get("reaction_id") or "")

    async def own_reaction(self, message_id: str, emoji_type: str) -> str | None:
        """The id of a reaction of this type this app already put on the message, if any (the
        first page of 50 is enough: an app adds one of a kind)."""
        body = await self.call(
            "GET",
            f"/open-apis/im/v1/messages/{message_id}/reactions",
            params={"reaction_type": emoji_type, "page_size": 50},
        )
        for item in (body.get("data") or {}).get("items") or []:
            operator = item.get("operator") or {}
            if (
                operator.get("operator_type") == "app"
                and operator.get("operator_id") == self.app_id
            ):
                return str(item.get("reaction_id") or "") or None
        return None

    async def delete_reaction(self, message_id: str, reaction_id: str) -> None:
        await self.call("DELETE", f"/open-apis/im/v1/messages/{message_id}/reactions/{reaction_id}")

    # -- CardKit -------------------------------------------------------------------------------

    async def create_card(self, card: dict[str, Any]) -> str:
        body = await self.call(
            "POST",
            "/open-apis/cardkit/v1/cards",
            json={"type": "card_json", "data": json.dumps(card, ensure_ascii=False)},
        )
        return str((body.get("data") or {}).get("card_id") or "")

    async def stream_card_text(
        self,
        card_id: str,
        element_id: str,
        text: str,
        sequence: int,
        uuid: str | None = None,
        *,
        skip_if_busy: bool = False,
    ) -> bool:
        """Update a streaming element; with `skip_if_busy`, only if the app has a free slot
        now (False: skipped — a later frame or the final update carries the text)."""
        path = f"/open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}/content"
        if skip_if_busy and not pacing.pacer(self.app_id).try_take(pacing.api_key("PUT", path)):
            return False
        payload: dict[str, Any] = {"content": text, "sequence": sequence}
        if uuid:
            payload["uuid"] = uuid
        await self.call("PUT", path, json=payload, paced=not skip_if_busy)
        return True

    async def card_settings(self, card_id: str, settings: dict[str, Any], sequence: int) -> None:
        await self.call(
            "PATCH",
            f"/open-apis/cardkit/v1/cards/{card_id}/settings",
            json={"settings": json.dumps(settings), "sequence": sequence},
        )

    # -- slash commands --------------------------------------------------------------------------

    async def list_slash_commands(self) -> list[dict[str, Any]]:
        body = await self.call(
            "GET", "/open-apis/application/v7/app_slash_commands", params={"page_size": 50}
        )
        return list((body.get("data") or {}).get("items") or [])

    async def create_slash_command(
        self, command: str, description: str, i18n: dict[str, str]
    ) -> dict[str, Any]:
        body = await self.call(
            "POST",
            "/open-apis/application/v7/app_slash_commands",
            json={
                "command": command,
                "description": {"default_value": description, "i18n": i18n},
            },
        )
        return dict(body.get("data") or {})

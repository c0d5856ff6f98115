"""One-click app registration on the accounts host (reference §2): begin, link, poll.

The flow is the official SDKs' (`lark_oapi.scene.registration`, the Node SDK's `registerApp`):
`begin` always goes to the Feishu accounts host, whichever product was chosen, and so does the
first poll; the first answer naming `tenant_brand: lark` moves polling, once, to the Lark
accounts host, where the secret comes from. The product chosen only decides the verification
link's host (the official CLI does the same). The product the app ends on is the host that
issued its secret.

Errors, including `authorization_pending`, come back as HTTP 400 with a JSON body, so every
answer is parsed whatever its status.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

import httpx

from rudder.feishu.errors import FeishuTransportError, FeishuUnreachable
from rudder.feishu.regions import HostKind, Region, endpoint

PATH = "/oauth/v1/app/registration"
# Registration always begins on the Feishu accounts host (both SDKs' default `domain`).
BEGIN_REGION = Region.FEISHU
SLOW_DOWN_STEP_S = 5
MAX_INTERVAL_S = 60

# What the bot needs, preset on the confirm page (reference §2.4 `addons`).
BOT_SCOPES = [
    "im:message",
    "im:message:send_as_bot",
    "im:message.p2p_msg:readonly",
    "im:message.group_at_msg:readonly",
    "im:message.reactions:write_only",
    # Listing them: a typing indicator resumed after a crash reuses the one already there.
    "im:message.reactions:read",
    "cardkit:card:write",
    "application:app_slash_command:write",
    "application:app_slash_command:read",
    # Names of people and chats (rudder.feishu.names): shown instead of raw ids.
    "contact:user.base:readonly",
    "im:chat:readonly",
]
# Group context (group_context.py): reading a group's message history needs "read all
# messages in groups" besides im:message (message.list doc). Asked for only when the agent
# opted in: it is a sensitive permission, and with it Feishu delivers every group message.
GROUP_CONTEXT_SCOPES = ["im:message.group_msg"]
BOT_EVENTS = [
    "im.message.receive_v1",
    "im.chat.member.bot.added_v1",
    "im.chat.member.bot.deleted_v1",
]
BOT_CALLBACKS = ["card.action.trigger"]


@dataclass(frozen=True, slots=True)
class Begun:
    device_code: str
    user_code: str
    verification_uri_complete: str | None
    interval_s: float
    expires_in_s: int


class PollState(StrEnum):
    PENDING = "pending"
    SLOW_DOWN = "slow_down"
    DENIED = "denied"
    EXPIRED = "expired"
    APPROVED = "approved"
    SWITCH_TO_LARK = "switch_to_lark"  # the answer names a Lark tenant: poll the Lark host now
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class PollResult:
    state: PollState
    client_id: str | None = None
    client_secret: str | None = None
    tenant_brand: str | None = None
    owner_open_id: str | None = None
    detail: str = ""


def encode_addons(addons: dict[str, Any]) -> str:
    """base64url(gzip(JSON)) without padding, as the confirm page expects."""
    raw = gzip.compress(json.dumps(addons, separators=(",", ":")).encode())
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bot_addons(*, group_context: bool = False) -> dict[str, Any]:
    scopes = BOT_SCOPES + (GROUP_CONTEXT_SCOPES if group_context else [])
    return {
        "scopes": {"tenant": scopes},
        "events": {"items": {"tenant": BOT_EVENTS}},
        # Presses on the reply card's Stop and New conversation buttons (card_actions).
        "callbacks": {"items": BOT_CALLBACKS},
    }


def verification_url(
    region: Region,
    user_code: str,
    *,
    name: str,
    desc: str,
    base_url_override: str | None = None,
    group_context: bool = False,
) -> str:
    # The official CLI builds /page/cli on the open host; the returned /page/launcher link has been
    # reported to show "link expired" for these codes (reference §2.3).
    open_ep = endpoint(region, HostKind.OPEN, base_url_override)
    query = urlencode(
        {
            "user_code": user_code,
            "from": "rudder",
            "name": name,
            "desc": desc,
            "addons": encode_addons(bot_addons(group_context=group_context)),
            "createOnly": "true",
        }
    )
    return f"{open_ep.public_base_url}/page/cli?{query}"


async def _post(
    http: httpx.AsyncClient, region: Region, form: dict[str, str], base_url_override: str | None
) -> tuple[int, dict[str, Any]]:
    ep = endpoint(region, HostKind.ACCOUNTS, base_url_override)
    try:
        response = await http.post(ep.url(PATH), data=form, headers=ep.headers, timeout=15.0)
        body = response.json()
    except httpx.TransportError as exc:
        raise FeishuUnreachable(
            f"app registration on {region.label} failed: {exc or type(exc).__name__}", path=PATH
        ) from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise FeishuTransportError(
            f"app registration on {region.label} failed: {exc}", path=PATH
        ) from exc
    if not isinstance(body, dict):
        raise FeishuTransportError("unexpected app registration answer", path=PATH)
    return response.status_code, body


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return default


async def begin(http: httpx.AsyncClient, base_url_override: str | None = None) -> Begun:
    """`action=begin` on the Feishu accounts host, as the SDKs do for either product."""
    region = BEGIN_REGION
    status, body = await _post(
        http,
        region,
        {
            "action": "begin",
            "archetype": "PersonalAgent",
            "auth_method": "client_secret",
            "request_user_info": "open_id",
        },
        base_url_override,
    )
    if status >= 400 or "device_code" not in body:
        raise FeishuTransportError(
            f"{region.label} refused to start an app registration: "
            f"{body.get('error_description') or body.get('error') or status}",
            path=PATH,
        )
    # Clients disagree on the field name (expires_in vs expire_in); accept both (reference §2.3).
    expires = body.get("expires_in", body.get("expire_in", 600))
    return Begun(
        device_code=str(body["device_code"]),
        user_code=str(body["user_code"]),
        verification_uri_complete=body.get("verification_uri_complete"),
        # Honour the server's interval exactly (it may be sub-second on a test platform).
        interval_s=_seconds(body.get("interval"), 5.0),
        expires_in_s=int(expires),
    )


async def poll(
    http: httpx.AsyncClient,
    region: Region,
    device_code: str,
    base_url_override: str | None = None,
    *,
    switched: bool = False,
) -> PollResult:
    """One `action=poll` on `region`'s accounts host; `switched` once polling moved to Lark."""
    _, body = await _post(
        http, region, {"action": "poll", "device_code": device_code}, base_url_override
    )
    user_info = body.get("user_info")
    user_info = user_info if isinstance(user_info, dict) else {}
    brand = user_info.get("tenant_brand")
    owner = user_info.get("open_id")
    # The SDKs switch once, before looking at anything else in the answer (node `startPolling`;
    # py `_handle_poll_response` does the same whenever the secret is missing).
    if brand == "lark" and not switched and region is not Region.LARK:
        return PollResult(
            PollState.SWITCH_TO_LARK,
            client_id=str(body["client_id"]) if body.get("client_id") else None,
            tenant_brand="lark",
        )
    if body.get("client_id") and body.get("client_secret"):
        if brand and brand != region.value:
            # The issuing host is authoritative; a contradicting tenant brand is a protocol error.
            return PollResult(
                PollState.ERROR,
                detail=f"the {region.label} accounts host issued an app of a {brand} tenant",
            )
        return PollResult(
            PollState.APPROVED,
            client_id=str(body["client_id"]),
            client_secret=str(body["client_secret"]),
            tenant_brand=str(brand) if brand else region.value,
            owner_open_id=str(owner) if owner else None,
        )
    error = body.get("error")
    if error:
        detail = str(body.get("error_description") or error)
        state = {
            "authorization_pending": PollState.PENDING,
            "slow_down": PollState.SLOW_DOWN,
            "access_denied": PollState.DENIED,
            "expired_token": PollState.EXPIRED,
            "invalid_grant": PollState.EXPIRED,
        }.get(str(error), PollState.ERROR)
        return PollResult(state, detail=detail)
    if body.get("client_id"):
        # No secret and no error: keep polling until the code expires (node SDK, official CLI).
        return PollResult(PollState.PENDING, detail="answered without an app secret")
    return PollResult(PollState.ERROR, detail="unexpected registration answer")

"""Forged, replayed, foreign and malformed webhook deliveries, through the real route.

Every refusal must carry the right status, leave its reason in the log, and record nothing:
`inbound_events` is the pipeline's front door, so an empty table means nothing got in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from rudder.db.models import InboundEvent
from rudder.feishu.inbound import pipeline
from rudder.feishu.webhook_codec import MAX_BODY_BYTES, encrypt, sign
from rudder.texts import HTTP_BODY_TOO_LARGE
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent
from tests.hostile.conftest import count

ROUTE_LOGGER = "rudder.api.routes_feishu_inbound"
LIMITS_LOGGER = "rudder.http_limits"  # a body over its limit never reaches the route


@dataclass
class Hook:
    rig: FeishuRig
    app: dict[str, Any]  # the sandbox app this endpoint belongs to
    url: str

    def event(self, event_id: str, **header: Any) -> dict[str, Any]:
        return {
            "schema": "2.0",
            "header": {
                "event_id": event_id,
                "event_type": "im.chat.member.bot.added_v1",
                "app_id": self.app["app_id"],
                "create_time": "1",
                "token": self.app["verification_token"],
                **header,
            },
            "event": {"chat_id": "oc_hostile"},
        }

    def signed(
        self,
        body: dict[str, Any],
        *,
        key: str | None = None,
        sign_key: str | None = None,
        ts: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """Encrypt with ``key`` and sign with ``sign_key`` (both default to this app's key)."""
        key = key or self.app["encrypt_key"]
        raw = json.dumps({"encrypt": encrypt(key, json.dumps(body).encode())}).encode()
        timestamp = str(int(time.time()) if ts is None else ts)
        return raw, {
            "X-Lark-Request-Timestamp": timestamp,
            "X-Lark-Request-Nonce": "n0nce",
            "X-Lark-Signature": sign(timestamp, "n0nce", sign_key or key, raw),
            "content-type": "application/json",
        }

    async def recorded(self, *, originals_only: bool = False) -> int:
        await pipeline(self.rig.services).wait_idle()
        query = select(func.count()).select_from(InboundEvent)
        if originals_only:
            # A re-delivery is traced on a row of its own with outcome "duplicate".
            query = query.where(InboundEvent.outcome != "duplicate")
        async with self.rig.services.sessions() as session:
            return int(await session.scalar(query) or 0)


async def _hook(rig: FeishuRig) -> Hook:
    _, agent = await default_org_and_agent(rig.client)
    app = await rig.control("POST", "/apps", json={"name": "Hook", "brand": "feishu"})
    r = await rig.client.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={
            "region": "feishu",
            "app_id": app["app_id"],
            "app_secret": app["app_secret"],
            "transport": "webhook",
            "encrypt_key": app["encrypt_key"],
            "verification_token": app["verification_token"],
        },
    )
    assert r.status_code == 200, r.text
    return Hook(rig, app, f"/api/integrations/feishu/{r.json()['id']}/webhook")


Forgery = Callable[[Hook, dict[str, Any]], tuple[bytes, dict[str, str]]]


def _bad_signature(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw, headers = h.signed(h.event("f-sig"))
    return raw, {**headers, "X-Lark-Signature": "0" * 64}


def _missing_headers(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw, _ = h.signed(h.event("f-headers"))
    return raw, {"content-type": "application/json"}


def _wrong_token(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return h.signed(h.event("f-token", token="not-the-token"))


def _replayed_late(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    # Correctly signed, but sent a day ago: beyond the route's 8 h window.
    return h.signed(h.event("f-old"), ts=int(time.time()) - 86_400)


def _from_the_future(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return h.signed(h.event("f-future"), ts=int(time.time()) + 86_400)


def _encrypted_with_another_key(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return h.signed(h.event("f-key"), key="someone-elses-key")


def _another_key_signed_with_ours(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    # Impossible without our key, but proves a signed body that doesn't decrypt is not recorded.
    return h.signed(h.event("f-key2"), key="someone-elses-key", sign_key=h.app["encrypt_key"])


def _another_apps_event(h: Hook, other: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = h.event("f-other", app_id=other["app_id"], token=other["verification_token"])
    return h.signed(body, key=other["encrypt_key"])


def _oversized(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return b"{" + b" " * MAX_BODY_BYTES + b"}", {"content-type": "application/json"}


def _truncated(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw, headers = h.signed(h.event("f-cut"))
    return raw[: len(raw) // 2], headers


def _deep_json(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return b"[" * 200_000 + b"]" * 200_000, {"content-type": "application/json"}


def _plaintext_unsigned(h: Hook, _: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    # With an Encrypt Key configured, a plaintext event is a forgery: Feishu would encrypt it.
    return json.dumps(h.event("f-plain")).encode(), {"content-type": "application/json"}


FORGERIES: list[tuple[str, Forgery, int, str]] = [
    ("bad signature", _bad_signature, 401, "signature mismatch"),
    ("missing headers", _missing_headers, 401, "unsigned request"),
    ("wrong verification token", _wrong_token, 401, "verification token mismatch"),
    ("replayed a day later", _replayed_late, 401, "s away"),
    ("timestamp a day ahead", _from_the_future, 401, "s away"),
    ("encrypted with another key", _encrypted_with_another_key, 401, "signature mismatch"),
    ("another key, our signature", _another_key_signed_with_ours, 400, "does not decrypt"),
    ("another app's event", _another_apps_event, 401, "signature mismatch"),
    ("truncated body", _truncated, 400, "not a JSON object"),
    ("deeply nested JSON", _deep_json, 400, "not a JSON object"),
    ("plaintext, unsigned", _plaintext_unsigned, 401, "unsigned request"),
]


@pytest.mark.parametrize(
    ("forge", "status", "reason"),
    [pytest.param(f, s, r, id=name) for name, f, s, r in FORGERIES],
)
async def test_forgery_is_refused_logged_and_never_recorded(
    rig: FeishuRig,
    caplog: pytest.LogCaptureFixture,
    forge: Forgery,
    status: int,
    reason: str,
) -> None:
    hook = await _hook(rig)
    other = await rig.control("POST", "/apps", json={"name": "Other", "brand": "feishu"})
    raw, headers = forge(hook, other)

    with caplog.at_level(logging.INFO, logger=ROUTE_LOGGER):
        r = await rig.client.post(hook.url, content=raw, headers=headers)

    count("webhook forgeries tried")
    assert r.status_code == status, r.text
    assert r.json()["error"] == "refused"
    refusals = [rec.getMessage() for rec in caplog.records if rec.name == ROUTE_LOGGER]
    assert any(reason in m and f"({status})" in m for m in refusals), refusals
    assert await hook.recorded() == 0
    count("webhook forgeries refused")


async def test_an_oversized_body_is_refused_before_the_route_reads_it(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture
) -> None:
    hook = await _hook(rig)
    other = await rig.control("POST", "/apps", json={"name": "Other", "brand": "feishu"})
    raw, headers = _oversized(hook, other)
    with caplog.at_level(logging.INFO):
        r = await rig.client.post(hook.url, content=raw, headers=headers)
    count("webhook forgeries tried")
    assert r.status_code == 413, r.text
    assert r.json() == {
        "error": "payload_too_large",
        "detail": HTTP_BODY_TOO_LARGE.format(limit="1 MiB"),
    }
    refusals = [rec.getMessage() for rec in caplog.records if rec.name == LIMITS_LOGGER]
    assert any("(413)" in m and "1 MiB" in m for m in refusals), refusals
    assert await hook.recorded() == 0
    count("webhook forgeries refused")


async def test_unknown_endpoint_is_404_and_logged(
    rig: FeishuRig, caplog: pytest.LogCaptureFixture
) -> None:
    hook = await _hook(rig)
    raw, headers = hook.signed(hook.event("f-nowhere"))
    with caplog.at_level(logging.INFO, logger=ROUTE_LOGGER):
        r = await rig.client.post(
            "/api/integrations/feishu/itg_nope/webhook", content=raw, headers=headers
        )
    count("webhook forgeries tried")
    assert r.status_code == 404
    assert any("unknown integration" in rec.getMessage() for rec in caplog.records)
    assert await hook.recorded() == 0
    count("webhook forgeries refused")


async def test_a_valid_delivery_replayed_in_the_window_is_recorded_once(rig: FeishuRig) -> None:
    hook = await _hook(rig)
    raw, headers = hook.signed(hook.event("once"))
    for _ in range(3):
        r = await rig.client.post(hook.url, content=raw, headers=headers)
        assert r.status_code == 200, r.text
    count("webhook replays tried", 2)
    assert await hook.recorded(originals_only=True) == 1


async def test_event_naming_another_app_under_our_signature_is_not_recorded(
    rig: FeishuRig,
) -> None:
    hook = await _hook(rig)
    raw, headers = hook.signed(hook.event("f-mislabelled", app_id="cli_someoneelse"))
    r = await rig.client.post(hook.url, content=raw, headers=headers)
    assert r.status_code in (400, 401) and await hook.recorded() == 0

"""The webhook transport: verification, signature, token, encryption — into the same inbox."""

from __future__ import annotations

import json
import time
from typing import Any

from rudder.feishu.inbound import pipeline
from rudder.feishu.webhook_codec import encrypt, sign
from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent


async def _webhook_bot(rig: FeishuRig) -> tuple[dict[str, Any], dict[str, Any], str]:
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
    return agent, app, f"/api/integrations/feishu/{r.json()['id']}/webhook"


def _signed(
    app: dict[str, Any], body: dict[str, Any], ts: str | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps({"encrypt": encrypt(app["encrypt_key"], json.dumps(body).encode())}).encode()
    timestamp, nonce = ts or str(int(time.time())), "n0nce"
    return raw, {
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": sign(timestamp, nonce, app["encrypt_key"], raw),
        "content-type": "application/json",
    }


def _event(app: dict[str, Any], event_id: str, token: str | None = None) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.chat.member.bot.added_v1",
            "app_id": app["app_id"],
            "create_time": "1",
            "token": token or app["verification_token"],
        },
        "event": {"chat_id": "oc_1"},
    }


async def test_url_verification_and_signed_event(rig: FeishuRig) -> None:
    agent, app, url = await _webhook_bot(rig)
    raw, headers = _signed(
        app, {"challenge": "abc", "token": app["verification_token"], "type": "url_verification"}
    )
    r = await rig.client.post(url, content=raw, headers=headers)
    assert r.status_code == 200 and r.json() == {"challenge": "abc"}

    raw, headers = _signed(app, _event(app, "wh-1"))
    r = await rig.client.post(url, content=raw, headers=headers)
    assert r.status_code == 200
    await pipeline(rig.services).wait_idle()
    rows = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu/activity")).json()
    assert [r["event_id"] for r in rows] == ["wh-1"]


async def test_forgeries_are_refused_and_never_recorded(rig: FeishuRig) -> None:
    agent, app, url = await _webhook_bot(rig)
    raw, headers = _signed(app, _event(app, "wh-bad"))
    tampered = {**headers, "X-Lark-Signature": "0" * 64}
    assert (await rig.client.post(url, content=raw, headers=tampered)).status_code == 401
    no_headers = await rig.client.post(
        url, content=raw, headers={"content-type": "application/json"}
    )
    assert no_headers.status_code == 401
    raw2, headers2 = _signed(app, _event(app, "wh-token", token="wrong"))
    assert (await rig.client.post(url, content=raw2, headers=headers2)).status_code == 401
    old_raw, old_headers = _signed(app, _event(app, "wh-old"), ts=str(int(time.time()) - 86400))
    assert (await rig.client.post(url, content=old_raw, headers=old_headers)).status_code == 401
    big = await rig.client.post(url, content=b"x" * (1024 * 1024 + 1))
    assert big.status_code == 413
    assert (
        await rig.client.post("/api/integrations/feishu/nope/webhook", content=raw, headers=headers)
    ).status_code == 404
    await pipeline(rig.services).wait_idle()
    rows = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu/activity")).json()
    assert rows == []

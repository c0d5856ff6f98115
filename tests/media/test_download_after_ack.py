"""Resources are downloaded after the event is acked, never before (docs/media.md, inbound 1):
the sandbox numbers acks and downloads on one counter, and for each download records whether
the event carrying its message had been acked. Over the long connection and the webhook."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from typing import Any

import pytest

from tests.conftest import FeishuRig
from tests.helpers import default_org_and_agent, wait_for
from tests.media.media_agent import PNG
from tests.media.support import AGENT
from tests.routing.dialogue import dm, open_id_of, person


async def _bound_dm(rig: FeishuRig, transport: str) -> tuple[dict[str, Any], str, str]:
    """A process agent (media_agent.py) with a bot on `transport`, and a DM with a linked person."""
    org, _ = await default_org_and_agent(rig.client)
    agent = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/agents",
            json={
                "name": "Lens",
                "runtime_type": "process",
                "runtime_config": {"command": sys.executable, "args": [str(AGENT)]},
            },
        )
    ).json()
    app = await rig.control("POST", "/apps", json={"name": "Lens", "brand": "feishu"})
    body: dict[str, Any] = {
        "region": "feishu",
        "app_id": app["app_id"],
        "app_secret": app["app_secret"],
    }
    if transport == "webhook":
        body.update(
            transport="webhook",
            encrypt_key=app["encrypt_key"],
            verification_token=app["verification_token"],
        )
    r = await rig.client.post(f"/api/agents/{agent['id']}/integrations/feishu/manual", json=body)
    assert r.status_code == 200, r.text
    integration_id = r.json()["id"]
    if transport == "webhook":
        await rig.control(
            "PATCH",
            f"/apps/{app['app_id']}",
            json={
                "event_delivery": "webhook",
                "webhook_url": f"{rig.client.base_url}/api/integrations/feishu/"
                f"{integration_id}/webhook",
            },
        )
    else:

        async def live() -> bool:
            state = (await rig.client.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
            return bool(state["connection"] and state["connection"]["status"] == "connected")

        await wait_for(live, timeout=10)
    ada = await person(rig, "Ada")
    member = (
        await rig.client.post(
            f"/api/orgs/{org['id']}/members",
            json={"email": "ada@example.com", "name": "Ada", "role": "member"},
        )
    ).json()
    bound = await rig.client.post(
        f"/api/orgs/{org['id']}/feishu-user-bindings",
        json={
            "integration_id": integration_id,
            "open_id": await open_id_of(rig, ada, app),
            "user_id": member["user_id"],
        },
    )
    assert bound.status_code == 200, bound.text
    return app, ada, await dm(rig, ada, app)


@pytest.mark.parametrize("transport", ["long_connection", "webhook"])
async def test_every_download_comes_after_the_ack_of_its_event(
    served: FeishuRig, transport: str
) -> None:
    rig = served
    app, ada, chat_id = await _bound_dm(rig, transport)
    image = PNG + os.urandom(500)
    pdf = b"%PDF-1.7\n" + os.urandom(3000)
    sent = []
    for message_type, data, extra in (
        ("image", image, {}),
        ("file", pdf, {"file_name": "a.pdf"}),
    ):
        answer = await rig.control(
            "POST",
            f"/chats/{chat_id}/messages",
            json={
                "user_id": ada,
                "message_type": message_type,
                "data_base64": base64.b64encode(data).decode(),
                **extra,
            },
        )
        sent.append((answer["message_id"], hashlib.sha256(data).hexdigest()))

    async def answered() -> bool:
        items = (await rig.control("GET", f"/chats/{chat_id}/messages"))["items"]
        texts = " ".join(str(m.get("text")) for m in items if m["sender"]["sender_type"] == "app")
        return all(digest in texts for _, digest in sent)

    await wait_for(answered, timeout=30)
    deliveries = (await rig.control("GET", f"/deliveries?app_id={app['app_id']}&include_event=1"))[
        "items"
    ]
    for message_id, _ in sent:
        (got,) = (await rig.control("GET", f"/downloads?message_id={message_id}"))["items"]
        (delivery,) = [
            d
            for d in deliveries
            if d["event"].get("event", {}).get("message", {}).get("message_id") == message_id
        ]
        assert delivery["history"][-1]["transport"] == transport
        assert got["event_acked"], got
        assert got["ack_order"] == delivery["ack_order"]
        assert got["order"] > delivery["ack_order"]
        assert got["at"] >= delivery["acked_at"]


async def test_the_sandbox_sees_a_download_before_the_ack(rig: FeishuRig) -> None:
    """The check itself: a download of a message whose event is not acked (no receiver is
    connected) is recorded as such, so the test above would catch a download before the ack."""
    app = await rig.control("POST", "/apps", json={"name": "Nobody", "brand": "feishu"})
    ada = await person(rig, "Ada")
    chat_id = await dm(rig, ada, app)
    posted = await rig.control(
        "POST",
        f"/chats/{chat_id}/messages",
        json={
            "user_id": ada,
            "message_type": "image",
            "data_base64": base64.b64encode(PNG).decode(),
        },
    )
    token = (
        await rig.sb.post(
            "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": app["app_id"], "app_secret": app["app_secret"]},
        )
    ).json()["tenant_access_token"]
    key = json.loads(posted["content"])["image_key"]
    answer = await rig.sb.get(
        f"/open-apis/im/v1/messages/{posted['message_id']}/resources/{key}",
        params={"type": "image"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200 and answer.content == PNG
    (got,) = (await rig.control("GET", f"/downloads?message_id={posted['message_id']}"))["items"]
    assert got["event_acked"] is False and got["ack_order"] is None

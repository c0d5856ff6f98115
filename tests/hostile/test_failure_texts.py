"""Hole 13 of issue 15: a Feishu user never sees Rudder's internals when a reply fails.

Against a running Rudder process and the sandbox: an agent fails the way a broken deployment
does — its error carries a SQL statement with parameters, a stack trace and an internal host
name and address. The Feishu user gets a short generic line with a reference; the run's page
(`GET /api/runs/{id}`) keeps the whole error, and the reference is the start of the run's id.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from rudder import texts
from rudder.config import Settings
from rudder.sandbox import SandboxServer
from tests.helpers import wait_for
from tests.listen.test_crash import rudder_process

INTERNALS = (
    "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection to server at "
    '"db-primary.corp.internal" (10.20.3.7), port 5432 failed\n'
    "[SQL: UPDATE conversations SET runtime_session_id=%(id)s WHERE conversations.id = %(pk)s]\n"
    "[parameters: {'id': 'sess-secret-1', 'pk': 'c0ffee'}]\n"
    'Traceback (most recent call last):\n  File "/srv/rudder/agent.py", line 12, in <module>'
)
LEAKS = ("db-primary.corp.internal", "10.20.3.7", "[SQL:", "UPDATE conversations", "Traceback",
         "sess-secret-1", "/srv/rudder")  # fmt: skip


async def test_a_failed_reply_shows_no_internals(settings: Settings) -> None:
    script = f"import sys; sys.stdout.write('Let me check.'); sys.stderr.write({INTERNALS!r}); sys.exit(1)"
    async with (
        SandboxServer() as sandbox,
        httpx.AsyncClient(base_url=sandbox.url + "/_sandbox/api", timeout=10) as sb,
    ):
        await sb.patch("/settings", json={"ws_reconnect_nonce": 0})
        app = (await sb.post("/apps", json={"name": "Leaky", "brand": "feishu"})).json()
        ada = (await sb.post("/users", json={"name": "Ada"})).json()["user_id"]
        chat = (
            await sb.post(
                "/chats", json={"type": "p2p", "user_ids": [ada], "app_ids": [app["app_id"]]}
            )
        ).json()["chat_id"]
        users = (await sb.get(f"/users?app_id={app['app_id']}")).json()["items"]
        open_id = next(u["open_id"] for u in users if u["user_id"] == ada)
        async with rudder_process(settings, sandbox.url) as (_, rudder):
            org = (await rudder.get("/api/orgs")).json()[0]
            agent = await rudder.post(
                f"/api/orgs/{org['id']}/agents",
                json={
                    "name": "Leaky",
                    "runtime_type": "process",
                    "runtime_config": {"command": sys.executable, "args": ["-c", script]},
                },
            )
            assert agent.is_success, agent.text
            integration = (
                await rudder.post(
                    f"/api/agents/{agent.json()['id']}/integrations/feishu/manual",
                    json={
                        "region": "feishu",
                        "app_id": app["app_id"],
                        "app_secret": app["app_secret"],
                    },
                )
            ).json()
            member = (await rudder.get(f"/api/orgs/{org['id']}/members")).json()[0]
            bound = await rudder.post(
                f"/api/orgs/{org['id']}/feishu-user-bindings",
                json={
                    "integration_id": integration["id"],
                    "open_id": open_id,
                    "user_id": member["user_id"],
                },
            )
            assert bound.status_code == 200, bound.text

            async def connected() -> bool:
                return bool((await sb.get(f"/apps/{app['app_id']}")).json()["connections"])

            await wait_for(connected, timeout=15)
            await sb.post(f"/chats/{chat}/messages", json={"user_id": ada, "text": "status?"})

            async def final() -> dict[str, Any] | None:
                items = (await sb.get(f"/chats/{chat}/messages")).json()["items"]
                bots = [m for m in items if m["sender"]["sender_type"] == "app"]
                done = bots and not bots[0]["streaming"] and "Failed" in bots[0]["text"]
                return bots[0] if done else None

            card = await wait_for(final, timeout=30)
            [run] = (await rudder.get(f"/api/agents/{agent.json()['id']}/runs")).json()
            detail = (await rudder.get(f"/api/runs/{run['id']}")).json()
    seen = str(card["text"])
    for leak in LEAKS:
        assert leak not in seen, leak
    assert seen == "Let me check.\n" + texts.REPLY_FAILED_GENERIC.format(ref=run["id"][:8])
    # The detail is not lost: the run's page has it.
    assert detail["status"] == "failed" and "db-primary.corp.internal" in (detail["error"] or "")

"""SIGKILL while an agent's attachment is being uploaded, then a restart on the same home.

Rudder runs as a real process against a sandbox in this process. The sandbox stores the upload
and holds its answer (the `slow_upload` fault); Rudder is killed while it waits, so it never
learnt the key. The restart resumes the reply: it uploads again and sends the image message,
which arrives exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import httpx
from sqlalchemy import select

from rudder.config import Settings
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import OutboxItem
from rudder.media.send import ATTACHMENT
from rudder.sandbox import SandboxServer
from tests.helpers import wait_for
from tests.listen.test_crash import rudder_process
from tests.media.support import AGENT


async def test_sigkill_mid_upload_sends_the_image_once(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        async with (
            SandboxServer() as sandbox,
            httpx.AsyncClient(base_url=sandbox.url + "/_sandbox/api", timeout=10) as sb,
        ):
            await sb.patch("/settings", json={"ws_reconnect_nonce": 0})
            app = (await sb.post("/apps", json={"name": "Lens", "brand": "feishu"})).json()
            ada = (await sb.post("/users", json={"name": "Ada"})).json()["user_id"]
            chat = (
                await sb.post(
                    "/chats", json={"type": "p2p", "user_ids": [ada], "app_ids": [app["app_id"]]}
                )
            ).json()["chat_id"]
            users = (await sb.get(f"/users?app_id={app['app_id']}")).json()["items"]
            open_id = next(u["open_id"] for u in users if u["user_id"] == ada)
            await sb.post(
                "/faults",
                json={"kind": "slow_upload", "delay_s": 30, "app_id": app["app_id"]},
            )

            async def bot_messages() -> list[dict[str, Any]]:
                items = (await sb.get(f"/chats/{chat}/messages")).json()["items"]
                return [m for m in items if m["sender"]["sender_type"] == "app"]

            async def uploaded() -> list[dict[str, Any]]:
                found = (await sb.get(f"/resources?app_id={app['app_id']}")).json()["items"]
                return list(found)

            async with rudder_process(settings, sandbox.url) as (proc, rudder):
                org = (await rudder.get("/api/orgs")).json()[0]
                agent = (
                    await rudder.post(
                        f"/api/orgs/{org['id']}/agents",
                        json={
                            "name": "Lens",
                            "runtime_type": "process",
                            "runtime_config": {"command": sys.executable, "args": [str(AGENT)]},
                        },
                    )
                ).json()
                integration = (
                    await rudder.post(
                        f"/api/agents/{agent['id']}/integrations/feishu/manual",
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

                await wait_for(connected, timeout=10)
                posted = (
                    await sb.post(
                        f"/chats/{chat}/messages", json={"user_id": ada, "text": "send image"}
                    )
                ).json()
                # The upload has reached Feishu, whose answer is held: kill Rudder now.
                await wait_for(uploaded, timeout=30)
                proc.send_signal(signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 10)

            assert not [m for m in await bot_messages() if m["msg_type"] == "image"]
            async with sessions() as session:
                row = await session.scalar(select(OutboxItem).where(OutboxItem.kind == ATTACHMENT))
            assert row is not None and row.status == "pending" and not row.payload.get("key")

            async with rudder_process(settings, sandbox.url):

                async def sent() -> bool:
                    async with sessions() as session:
                        status = await session.scalar(
                            select(OutboxItem.status).where(OutboxItem.kind == ATTACHMENT)
                        )
                    return status == "sent"

                await wait_for(sent, timeout=60)
                await asyncio.sleep(0.5)
                images = [m for m in await bot_messages() if m["msg_type"] == "image"]

            assert len(images) == 1 and images[0]["parent_id"] == posted["message_id"]
            # The text came before it (the sandbox lists oldest first), once.
            kinds = [m["msg_type"] for m in await bot_messages()]
            assert kinds == ["interactive", "image"], kinds
            # Feishu holds the copy whose answer was lost, unused; nothing shows it.
            assert len(await uploaded()) == 2
    finally:
        await engine.dispose()

"""SIGKILL between recording and acking: the re-push is a duplicate, the message runs once.

Rudder runs as a real process (`python -m rudder start`) against a sandbox in this process. The
test hook RUDDER_TEST_CRASH_AFTER_RECORD=1 makes it kill itself right after the event's commit,
before the ack; the sandbox then re-pushes at 15 s × its clock factor.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from rudder.config import Settings
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import InboundEvent, Message
from rudder.feishu.inbound import CRASH_AFTER_RECORD_ENV
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from rudder.sandbox import SandboxServer
from tests.helpers import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def rudder_process(
    settings: Settings, sandbox_url: str, **extra: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    port = _free_port()
    env = dict(
        os.environ,
        RUDDER_HOME=str(settings.home_dir),
        DATABASE_URL=settings.effective_database_url,
        RUDDER_SECRETS_KEY=settings.secrets_key.get_secret_value() if settings.secrets_key else "",
        RUDDER_FEISHU_BASE_URL=sandbox_url,
        RUDDER_LOG_LEVEL="ERROR",
        **extra,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rudder", "start", "--port", str(port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def healthy() -> bool:
                assert proc.returncode is None, "rudder exited during start-up"
                try:
                    return (await client.get("/api/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(healthy, timeout=20, interval=0.05)
            yield proc, client
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_sigkill_after_record_before_ack(settings: Settings, tmp_path: Path) -> None:
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        async with (
            SandboxServer() as sandbox,
            httpx.AsyncClient(base_url=sandbox.url + "/_sandbox/api", timeout=10) as sb,
        ):
            # Feishu's first re-push comes after 15 s; scaled to 0.3 s and repeated (instead of
            # the ladder's 5 min, 1 h, 6 h), it lands whenever the restarted process is back.
            await sb.patch(
                "/settings",
                json={"ws_reconnect_nonce": 0, "ack_timeout_s": 0.5, "retry_ladder_s": [15] * 100},
            )
            await sb.post("/clock", json={"factor": 0.02})
            app = (await sb.post("/apps", json={"name": "Crashy", "brand": "feishu"})).json()
            ada = (await sb.post("/users", json={"name": "Ada"})).json()["user_id"]
            chat = (
                await sb.post(
                    "/chats", json={"type": "p2p", "user_ids": [ada], "app_ids": [app["app_id"]]}
                )
            ).json()["chat_id"]
            users = (await sb.get(f"/users?app_id={app['app_id']}")).json()["items"]
            open_id = next(u["open_id"] for u in users if u["user_id"] == ada)

            async def connected() -> bool:
                return bool((await sb.get(f"/apps/{app['app_id']}")).json()["connections"])

            env = {CRASH_AFTER_RECORD_ENV: "1"}
            async with rudder_process(settings, sandbox.url, **env) as (proc, rudder):
                org = (await rudder.get("/api/orgs")).json()[0]
                runtime, config = DEFAULT_AGENT_RUNTIME
                agent = (
                    await rudder.post(
                        f"/api/orgs/{org['id']}/agents",
                        json={"name": "Crashy", "runtime_type": runtime, "runtime_config": config},
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
                await wait_for(connected, timeout=10)
                posted = (
                    await sb.post(
                        f"/chats/{chat}/messages", json={"user_id": ada, "text": "survive me"}
                    )
                ).json()
                await asyncio.wait_for(proc.wait(), 10)
                assert proc.returncode == -signal.SIGKILL

            # Recorded before the crash, never acked: the sandbox still owes a re-push.
            async with sessions() as session:
                [row] = (
                    await session.scalars(
                        select(InboundEvent).where(InboundEvent.message_id == posted["message_id"])
                    )
                ).all()
            assert row.outcome == "received"
            [delivery] = (await sb.get(f"/deliveries?app_id={app['app_id']}")).json()["items"]
            assert not delivery["acked"]

            async with rudder_process(settings, sandbox.url):

                async def acked() -> bool:
                    items = (await sb.get(f"/deliveries?app_id={app['app_id']}")).json()["items"]
                    return bool(items[0]["acked"])

                await wait_for(acked, timeout=15)

                async def finished() -> list[str] | None:
                    async with sessions() as session:
                        outcomes = list(
                            await session.scalars(
                                select(InboundEvent.outcome).where(
                                    InboundEvent.message_id == posted["message_id"]
                                )
                            )
                        )
                    return outcomes if "received" not in outcomes else None

                outcomes = sorted(await wait_for(finished, timeout=15))
            assert outcomes[-1] == "processed" and set(outcomes[:-1]) == {"duplicate"}
            assert len(outcomes) >= 2
            async with sessions() as session:
                bodies = list(
                    await session.scalars(
                        select(Message.body).where(
                            Message.external_message_id == posted["message_id"]
                        )
                    )
                )
            assert bodies == ["survive me"]
    finally:
        await engine.dispose()

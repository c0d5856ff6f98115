"""SIGKILL while a reply card streams, then a restart on the same home.

Rudder runs as a real process (`python -m rudder start`, the pattern of tests/listen/test_crash.py)
against a sandbox in this process. The example agent counts slowly; once the card shows some of
it, the process is killed with SIGKILL. The next start runs the interrupted run again (a crash
costs time, never the answer): the chat ends with exactly one card for the message, no longer
streaming, whose text is the whole answer of the second attempt.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx
from sqlalchemy import select

from rudder import texts
from rudder.config import Settings
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import Message, OutboxItem, Run
from rudder.feishu import reply_calls as calls
from rudder.feishu.card_controls import is_working
from rudder.feishu.reply_stream import Ending, card_text
from rudder.sandbox import SandboxServer
from tests.helpers import card_body, card_buttons, card_footer, wait_for
from tests.listen.test_crash import rudder_process

PROMPT = "count to 400"


async def test_sigkill_mid_reply_ends_with_one_final_card(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    try:
        async with (
            SandboxServer() as sandbox,
            httpx.AsyncClient(base_url=sandbox.url + "/_sandbox/api", timeout=10) as sb,
        ):
            await sb.patch("/settings", json={"ws_reconnect_nonce": 0})
            app = (await sb.post("/apps", json={"name": "Killed", "brand": "feishu"})).json()
            ada = (await sb.post("/users", json={"name": "Ada"})).json()["user_id"]
            chat = (
                await sb.post(
                    "/chats", json={"type": "p2p", "user_ids": [ada], "app_ids": [app["app_id"]]}
                )
            ).json()["chat_id"]
            users = (await sb.get(f"/users?app_id={app['app_id']}")).json()["items"]
            open_id = next(u["open_id"] for u in users if u["user_id"] == ada)

            async def bot_messages() -> list[dict[str, Any]]:
                items = (await sb.get(f"/chats/{chat}/messages")).json()["items"]
                return [m for m in items if m["sender"]["sender_type"] == "app"]

            async with rudder_process(settings, sandbox.url) as (proc, rudder):
                org = (await rudder.get("/api/orgs")).json()[0]
                agent = (
                    await rudder.post(
                        f"/api/orgs/{org['id']}/agents",
                        json={
                            "name": "Slow",
                            "runtime_type": "process",
                            "runtime_config": {
                                "command": "python",
                                "args": ["-m", "rudder.runtimes.example_agent"],
                                "env": {"RUDDER_EXAMPLE_DELAY_MS": "50"},  # 400 words: 20 s
                            },
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
                    await sb.post(f"/chats/{chat}/messages", json={"user_id": ada, "text": PROMPT})
                ).json()

                async def streaming() -> list[dict[str, Any]] | None:
                    replies = await bot_messages()
                    counting = [r for r in replies if "Counting to 400: 1 2 3" in r["text"]]
                    return replies if counting and replies[0]["streaming"] else None

                [live] = await wait_for(streaming, timeout=20)
                proc.send_signal(signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 10)
                assert proc.returncode == -signal.SIGKILL

            # Killed mid-stream: one card, still streaming, its reply ledger pending.
            [card] = await bot_messages()
            assert card["message_id"] == live["message_id"] and card["streaming"] is True
            assert "Done counting." not in card["text"]
            assert card_buttons(card) == [texts.CARD_BUTTON_STOP] and is_working(card["card"])
            async with sessions() as session:
                run = await session.scalar(select(Run).where(Run.source == "feishu"))
                assert run is not None and run.status == "running"
                run_id = run.id
                ledger = await session.scalar(
                    select(OutboxItem.status).where(
                        OutboxItem.run_id == run_id, OutboxItem.kind == calls.RUN
                    )
                )
            assert ledger == "pending"

            async with rudder_process(settings, sandbox.url):

                async def finished() -> bool:
                    async with sessions() as session:
                        status = await session.scalar(
                            select(OutboxItem.status).where(
                                OutboxItem.run_id == run_id, OutboxItem.kind == calls.RUN
                            )
                        )
                    return status == "sent"

                await wait_for(finished, timeout=60)
                replies = await bot_messages()

            async with sessions() as session:
                run = await session.get(Run, run_id)
                assert run is not None and run.reply_message_id
                message = await session.get(Message, run.reply_message_id)
                assert message is not None
            assert run.status == "succeeded" and run.attempt == 2 and run.error is None
            assert message.status == "completed" and "Done counting." in message.body
            # No duplicate card, none left streaming; it shows the whole answer.
            [final] = replies
            assert final["message_id"] == card["message_id"]
            assert final["parent_id"] == posted["message_id"]
            assert final["msg_type"] == "interactive" and final["streaming"] is False
            assert final["text"] == card_text(Ending("succeeded", message.body, None), run_id)
            assert card_body(final) == message.body
            # Nothing on it shows work: Stop is gone, the footer says done, New is offered.
            assert card_buttons(final) == [texts.CARD_BUTTON_NEW]
            assert card_footer(final) == texts.CARD_FOOTER_DONE
            assert not is_working(final["card"])
            assert texts.RUN_INTERRUPTED not in final["text"]
            assert await bot_messages() == replies  # and nothing more arrives later
    finally:
        await engine.dispose()

"""Local conversations: a message queues a run, the agent replies, Stop and Fork work."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from rudder import texts
from rudder.db.models import Conversation, Message, Run, RunEventRow, utcnow
from rudder.executor import InProcessRunQueue
from rudder.services import Services
from tests.helpers import default_org_and_agent, wait_for, wait_run


async def _new_conversation(client: httpx.AsyncClient) -> dict[str, str]:
    org, agent = await default_org_and_agent(client)
    r = await client.post(
        f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"], "title": "Hello"}
    )
    assert r.status_code == 201
    conv = r.json()
    for field in (
        "id",
        "agent_id",
        "title",
        "source",
        "bound",
        "region",
        "external_chat_type",
        "external_chat_name",
        "forked_from_conversation_id",
        "forked_from_message_id",
    ):
        assert field in conv
    assert conv["source"] == "local" and conv["bound"] is False
    return dict(conv)


async def test_message_gets_a_reply_from_the_example_agent(client: httpx.AsyncClient) -> None:
    conv = await _new_conversation(client)
    posted = await client.post(
        f"/api/conversations/{conv['id']}/messages", json={"body": "hello there"}
    )
    assert posted.status_code == 201
    message = posted.json()
    assert message["role"] == "user" and message["author_user_id"] and message["run_id"]
    run = await wait_run(client, message["run_id"])
    assert run["status"] == "succeeded", run
    messages = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
    assert [m["role"] for m in messages] == ["user", "assistant"]
    reply = messages[1]
    assert reply["status"] == "completed" and reply["run_id"] == run["id"]
    assert "hello there" in reply["body"]
    events = (await client.get(f"/api/runs/{run['id']}/events")).json()
    assert (
        "".join(e["payload"].get("text", "") for e in events if e["kind"] == "text")
        == reply["body"]
    )
    assert events[-1]["kind"] == "status"


async def test_messages_queue_in_order_one_run_at_a_time(client: httpx.AsyncClient) -> None:
    conv = await _new_conversation(client)
    run_ids = []
    for word in ("first", "second", "third"):
        r = await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": word})
        run_ids.append(r.json()["run_id"])
    runs = [await wait_run(client, rid) for rid in run_ids]
    assert all(r["status"] == "succeeded" for r in runs)
    # Each run started only after the previous one finished.
    for before, after in zip(runs, runs[1:], strict=False):
        assert before["finished_at"] <= after["started_at"]
    msgs = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
    replies = {m["run_id"]: m["body"] for m in msgs if m["role"] == "assistant"}
    for word, run in zip(("first", "second", "third"), runs, strict=True):
        assert word in replies[run["id"]]
    # Replies appear in the order their runs ran.
    assert [m["run_id"] for m in msgs if m["role"] == "assistant"] == run_ids


async def test_stop_mid_stream_keeps_partial_text(
    client: httpx.AsyncClient, monkeypatch: object
) -> None:
    conv = await _new_conversation(client)
    posted = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "slow please"})
    ).json()

    async def streaming_text() -> str | None:
        msgs = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
        replies = [m for m in msgs if m["role"] == "assistant" and m["body"]]
        return replies[0]["body"] if replies else None

    await wait_for(streaming_text, timeout=15)
    stop = await client.post(f"/api/conversations/{conv['id']}/stop")
    assert stop.status_code == 200 and stop.json()["stopped"] == 1
    run = await wait_run(client, posted["run_id"])
    assert run["status"] == "cancelled"
    reply = [
        m
        for m in (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
        if m["role"] == "assistant"
    ][0]
    assert reply["status"] == "stopped" and reply["body"]
    again = (await client.post(f"/api/conversations/{conv['id']}/stop")).json()
    assert again["stopped"] == 0 and "Nothing is running" in again["detail"]


async def test_cancel_a_queued_run(client: httpx.AsyncClient) -> None:
    conv = await _new_conversation(client)
    # Long enough to still be running when the queued run is cancelled, even on a busy machine.
    first = (
        await client.post(
            f"/api/conversations/{conv['id']}/messages", json={"body": "count to 5000"}
        )
    ).json()
    second = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "queued"})
    ).json()
    cancelled = await client.post(f"/api/runs/{second['run_id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    await client.post(f"/api/runs/{first['run_id']}/cancel")
    assert (await wait_run(client, first["run_id"]))["status"] == "cancelled"
    msgs = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
    # The queued run never produced a reply.
    assert [m for m in msgs if m["run_id"] == second["run_id"] and m["role"] == "assistant"] == []


async def test_failing_runtime_is_visible_and_history_kept(client: httpx.AsyncClient) -> None:
    conv = await _new_conversation(client)
    ok = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "fine"})
    ).json()
    await wait_run(client, ok["run_id"])
    bad = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "please fail"})
    ).json()
    run = await wait_run(client, bad["run_id"])
    assert run["status"] == "failed" and run["error"]
    msgs = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
    assert len(msgs) == 4
    assert msgs[3]["status"] == "failed" and msgs[3]["error"] == run["error"]
    assert msgs[1]["status"] == "completed"


async def test_bound_conversation_is_read_only_and_fork_keeps_lineage(
    client: httpx.AsyncClient, services: Services
) -> None:
    conv = await _new_conversation(client)
    posted = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "from feishu"})
    ).json()
    await wait_run(client, posted["run_id"])
    async with services.sessions() as session, session.begin():
        row = await session.get(Conversation, conv["id"])
        assert row is not None
        row.source, row.bound, row.external_chat_type = "feishu", True, "p2p"

    refused = await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "local"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == texts.BOUND_CONVERSATION_READ_ONLY
    assert refused.json()["error"] == "conversation_bound"

    fork = await client.post(f"/api/conversations/{conv['id']}/fork")
    assert fork.status_code == 201
    forked = fork.json()
    assert forked["forked_from_conversation_id"] == conv["id"]
    assert forked["bound"] is False and forked["source"] == "local"
    original = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()
    copied = (await client.get(f"/api/conversations/{forked['id']}/messages")).json()
    assert [m["body"] for m in copied] == [m["body"] for m in original]
    assert forked["forked_from_message_id"] == original[-1]["id"]
    cont = await client.post(
        f"/api/conversations/{forked['id']}/messages", json={"body": "continue here"}
    )
    assert cont.status_code == 201
    assert (await wait_run(client, cont.json()["run_id"]))["status"] == "succeeded"


async def _interrupted_run(services: Services, conv: dict[str, Any], attempt: int) -> str:
    async with services.sessions() as session, session.begin():
        c = await session.get(Conversation, conv["id"])
        assert c is not None
        trigger = Message(
            conversation_id=c.id, seq=1, role="user", body="hello", status="completed"
        )
        session.add(trigger)
        await session.flush()
        run = Run(
            org_id=c.org_id,
            agent_id=c.agent_id,
            conversation_id=c.id,
            trigger_message_id=trigger.id,
            status="running",
            started_at=utcnow(),
            attempt=attempt,
        )
        session.add(run)
        await session.flush()
        reply = Message(
            conversation_id=c.id,
            seq=2,
            role="assistant",
            body="half",
            status="streaming",
            run_id=run.id,
        )
        session.add(reply)
        await session.flush()
        run.reply_message_id = reply.id
        return run.id


async def test_interrupted_runs_fail_visibly_on_start(
    services: Services, client: httpx.AsyncClient
) -> None:
    """A run a crash interrupted for the second time fails, and says why."""
    conv = await _new_conversation(client)
    run_id = await _interrupted_run(services, conv, attempt=2)
    queue = InProcessRunQueue(services.sessions, services.live, services.box)
    await queue.recover()
    fetched = (await client.get(f"/api/runs/{run_id}")).json()
    assert fetched["status"] == "failed" and fetched["error"] == texts.RUN_INTERRUPTED
    msg = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()[-1]
    assert msg["status"] == "failed" and msg["body"] == "half"
    await queue.close()


async def test_an_interrupted_run_is_run_again_once(
    services: Services, client: httpx.AsyncClient
) -> None:
    """The first interruption costs time, not the answer: the run is queued again and answers
    in the same message; with the agent's setting off it fails instead."""
    conv = await _new_conversation(client)
    run_id = await _interrupted_run(services, conv, attempt=1)
    queue = InProcessRunQueue(services.sessions, services.live, services.box)
    await queue.recover()
    await queue.wait_idle()
    async with services.sessions() as session:
        run = await session.get(Run, run_id)
        assert run is not None and run.status == "succeeded" and run.attempt == 2
        reply = await session.get(Message, run.reply_message_id)
        assert reply is not None and reply.status == "completed" and reply.body != "half"
        bodies = list(
            await session.scalars(select(Message.body).where(Message.conversation_id == conv["id"]))
        )
        events = list(
            await session.scalars(
                select(RunEventRow.payload)
                .where(RunEventRow.run_id == run_id, RunEventRow.kind == "status")
                .order_by(RunEventRow.seq)
            )
        )
    assert len(bodies) == 2  # no second assistant message
    assert events[0] == {"status": "queued", "error": texts.RUN_INTERRUPTED_RETRY}
    assert events[-1]["status"] == "succeeded"

    patched = await client.patch(
        f"/api/agents/{conv['agent_id']}", json={"rerun_interrupted": False}
    )
    assert patched.status_code == 200 and patched.json()["rerun_interrupted"] is False
    second = await _interrupted_run_later(services, conv)
    await queue.recover()
    fetched = (await client.get(f"/api/runs/{second}")).json()
    assert fetched["status"] == "failed" and fetched["error"] == texts.RUN_INTERRUPTED
    await queue.close()


async def _interrupted_run_later(services: Services, conv: dict[str, Any]) -> str:
    async with services.sessions() as session, session.begin():
        c = await session.get(Conversation, conv["id"])
        assert c is not None
        run = Run(
            org_id=c.org_id,
            agent_id=c.agent_id,
            conversation_id=c.id,
            status="running",
            started_at=utcnow(),
        )
        session.add(run)
        await session.flush()
        return run.id


async def test_paused_agent_fails_the_run_visibly(client: httpx.AsyncClient) -> None:
    conv = await _new_conversation(client)
    await client.patch(f"/api/agents/{conv['agent_id']}", json={"status": "paused"})
    posted = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
    ).json()
    run = await wait_run(client, posted["run_id"])
    assert run["status"] == "failed" and run["error"] == texts.AGENT_PAUSED
    reply = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()[-1]
    assert reply["status"] == "failed" and reply["error"] == texts.AGENT_PAUSED


async def test_a_run_sees_the_newest_history_up_to_its_message(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rudder.executor

    monkeypatch.setattr(rudder.executor, "HISTORY_LIMIT", 3)
    org, _ = await default_org_and_agent(client)
    script = (
        "import json,sys; d=json.load(sys.stdin); "
        "print(len(d['messages']), '|'.join(m['body'] for m in d['messages']))"
    )
    agent = (
        await client.post(
            f"/api/orgs/{org['id']}/agents",
            json={
                "name": "Counter",
                "runtime_type": "process",
                "runtime_config": {"command": "python", "args": ["-c", script]},
            },
        )
    ).json()
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    for word in ("one", "two", "three"):
        posted = (
            await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": word})
        ).json()
        run = await wait_run(client, posted["run_id"])
    reply = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()[-1]
    assert run["status"] == "succeeded"
    # Three newest messages before the reply: "two", its reply, "three".
    assert reply["body"].startswith("3 two|") and reply["body"].rstrip().endswith("|three")

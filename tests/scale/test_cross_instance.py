"""Stop and live updates cross instances; a run worker killed mid-run fails its run visibly."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx

from rudder import texts
from tests.scale.cluster import Cluster
from tests.scale.dialogue import EXAMPLE, org_and_owner, wait_run, wait_until

BIG = 20_000  # characters in one delta: more than one NOTIFY can carry
BIG_AGENT = {
    "command": sys.executable,
    "args": ["-c", f"import sys; sys.stdout.write('é' * {BIG}); sys.stdout.flush()"],
}


async def _conversation(api: httpx.AsyncClient, runtime_config: dict[str, Any]) -> str:
    org_id, _ = await org_and_owner(api)
    agent = (
        await api.post(
            f"/api/orgs/{org_id}/agents",
            json={"name": "Agent", "runtime_type": "process", "runtime_config": runtime_config},
        )
    ).json()
    conv = await api.post(f"/api/orgs/{org_id}/conversations", json={"agent_id": agent["id"]})
    conv_id: str = conv.json()["id"]
    return conv_id


async def _post(api: httpx.AsyncClient, conv_id: str, body: str) -> str:
    r = await api.post(f"/api/conversations/{conv_id}/messages", json={"body": body})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    return run_id


async def _running(api: httpx.AsyncClient, run_id: str) -> bool:
    return bool((await api.get(f"/api/runs/{run_id}")).json()["status"] == "running")


async def test_a_run_executing_on_a_is_stopped_through_b(cluster: Cluster) -> None:
    a = await cluster.instance("a")
    b = await cluster.instance("b", RUDDER_INSTANCE_RUNS="0")  # so the run executes on A
    async with (
        httpx.AsyncClient(base_url=str(a.url), timeout=20) as on_a,
        httpx.AsyncClient(base_url=str(b.url), timeout=20) as on_b,
    ):
        conv = await _conversation(on_a, EXAMPLE)
        run_id = await _post(on_a, conv, "count to 1000")
        await wait_until(lambda: _running(on_a, run_id), timeout=20)
        stopped = (await on_b.post(f"/api/conversations/{conv}/stop")).json()
        assert stopped["run_ids"] == [run_id]
        run = await wait_run(on_b, run_id, timeout=15)
        assert run["status"] == "cancelled"
        messages = (await on_b.get(f"/api/conversations/{conv}/messages")).json()
        messages = messages["items"] if isinstance(messages, dict) else messages
        assert messages[-1]["status"] == "stopped"
        assert "Done counting" not in messages[-1]["body"]


async def test_a_browser_on_b_watches_a_run_executing_on_a(cluster: Cluster) -> None:
    a = await cluster.instance("a")
    b = await cluster.instance("b", RUDDER_INSTANCE_RUNS="0")
    async with (
        httpx.AsyncClient(base_url=str(a.url), timeout=30) as on_a,
        httpx.AsyncClient(base_url=str(b.url), timeout=30) as on_b,
    ):
        conv = await _conversation(on_a, BIG_AGENT)
        events: list[tuple[str, dict[str, Any]]] = []
        async with on_b.stream("GET", f"/api/conversations/{conv}/events") as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("event: snapshot")
            run_id = await _post(on_a, conv, "say it big")
            event = ""
            async for line in lines:
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: "):
                    data = json.loads(line[len("data: ") :])
                    events.append((event, data))
                    if event == "run.updated" and data["status"] == "succeeded":
                        break
        deltas = [d for e, d in events if e == "message.delta" and d["run_id"] == run_id]
        assert len(deltas) > 1  # cut to fit NOTIFY's 8000 bytes
        text = "".join(d["delta"] for d in sorted(deltas, key=lambda d: d["offset"]))
        assert text == "é" * BIG
        final = [d for e, d in events if e == "message.updated" and d.get("run_id") == run_id]
        assert final and final[-1]["body"] == "é" * BIG and final[-1]["status"] == "completed"


async def test_a_worker_killed_mid_run_fails_the_run_visibly(cluster: Cluster) -> None:
    a = await cluster.instance("a", RUDDER_INSTANCE_RUNS="0")  # only workers execute runs
    async with httpx.AsyncClient(base_url=str(a.url), timeout=20) as api:
        worker = cluster.worker("w1", concurrency=1)
        conv = await _conversation(api, EXAMPLE)
        # With the agent's re-run on (the default) the run would be queued again instead.
        agent_id = (await api.get(f"/api/conversations/{conv}")).json()["agent_id"]
        patched = await api.patch(f"/api/agents/{agent_id}", json={"rerun_interrupted": False})
        assert patched.status_code == 200, patched.text
        run_id = await _post(api, conv, "count to 1000")
        await wait_until(lambda: _running(api, run_id), timeout=30)
        worker.kill9()
        run = await wait_run(api, run_id, timeout=20)
        assert run["status"] == "failed" and run["error"] == texts.RUN_INTERRUPTED
        messages = (await api.get(f"/api/conversations/{conv}/messages")).json()
        messages = messages["items"] if isinstance(messages, dict) else messages
        assert messages[-1]["status"] == "failed"

        # The conversation is not stuck behind the dead job: the next run executes.
        cluster.worker("w2", concurrency=1)
        again = await _post(api, conv, "hello")
        assert (await wait_run(api, again, timeout=30))["status"] == "succeeded"

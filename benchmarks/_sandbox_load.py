"""The sandbox in its own process, plus a load generator: ``POST /_bench/push``.

Run by the benchmarks (``python benchmarks/_sandbox_load.py``); prints ``{"url": ...}`` once
listening. The sandbox lives in its own process so that the figures measure the client under
test, not the load generator sharing its event loop.

``POST /_bench/push {"app_ids": [...], "count": N, "rate": 0, "window": 500, "chats": 20}``
pushes N new ``im.message.receive_v1`` events (group messages that mention nobody, spread over
the apps and ``chats`` chats each) straight onto the apps' live connections, at most ``window``
unacked at once, paced at ``rate`` per second (0 = as fast as acks come back). It answers
``{"pushed", "acked", "failed", "elapsed_s", "events_per_s", "ack_p50_ms", "ack_p99_ms"}``;
ack latency is from the first byte of an event sent to its ack received, as Feishu sees it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rudder.sandbox.core import Sandbox
from rudder.sandbox.server import create_sandbox_app


def envelope(sandbox: Sandbox, app_id: str, chat: int, now_ms: int) -> bytes:
    app = sandbox.app(app_id)
    event = {
        "schema": "2.0",
        "header": {
            "event_id": secrets.token_hex(16),
            "event_type": "im.message.receive_v1",
            "create_time": str(now_ms),
            "token": app.verification_token,
            "app_id": app_id,
            "tenant_key": app.tenant_key,
        },
        "event": {
            "sender": {
                "sender_id": {
                    "open_id": "ou_" + secrets.token_hex(16),
                    "union_id": "on_" + secrets.token_hex(16),
                    "user_id": secrets.token_hex(4),
                },
                "sender_type": "user",
                "tenant_key": app.tenant_key,
            },
            "message": {
                "message_id": "om_" + secrets.token_hex(16),
                "create_time": str(now_ms),
                "update_time": str(now_ms),
                "chat_id": f"oc_bench{chat:04d}{app_id[-8:]}",
                "chat_type": "group",
                "message_type": "text",
                "content": json.dumps({"text": "status update for the team, nothing to do"}),
            },
        },
    }
    return json.dumps(event, ensure_ascii=False).encode()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def push(request: Request) -> JSONResponse:
    sandbox: Sandbox = request.app.state.sandbox
    body: dict[str, Any] = await request.json()
    app_ids: list[str] = list(body["app_ids"])
    count = int(body.get("count", 1000))
    rate = float(body.get("rate", 0))
    window = asyncio.Semaphore(int(body.get("window", 500)))
    chats = int(body.get("chats", 20))
    now_ms = int(time.time() * 1000)
    # Built before the clock starts: the generator's JSON work is not the client's.
    payloads = [
        (app_ids[i % len(app_ids)], envelope(sandbox, app_ids[i % len(app_ids)], i % chats, now_ms))
        for i in range(count)
    ]
    latencies: list[float] = []
    failed: list[str] = []

    async def one(app_id: str, payload: bytes) -> None:
        try:
            started = time.perf_counter()
            ok, detail, _ = await sandbox.hub.deliver(app_id, payload)
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failed.append(detail)
        finally:
            window.release()

    tasks = []
    started = time.perf_counter()
    for i, (app_id, payload) in enumerate(payloads):
        if rate > 0:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await window.acquire()
        tasks.append(asyncio.create_task(one(app_id, payload)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return JSONResponse(
        {
            "pushed": count,
            "acked": len(latencies),
            "failed": len(failed),
            "failures": sorted(set(failed))[:5],
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
            "ack_p50_ms": round(statistics.median(latencies), 2) if latencies else 0.0,
            "ack_p99_ms": round(percentile(latencies, 0.99), 2),
        }
    )


async def connections(request: Request) -> JSONResponse:
    sandbox: Sandbox = request.app.state.sandbox
    live = {app_id: len(conns) for app_id, conns in sandbox.hub.connections.items() if conns}
    return JSONResponse(
        {"apps": len(live), "connections": sum(live.values()), "app_ids": sorted(live)}
    )


async def main() -> None:
    sandbox = Sandbox()
    app = create_sandbox_app(sandbox)
    app.router.routes.append(Route("/_bench/push", push, methods=["POST"]))
    app.router.routes.append(Route("/_bench/connections", connections, methods=["GET"]))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit("sandbox did not start")
        await asyncio.sleep(0.01)
    port = [s for srv in server.servers for s in (srv.sockets or [])][0].getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main())

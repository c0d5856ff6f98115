"""Long connection with a raw client: ping/pong, acks, redelivery, the 50-connection cap."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from rudder.feishu.frames import Frame, FrameMethod, decode_frame, encode_frame, ping_frame
from tests.sandbox.conftest import SandboxHarness, eventually


async def _connect(sandbox: SandboxHarness, app: dict[str, Any]) -> ClientConnection:
    body = (
        await sandbox.http.post(
            "/callback/ws/endpoint", json={"AppID": app["app_id"], "AppSecret": app["app_secret"]}
        )
    ).json()
    assert body["code"] == 0, body
    url = body["data"]["URL"]
    assert url.startswith("ws://127.0.0.1:") and "device_id=" in url and "service_id=" in url
    assert body["data"]["ClientConfig"]["PingInterval"] > 0
    return await websockets.connect(url, proxy=None)


@contextlib.asynccontextmanager
async def _connected(
    sandbox: SandboxHarness, app: dict[str, Any]
) -> AsyncIterator[ClientConnection]:
    ws = await _connect(sandbox, app)
    try:
        yield ws
    finally:
        await ws.close()


async def _next_event(ws: ClientConnection, within: float = 5.0) -> Frame:
    while True:
        frame = decode_frame(await asyncio.wait_for(ws.recv(), within))  # type: ignore[arg-type]
        if frame.method == FrameMethod.DATA:
            return frame


async def _ack(ws: ClientConnection, frame: Frame, payload: dict[str, Any]) -> None:
    frame.payload = json.dumps(payload).encode()
    await ws.send(encode_frame(frame.with_header("biz_rt", "1")))


async def _deliveries(sandbox: SandboxHarness, app_id: str) -> list[dict[str, Any]]:
    return list((await sandbox.control("GET", f"/deliveries?app_id={app_id}"))["items"])


async def test_ping_gets_a_pong_with_client_config(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    async with _connected(sandbox, app) as ws:
        await ws.send(encode_frame(ping_frame(33554678)))
        pong = decode_frame(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[arg-type]
        assert pong.method == FrameMethod.CONTROL and pong.header("type") == "pong"
        assert set(json.loads(pong.payload or b"{}")) == {
            "ReconnectCount",
            "ReconnectInterval",
            "ReconnectNonce",
            "PingInterval",
        }


@pytest.mark.parametrize(
    "ack",
    [{"code": 200}, {"code": 200, "data": "e30="}, {"code": 200, "headers": None, "data": None}],
)
async def test_each_sdk_ack_form_is_accepted(sandbox: SandboxHarness, ack: dict[str, Any]) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    async with _connected(sandbox, app) as ws:
        await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hi"}
        )
        frame = await _next_event(ws)
        assert frame.header("type") == "event" and frame.header("sum") == "1"
        event = json.loads(frame.payload or b"")
        assert event["schema"] == "2.0" and event["header"]["token"] == app["verification_token"]
        await _ack(ws, frame, ack)

        async def acked() -> bool:
            return bool((await _deliveries(sandbox, app["app_id"]))[0]["acked"])

        await eventually(acked)


async def test_missing_or_failed_ack_is_redelivered_on_the_ladder(sandbox: SandboxHarness) -> None:
    await sandbox.control("POST", "/clock", json={"factor": 0.001})  # 15 s → 15 ms, 5 min → 0.3 s
    await sandbox.control("PATCH", "/settings", json={"ack_timeout_s": 0.3})
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    async with _connected(sandbox, app) as ws:
        await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hi"}
        )
        ids: list[str] = []
        first = await _next_event(ws)  # not acked: times out
        ids.append(json.loads(first.payload or b"")["header"]["event_id"])
        second = await _next_event(ws)
        ids.append(json.loads(second.payload or b"")["header"]["event_id"])
        await _ack(ws, second, {"code": 500})  # a handler exception
        third = await _next_event(ws)
        ids.append(json.loads(third.payload or b"")["header"]["event_id"])
        assert len(set(ids)) == 1  # the same event each time
        await _ack(ws, third, {"code": 200})

        async def acked() -> list[dict[str, Any]]:
            return [d for d in await _deliveries(sandbox, app["app_id"]) if d["acked"]]

        [delivery] = await eventually(acked)
        assert delivery["attempts"] == 3
        assert [h["ok"] for h in delivery["history"]] == [False, False, True]


async def test_events_wait_for_a_connection(sandbox: SandboxHarness) -> None:
    await sandbox.control("POST", "/clock", json={"factor": 0.01})
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    await sandbox.control(
        "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "early"}
    )
    await asyncio.sleep(0.05)
    async with _connected(sandbox, app) as ws:
        frame = await _next_event(ws, within=10)
        assert json.loads(json.loads(frame.payload or b"")["event"]["message"]["content"]) == {
            "text": "early"
        }


async def test_lost_acks_fault_and_dropped_connections(sandbox: SandboxHarness) -> None:
    await sandbox.control("POST", "/clock", json={"factor": 0.01})
    await sandbox.control("PATCH", "/settings", json={"ack_timeout_s": 0.3})
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    await sandbox.control(
        "POST", "/faults", json={"kind": "lose_acks", "app_id": app["app_id"], "count": 1}
    )
    async with _connected(sandbox, app) as ws:
        await sandbox.control(
            "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": "hi"}
        )
        await _ack(ws, await _next_event(ws), {"code": 200})  # lost by the fault
        await _ack(ws, await _next_event(ws), {"code": 200})
        dropped = await sandbox.control(
            "POST", "/faults", json={"kind": "drop_connections", "app_id": app["app_id"]}
        )
        assert dropped["dropped"] == 1
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    [delivery] = await _deliveries(sandbox, app["app_id"])
    assert delivery["attempts"] == 2 and delivery["acked"]


async def test_the_51st_connection_is_refused(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    connections = await asyncio.gather(*[_connect(sandbox, app) for _ in range(50)])
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await _connect(sandbox, app)
        headers = refused.value.response.headers
        assert headers["handshake-status"] == "514"
        assert headers["handshake-autherrcode"] == "1000040350"
        assert headers["handshake-msg"]
        await connections[0].close()

        async def freed() -> bool:
            view = await sandbox.control("GET", f"/apps/{app['app_id']}")
            return len(view["connections"]) == 49

        await eventually(freed)
        connections[0] = await _connect(sandbox, app)  # a slot is free again
    finally:
        await asyncio.gather(*[c.close() for c in connections])


async def test_each_event_goes_to_exactly_one_connection(sandbox: SandboxHarness) -> None:
    app = await sandbox.create_app()
    user = await sandbox.create_user()
    chat = await sandbox.p2p(user, app["app_id"])
    clients = [await _connect(sandbox, app) for _ in range(3)]
    received: list[int] = []

    async def serve(index: int, ws: ClientConnection) -> None:
        while True:
            frame = await _next_event(ws, within=30)
            received.append(index)
            await _ack(ws, frame, {"code": 200})

    tasks = [asyncio.create_task(serve(i, ws)) for i, ws in enumerate(clients)]
    try:
        for n in range(12):
            await sandbox.control(
                "POST", f"/chats/{chat}/messages", json={"user_id": user, "text": f"m{n}"}
            )

        async def all_acked() -> bool:
            items = await _deliveries(sandbox, app["app_id"])
            return len(items) == 12 and all(d["acked"] for d in items)

        await eventually(all_acked)
        assert len(received) == 12 and len(set(received)) > 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*[c.close() for c in clients])

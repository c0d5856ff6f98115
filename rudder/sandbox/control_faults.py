"""Test-control API, part two: deliveries, injected faults, the clock, tokens, settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.routing import Route

from rudder.sandbox.control import endpoint, string_field
from rudder.sandbox.core import SandboxError
from rudder.sandbox.limits import ApiFault
from rudder.sandbox.longconn import AckFaults
from rudder.sandbox.resource_store import UPLOAD_API, StreamFault

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox


async def list_deliveries(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    q = request.query_params
    include = q.get("include_event") in ("1", "true")
    items = [
        d.public(include)
        for d in sandbox.deliveries.deliveries
        if (not q.get("app_id") or d.app_id == q["app_id"])
        and (not q.get("event_type") or d.event_type == q["event_type"])
        and (not q.get("event_id") or d.event_id == q["event_id"])
    ]
    return {"items": items}


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SandboxError(f"{key} must be an integer")
    return value


async def add_fault(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    kind = string_field(body, "kind")
    app_id = body.get("app_id")
    if app_id is not None:
        sandbox.app(app_id)
    if kind == "drop_connections":
        return {"kind": kind, "dropped": await sandbox.hub.drop(app_id)}
    if kind == "fail_api":
        fault = ApiFault(
            api=string_field(body, "api"),
            code=_int(body, "code", 99991400),
            http_status=_int(body, "http_status", 400),
            msg=string_field(body, "msg", required=False, default="injected failure")
            or "injected failure",
            remaining=_int(body, "count", 1),
            app_id=app_id,
        )
        sandbox.faults.append(fault)
        return {"kind": kind, "api": fault.api, "remaining": fault.remaining}
    if kind in ("lose_acks", "delay_acks"):
        faults = sandbox.hub.ack_faults.setdefault(app_id, AckFaults())
        count = _int(body, "count", 1)
        if kind == "lose_acks":
            faults.lose += count
        else:
            delay = body.get("delay_s", 5.0)
            if isinstance(delay, bool) or not isinstance(delay, int | float):
                raise SandboxError("delay_s must be a number")
            faults.delay += count
            faults.delay_s = float(delay)
        return {"kind": kind, "app_id": app_id, "count": count}
    if kind in ("slow_download", "cut_download"):
        # Resource downloads: wait delay_s before the first byte, or stop after after_bytes.
        delay = body.get("delay_s", 5.0 if kind == "slow_download" else 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise SandboxError("delay_s must be a non-negative number")
        after = _int(body, "after_bytes", 0) if kind == "cut_download" else None
        stream_fault = StreamFault(
            api="im.message.resource.get",
            remaining=_int(body, "count", 1),
            delay_s=float(delay),
            truncate_after=after,
            app_id=app_id,
        )
        sandbox.stream_faults.append(stream_fault)
        return {"kind": kind, "remaining": stream_fault.remaining, "app_id": app_id}
    if kind == "slow_upload":
        # image.create / file.create: the bytes are stored, then the answer waits delay_s
        # (a client killed meanwhile never learns the key of what it uploaded).
        delay = body.get("delay_s", 5.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise SandboxError("delay_s must be a non-negative number")
        upload_fault = StreamFault(
            api=UPLOAD_API, remaining=_int(body, "count", 1), delay_s=float(delay), app_id=app_id
        )
        sandbox.stream_faults.append(upload_fault)
        return {"kind": kind, "remaining": upload_fault.remaining, "app_id": app_id}
    raise SandboxError(
        "kind must be drop_connections, fail_api, lose_acks, delay_acks, slow_download,"
        " cut_download or slow_upload"
    )


async def list_faults(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    api = [
        {"api": f.api, "code": f.code, "remaining": f.remaining, "app_id": f.app_id}
        for f in sandbox.faults
    ]
    acks = {
        str(k): {"lose": v.lose, "delay": v.delay, "delay_s": v.delay_s}
        for k, v in sandbox.hub.ack_faults.items()
    }
    downloads = [
        {"delay_s": f.delay_s, "after_bytes": f.truncate_after, "remaining": f.remaining}
        for f in sandbox.stream_faults
    ]
    return {"api": api, "acks": acks, "downloads": downloads}


async def clear_faults(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    sandbox.faults.clear()
    sandbox.hub.ack_faults.clear()
    sandbox.stream_faults.clear()
    return {"cleared": True}


async def clock(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    factor = body.get("factor")
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
            raise SandboxError("factor must be a non-negative number")
        sandbox.clock.factor = float(factor)
    advance = body.get("advance_s")
    if advance is not None:
        if isinstance(advance, bool) or not isinstance(advance, int | float):
            raise SandboxError("advance_s must be a number")
        sandbox.clock.advance(float(advance))
    return {
        "factor": sandbox.clock.factor,
        "offset_s": sandbox.clock.offset,
        "now": sandbox.clock.now(),
    }


async def expire_tokens(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    app_id = body.get("app_id")
    if app_id is not None:
        sandbox.app(app_id)
    return {"expired": sandbox.tokens.expire(sandbox.clock.now(), app_id)}


async def get_settings(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    return sandbox.settings.public()


async def patch_settings(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    rejected = sandbox.settings.update(body)
    if rejected:
        raise SandboxError("unknown or invalid settings: " + ", ".join(sorted(rejected)))
    return sandbox.settings.public()


async def version(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    return {"version": sandbox.version}


_A = "/_sandbox/api"
routes = [
    Route(_A + "/deliveries", endpoint(list_deliveries), methods=["GET"]),
    Route(_A + "/faults", endpoint(add_fault), methods=["POST"]),
    Route(_A + "/faults", endpoint(list_faults), methods=["GET"]),
    Route(_A + "/faults", endpoint(clear_faults), methods=["DELETE"]),
    Route(_A + "/clock", endpoint(clock), methods=["POST"]),
    Route(_A + "/tokens/expire", endpoint(expire_tokens), methods=["POST"]),
    Route(_A + "/settings", endpoint(get_settings), methods=["GET"]),
    Route(_A + "/settings", endpoint(patch_settings), methods=["PATCH"]),
    Route(_A + "/version", endpoint(version), methods=["GET"]),
]

"""App slash commands (application v7) — the native "/" palette (reference §5)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox.envelope import authorize, fail, ok, read_json_object
from rudder.sandbox.state import App, SlashCommand

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

INVALID_PARAM = 99992402
ALREADY_EXISTS = 40000000  # "command already exists" (dsh-im slash registry)
NOT_FOUND = 40000004


def _valid_command(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and not value.startswith("/")
        and " " not in value
    )


async def _begin(request: Request, api: str) -> tuple[Sandbox, App, dict[str, Any]] | Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, api)
    if isinstance(app, Response):
        return app
    body = await read_json_object(request)
    if body is None:
        return fail(INVALID_PARAM, "request body is not a JSON object")
    return sandbox, app, body


def _description(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"default_value": value}
    return value if isinstance(value, dict) else None


async def create(request: Request) -> Response:
    begun = await _begin(request, "application.app_slash_command.create")
    if isinstance(begun, Response):
        return begun
    sandbox, app, body = begun
    command = body.get("command")
    if not _valid_command(command):
        return fail(INVALID_PARAM, "command is required, without a leading '/'")
    commands = sandbox.slash_commands.setdefault(app.app_id, {})
    if any(c.command == command for c in commands.values()):
        return fail(ALREADY_EXISTS, "command already exists")
    icon = body.get("icon")
    now = sandbox.clock.now()
    item = SlashCommand(
        command_id=secrets.token_hex(8),
        app_id=app.app_id,
        command=str(command),
        description=_description(body.get("description")) or {"default_value": ""},
        icon=icon if isinstance(icon, dict) else None,
        create_time=now,
        update_time=now,
    )
    commands[item.command_id] = item
    sandbox.touch()
    return ok({"app_slash_command": item.public(), **item.public()})


async def list_commands(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, "application.app_slash_command.list")
    if isinstance(app, Response):
        return app
    items = [c.public() for c in sandbox.slash_commands.get(app.app_id, {}).values()]
    return ok({"items": items, "has_more": False, "page_token": ""})


async def update(request: Request) -> Response:
    begun = await _begin(request, "application.app_slash_command.patch")
    if isinstance(begun, Response):
        return begun
    sandbox, app, body = begun
    item = sandbox.slash_commands.get(app.app_id, {}).get(request.path_params["command_id"])
    if item is None:
        return fail(NOT_FOUND, "command not found")
    if "command" in body:
        command = body["command"]
        if not _valid_command(command):
            return fail(INVALID_PARAM, "command must not be empty or start with '/'")
        taken = any(
            c.command == command and c is not item
            for c in sandbox.slash_commands[app.app_id].values()
        )
        if taken:
            return fail(ALREADY_EXISTS, "command already exists")
        item.command = str(command)
    description = _description(body.get("description"))
    if description is not None:
        item.description = description
    if isinstance(body.get("icon"), dict):
        item.icon = body["icon"]
    item.update_time = sandbox.clock.now()
    sandbox.touch()
    return ok({"app_slash_command": item.public(), **item.public()})


async def delete(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, "application.app_slash_command.delete")
    if isinstance(app, Response):
        return app
    item = sandbox.slash_commands.get(app.app_id, {}).pop(request.path_params["command_id"], None)
    if item is None:
        return fail(NOT_FOUND, "command not found")
    sandbox.touch()
    return ok({})


_S = "/open-apis/application/v7/app_slash_commands"
routes = [
    Route(_S, create, methods=["POST"]),
    Route(_S, list_commands, methods=["GET"]),
    Route(_S + "/{command_id}", update, methods=["PATCH"]),
    Route(_S + "/{command_id}", delete, methods=["DELETE"]),
]

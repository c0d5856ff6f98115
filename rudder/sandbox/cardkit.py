"""CardKit card entities and streaming updates (reference §6.6)."""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox.envelope import authorize, fail, ok, read_json_object
from rudder.sandbox.state import App, Card

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

INVALID_PARAM = 230001
CARD_RATE_LIMIT = 230020
CARD_NOT_FOUND = 200740
CARD_TOO_LARGE = 200860
STREAMING_CLOSED = 300309
NOT_OWNER = 300311
ELEMENT_NOT_FOUND = 300313  # number not confirmed by a doc; the name is
SEQUENCE_NOT_INCREASING = 300317
CARD_LIMIT = 30 * 1024
SEQUENCE_MAX = 2**31 - 1


def _parse_card(raw: object) -> dict[str, Any] | Response:
    if not isinstance(raw, str) or not raw:
        return fail(INVALID_PARAM, "data must be a card JSON string")
    if len(raw.encode()) > CARD_LIMIT:
        return fail(CARD_TOO_LARGE, "card content exceeds 30 KB")
    try:
        card = json.loads(raw)
    except ValueError:
        return fail(INVALID_PARAM, "card data is not valid JSON")
    if not isinstance(card, dict):
        return fail(INVALID_PARAM, "card data must be a JSON object")
    return card


def find_element(node: object, element_id: str) -> dict[str, Any] | None:
    if isinstance(node, list):
        for item in node:
            found = find_element(item, element_id)
            if found is not None:
                return found
    elif isinstance(node, dict):
        if node.get("element_id") == element_id:
            return node
        for value in node.values():
            found = find_element(value, element_id)
            if found is not None:
                return found
    return None


async def _begin(request: Request, api: str) -> tuple[Sandbox, App, dict[str, Any]] | Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, api)
    if isinstance(app, Response):
        return app
    body = await read_json_object(request)
    if body is None:
        return fail(INVALID_PARAM, "request body is not a JSON object")
    return sandbox, app, body


def _card_op(sandbox: Sandbox, app: App, card_id: str, body: dict[str, Any]) -> Card | Response:
    """Ownership, the per-card rate and the sequence rule shared by every card update."""
    card = sandbox.cards.get(card_id)
    if card is None:
        return fail(CARD_NOT_FOUND, f"card {card_id} not found")
    if card.app_id != app.app_id:
        return fail(NOT_OWNER, "the app is not the owner of the card")
    # ≤ 10 operations per second per card entity (streaming-updates overview).
    now = time.monotonic()
    card.op_times = [t for t in card.op_times if now - t < 1.0]
    if len(card.op_times) >= sandbox.settings.card_ops_per_second:
        return fail(CARD_RATE_LIMIT, "This operation triggers the frequency limit.")
    sequence = body.get("sequence")
    if (
        isinstance(sequence, bool)
        or not isinstance(sequence, int)
        or not 1 <= sequence <= SEQUENCE_MAX
    ):
        return fail(INVALID_PARAM, "sequence must be an integer in 1..2147483647")
    # sequence is strictly increasing per card across all CardKit operations.
    if sequence <= card.sequence:
        return fail(
            SEQUENCE_NOT_INCREASING, f"sequence {sequence} is not greater than {card.sequence}"
        )
    card.op_times.append(now)
    return card


async def create_card(request: Request) -> Response:
    begun = await _begin(request, "cardkit.card.create")
    if isinstance(begun, Response):
        return begun
    sandbox, app, body = begun
    if body.get("type") != "card_json":
        return fail(INVALID_PARAM, "type must be card_json")
    card_data = _parse_card(body.get("data"))
    if isinstance(card_data, Response):
        return card_data
    card = Card(
        card_id=str(secrets.randbelow(9 * 10**18) + 10**18), app_id=app.app_id, data=card_data
    )
    sandbox.cards[card.card_id] = card
    return ok({"card_id": card.card_id})


async def element_content(request: Request) -> Response:
    """PUT .../elements/{element_id}/content: the FULL text so far (the client shows the delta)."""
    begun = await _begin(request, "cardkit.card_element.content")
    if isinstance(begun, Response):
        return begun
    sandbox, app, body = begun
    content = body.get("content")
    if not isinstance(content, str):
        return fail(INVALID_PARAM, "content must be a string")
    card = _card_op(sandbox, app, request.path_params["card_id"], body)
    if isinstance(card, Response):
        return card
    element = find_element(card.data.get("body", card.data), request.path_params["element_id"])
    if element is None:
        card.op_times.pop()
        return fail(ELEMENT_NOT_FOUND, "element not found")
    if not card.streaming:
        card.op_times.pop()
        return fail(STREAMING_CLOSED, "streaming mode is closed for this card")
    card.sequence = int(body["sequence"])
    if element.get("tag") == "plain_text" or "text" not in element:
        element["content"] = content
    else:
        element["text"] = (
            {**element["text"], "content": content}
            if isinstance(element["text"], dict)
            else content
        )
    sandbox.touch()
    return ok({})


async def settings(request: Request) -> Response:
    begun = await _begin(request, "cardkit.card.settings")
    if isinstance(begun, Response):
        return begun
    sandbox, app, body = begun
    try:
        parsed = json.loads(body.get("settings") or "")
    except (ValueError, TypeError):
        return fail(INVALID_PARAM, "settings must be a JSON string")
    if not isinstance(parsed, dict):
        return fail(INVALID_PARAM, "settings must be a JSON object")
    card = _card_op(sandbox, app, request.path_params["card_id"], body)
    if isinstance(card, Response):
        return card
    card.sequence = int(body["sequence"])
    for key in ("config", "card_link"):
        if isinstance(parsed.get(key), dict):
            current = card.data.get(key)
            card.data[key] = {**(current if isinstance(current, dict) else {}), **parsed[key]}
    sandbox.touch()
    return ok({})


async def update_card(request: Request) -> Response:
    begun = await _begin(request, "cardkit.card.update")
    if isinstance(begun, Response):
        return begun
    sandbox, app, body = begun
    wrapper = body.get("card")
    if not isinstance(wrapper, dict) or wrapper.get("type") != "card_json":
        return fail(INVALID_PARAM, "card.type must be card_json")
    card_data = _parse_card(wrapper.get("data"))
    if isinstance(card_data, Response):
        return card_data
    card = _card_op(sandbox, app, request.path_params["card_id"], body)
    if isinstance(card, Response):
        return card
    card.sequence = int(body["sequence"])
    card.data = card_data
    sandbox.touch()
    return ok({})


_C = "/open-apis/cardkit/v1/cards"
routes = [
    Route(_C, create_card, methods=["POST"]),
    Route(_C + "/{card_id}", update_card, methods=["PUT"]),
    Route(_C + "/{card_id}/settings", settings, methods=["PATCH"]),
    Route(_C + "/{card_id}/elements/{element_id}/content", element_content, methods=["PUT"]),
]

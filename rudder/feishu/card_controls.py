"""The reply card's look and its buttons: Stop while the run works, New conversation after.

A button's `value` comes back to Rudder in the `card.action.trigger` callback (reference §4,
the callback table). It names the action and the run, and carries an HMAC over both and the
bot's integration, keyed from Rudder's secrets key: a value copied from another bot's card, or
edited to name another run, does not verify (the handler also checks that the run belongs to
the bot and the chat the press came from).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from rudder import texts

ELEMENT_ID = "streaming_content"
FOOTER_ID = "rudder_footer"
STOP = "stop"
NEW = "new"
ACTIONS = frozenset({STOP, NEW})
SIGNATURE_CHARS = 32
SUMMARY_CHARS = 60
_PURPOSE = b"rudder card button v1"


def _subkey(key: bytes) -> bytes:
    return hmac.new(key, _PURPOSE, hashlib.sha256).digest()


def _mac(key: bytes, action: str, run_id: str, integration_id: str) -> str:
    message = "\x1f".join((action, run_id, integration_id)).encode()
    return hmac.new(_subkey(key), message, hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]


def button_value(key: bytes, action: str, run_id: str, integration_id: str) -> dict[str, str]:
    return {"rudder": action, "run": run_id, "sig": _mac(key, action, run_id, integration_id)}


def read_value(
    value: object, keys: tuple[bytes, ...], integration_id: str
) -> tuple[str, str] | None:
    """(action, run_id) when `value` is a button of this bot signed with one of `keys`."""
    if not isinstance(value, dict):
        return None
    action, run_id, sig = value.get("rudder"), value.get("run"), value.get("sig")
    if not isinstance(action, str) or action not in ACTIONS:
        return None
    if not isinstance(run_id, str) or not isinstance(sig, str):
        return None
    if not 0 < len(run_id) <= 64:
        return None
    for key in keys:
        if hmac.compare_digest(_mac(key, action, run_id, integration_id), sig):
            return str(action), run_id
    return None


def _button(label: str, value: dict[str, str], kind: str, name: str) -> dict[str, Any]:
    # JSON 2.0 buttons answer through `behaviors` (type callback); `name` tells them apart.
    return {
        "tag": "button",
        "name": name,
        "element_id": name,
        "text": {"tag": "plain_text", "content": label},
        "type": kind,
        "size": "small",
        "behaviors": [{"type": "callback", "value": value}],
    }


def summary_of(text: str) -> str:
    line = " ".join(text.split())
    return line[:SUMMARY_CHARS] + ("…" if len(line) > SUMMARY_CHARS else "")


def working_card(text: str, stop: dict[str, str] | None) -> dict[str, Any]:
    """CardKit JSON 2.0 in streaming mode: the text element, and Stop while the run works."""
    elements: list[dict[str, Any]] = [
        {"tag": "markdown", "content": text, "element_id": ELEMENT_ID}
    ]
    if stop is not None:
        elements.append(_button(texts.CARD_BUTTON_STOP, stop, "danger", "rudder_stop"))
    return {
        "schema": "2.0",
        "config": {
            "streaming_mode": True,
            "update_multi": True,  # must not be false for CardKit updates (300302)
            "summary": {"content": texts.REPLY_CARD_SUMMARY},
        },
        "body": {"elements": elements},
    }


def final_card(text: str, footer: str | None, new: dict[str, str] | None) -> dict[str, Any]:
    """The card once its run ended: the text, a compact footer, and New conversation (on the
    last card of a reply). Streaming is off, so nothing on it suggests work in progress."""
    elements: list[dict[str, Any]] = [
        {"tag": "markdown", "content": text, "element_id": ELEMENT_ID}
    ]
    if footer:
        elements.append(
            {"tag": "markdown", "content": footer, "text_size": "notation", "element_id": FOOTER_ID}
        )
    if new is not None:
        elements.append(_button(texts.CARD_BUTTON_NEW, new, "default", "rudder_new"))
    return {
        "schema": "2.0",
        "config": {
            "streaming_mode": False,
            "update_multi": True,
            "summary": {"content": summary_of(text or footer or "")},
        },
        "body": {"elements": elements},
    }


def is_working(card: object) -> bool:
    """True for a card that still shows a run at work (streaming, or a Stop button)."""
    if not isinstance(card, dict):
        return False
    config = card.get("config")
    if isinstance(config, dict) and config.get("streaming_mode"):
        return True
    body = card.get("body")
    elements = body.get("elements") if isinstance(body, dict) else None
    return isinstance(elements, list) and any(
        isinstance(e, dict) and e.get("name") == "rudder_stop" for e in elements
    )

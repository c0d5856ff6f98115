"""Run the official SDK's long-connection client against a sandbox (a subprocess: it blocks).

Usage: python lark_ws_worker.py URL APP_ID APP_SECRET
Prints one JSON line per received im.message.receive_v1 event, and per card.action.trigger
callback (answered with a toast naming the pressed value and a card saying who pressed).
"""

from __future__ import annotations

import json
import sys

import lark_oapi as lark
from lark_oapi.api.im.v1 import P2ImMessageReceiveV1
from lark_oapi.event.callback.model.p2_card_action_trigger import (
    P2CardActionTrigger,
    P2CardActionTriggerResponse,
)


def main() -> None:
    url, app_id, app_secret = sys.argv[1:4]

    def on_message(data: P2ImMessageReceiveV1) -> None:
        message = data.event.message
        line = {
            "event_id": data.header.event_id,
            "token": data.header.token,
            "message_id": message.message_id,
            "chat_type": message.chat_type,
            "content": message.content,
            "sender_open_id": data.event.sender.sender_id.open_id,
        }
        print(json.dumps(line), flush=True)

    def on_card(data: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        event = data.event
        line = {
            "callback": True,
            "event_id": data.header.event_id,
            "open_id": event.operator.open_id,
            "value": event.action.value,
            "message_id": event.context.open_message_id,
            "chat_id": event.context.open_chat_id,
        }
        print(json.dumps(line), flush=True)
        card = {"schema": "2.0", "body": {"elements": [
            {"tag": "markdown", "content": f"pressed by {event.operator.open_id}"}]}}  # fmt: skip
        return P2CardActionTriggerResponse(
            {
                "toast": {"type": "success", "content": f"pressed {event.action.value}"},
                "card": {"type": "raw", "data": card},
            }
        )

    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(on_message)
        .register_p2_card_action_trigger(on_card)
        .build()
    )
    client = lark.ws.Client(
        app_id, app_secret, event_handler=handler, domain=url, log_level=lark.LogLevel.WARNING
    )
    client.start()


if __name__ == "__main__":
    main()

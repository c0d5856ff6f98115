"""Run the official SDK's long-connection client against a sandbox (a subprocess: it blocks).

Usage: python lark_ws_worker.py URL APP_ID APP_SECRET
Prints one JSON line per received im.message.receive_v1 event.
"""

from __future__ import annotations

import json
import sys

import lark_oapi as lark
from lark_oapi.api.im.v1 import P2ImMessageReceiveV1


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

    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(on_message)
        .build()
    )
    client = lark.ws.Client(
        app_id, app_secret, event_handler=handler, domain=url, log_level=lark.LogLevel.WARNING
    )
    client.start()


if __name__ == "__main__":
    main()

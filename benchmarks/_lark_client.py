"""lark-oapi's long-connection client with an empty handler (what a user would otherwise pick).

Usage: python benchmarks/_lark_client.py URL APP_ID APP_SECRET. A subprocess because its
``start()`` blocks forever on a module-level event loop.
"""

from __future__ import annotations

import sys

import lark_oapi as lark
from lark_oapi.api.im.v1 import P2ImMessageReceiveV1


def main() -> None:
    url, app_id, app_secret = sys.argv[1:4]

    def on_message(data: P2ImMessageReceiveV1) -> None:
        return None

    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(on_message)
        .build()
    )
    client = lark.ws.Client(
        app_id, app_secret, event_handler=handler, domain=url, log_level=lark.LogLevel.ERROR
    )
    client.start()


if __name__ == "__main__":
    main()

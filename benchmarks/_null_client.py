"""A long-connection client that acks every event at once and does nothing else.

Usage: python benchmarks/_null_client.py URL APP_ID APP_SECRET. It shows the load generator's
own ceiling: the sandbox, the socket and the frame codec, without any recording.
"""

from __future__ import annotations

import asyncio
import sys

import httpx

from rudder.feishu.longconn import LongConnection
from rudder.feishu.longconn_state import ACK_OK, AckResult
from rudder.feishu.regions import Region


async def main() -> None:
    url, app_id, app_secret = sys.argv[1:4]

    async def on_event(payload: bytes) -> AckResult:
        return ACK_OK

    async with httpx.AsyncClient(trust_env=False) as http:
        conn = LongConnection(
            app_id, app_secret, Region.FEISHU, http=http, on_event=on_event, base_url_override=url
        )
        await conn.run()


if __name__ == "__main__":
    asyncio.run(main())

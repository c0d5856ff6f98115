"""Feishu's speech-to-text: one voice message's PCM in, its text out (file_recognize).

`POST /open-apis/speech_to_text/v1/speech/file_recognize`, tenant token, scope
`speech_to_text:speech`, body `{"speech": {"speech": "<base64 PCM>"}, "config": {"file_id":
"<16 of [A-Za-z0-9_]>", "format": "pcm", "engine_type": "16k_auto"}}` → `data.recognition_text`
(lark-oapi `speech_to_text.v1.speech.file_recognize`; the doc: audio up to 60 s, PCM only,
`16k_auto` = Chinese and English; 20 requests per second per tenant). Without the scope Feishu
answers its generic access denied, 99991672.
"""

from __future__ import annotations

import base64
import secrets

from rudder.feishu.client import BotClient
from rudder.feishu.errors import PERMISSION_DENIED, FeishuError

PATH = "/open-apis/speech_to_text/v1/speech/file_recognize"
SCOPE = "speech_to_text:speech"
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


def file_id() -> str:
    """The 16-character id Feishu wants for each recognised file (made by the caller)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


async def recognize(bot: BotClient, pcm: bytes) -> str:
    """The text of 16 kHz mono 16-bit PCM. Raises FeishuError (PERMISSION_DENIED without the
    scope)."""
    body = {
        "speech": {"speech": base64.b64encode(pcm).decode("ascii")},
        "config": {"file_id": file_id(), "format": "pcm", "engine_type": "16k_auto"},
    }
    answer = await bot.call("POST", PATH, json=body)
    data = answer.get("data")
    text = data.get("recognition_text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise FeishuError(-1, "no recognition_text in the answer", path=PATH)
    return text.strip()


__all__ = ["PATH", "PERMISSION_DENIED", "SCOPE", "file_id", "recognize"]

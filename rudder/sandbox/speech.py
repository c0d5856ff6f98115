"""Speech to text: `POST /open-apis/speech_to_text/v1/speech/file_recognize` (file_recognize).

Feishu's shapes (file_recognize doc; lark-oapi `speech_to_text.v1.speech.file_recognize`):
body `{"speech": {"speech": "<base64 PCM>"}, "config": {"file_id": "<16 chars of [A-Za-z0-9_]>",
"format": "pcm", "engine_type": "16k_auto"}}`, tenant token, scope `speech_to_text:speech`;
answer `{"code": 0, "data": {"recognition_text": "…"}}`. The doc says the API suits audio up to
60 s; `pcm` (16 kHz, 16-bit little-endian, mono) and `16k_auto` (Chinese and English) are the
only values it lists. Its error table was not at hand: the sandbox answers a missing scope with
Feishu's generic access denied (99991672, HTTP 400, the scope named in the message, as every
API does) and a malformed body, wrong format or engine, or more than 60 s of audio with the
generic field-validation code 99992402. A client should key on `code != 0`.

The sandbox does not recognise speech: it answers the text a test set for the app
(`POST /_sandbox/api/speech`), else a fixed sentence naming the audio's length, and records
every request it accepted (`GET /_sandbox/api/speech`) so tests can check what was sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rudder.sandbox.control import endpoint
from rudder.sandbox.core import SandboxError
from rudder.sandbox.envelope import access_denied, authorize, fail, read_json_object
from rudder.sandbox.envelope import ok as ok_response
from rudder.sandbox.speech_state import Recognition, SpeechState

if TYPE_CHECKING:
    from rudder.sandbox.core import Sandbox

API = "speech_to_text.speech.file_recognize"
PATH = "/open-apis/speech_to_text/v1/speech/file_recognize"
SCOPES = ("speech_to_text:speech",)
FIELD_INVALID = 99992402
SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2  # 16-bit mono
MAX_SECONDS = 60
_FILE_ID = re.compile(r"[A-Za-z0-9_]{16}")


def _invalid(detail: str) -> Response:
    return fail(FIELD_INVALID, f"field validation failed: {detail}")


def _pcm(body: dict[str, Any]) -> bytes | Response:
    speech = body.get("speech")
    raw = speech.get("speech") if isinstance(speech, dict) else None
    if not isinstance(raw, str) or not raw:
        return _invalid("speech.speech is required (base64 of the audio)")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return _invalid("speech.speech is not valid base64")
    if not data or len(data) % 2:
        return _invalid("speech.speech is not 16-bit PCM")
    if len(data) > MAX_SECONDS * BYTES_PER_SECOND:
        return _invalid(f"the audio is longer than {MAX_SECONDS} s")
    return data


async def file_recognize(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    app = authorize(sandbox, request, API)
    if isinstance(app, Response):
        return app
    if not app.has_scope(*SCOPES):
        return access_denied(SCOPES)
    body = await read_json_object(request)
    if body is None:
        return _invalid("the body must be a JSON object")
    config = body.get("config")
    if not isinstance(config, dict):
        return _invalid("config is required")
    file_id = config.get("file_id")
    if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
        return _invalid("config.file_id must be 16 letters, digits or underscores")
    if config.get("format") != "pcm":
        return _invalid("config.format must be pcm")
    if config.get("engine_type") != "16k_auto":
        return _invalid("config.engine_type must be 16k_auto")
    data = _pcm(body)
    if isinstance(data, Response):
        return data
    seconds = round(len(data) / BYTES_PER_SECOND, 3)
    speech: SpeechState = sandbox.speech
    text = speech.texts.get(app.app_id, speech.texts.get(None))
    if text is None:
        text = f"sandbox recognition of {seconds:g} s of audio"
    speech.recognitions.append(
        Recognition(
            app.app_id,
            file_id,
            len(data),
            seconds,
            hashlib.sha256(data).hexdigest(),
            text,
            sandbox.clock.now(),
        )
    )
    sandbox.touch()
    return ok_response({"recognition_text": text})


async def set_text(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    """POST /_sandbox/api/speech {"text": "…", "app_id"?: "cli_…"}: what recognition answers
    (for that app, or for every app); `"text": null` forgets it."""
    app_id = body.get("app_id")
    if app_id is not None:
        sandbox.app(app_id)
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise SandboxError("text must be a string or null")
    speech: SpeechState = sandbox.speech
    if text is None:
        speech.texts.pop(app_id, None)
    else:
        speech.texts[app_id] = text
    return {"app_id": app_id, "text": text}


async def list_recognitions(sandbox: Sandbox, request: Request, body: dict[str, Any]) -> Any:
    owner = request.query_params.get("app_id")
    speech: SpeechState = sandbox.speech
    items = [r.public() for r in speech.recognitions if not owner or r.app_id == owner]
    return {"items": items}


routes = [
    Route(PATH, file_recognize, methods=["POST"]),
    Route("/_sandbox/api/speech", endpoint(set_text), methods=["POST"]),
    Route("/_sandbox/api/speech", endpoint(list_recognitions), methods=["GET"]),
]

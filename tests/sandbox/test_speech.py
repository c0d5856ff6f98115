"""Speech to text through lark-oapi's own `speech_to_text.v1.speech.file_recognize`: the sandbox
takes the SDK's request as Feishu does and answers in the shape the SDK parses."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from tests.sandbox.conftest import SandboxHarness
from tests.sandbox.test_media import lark_client


def sdk_recognize(client: Any, pcm: bytes, file_id: str = "rudder_test_0001") -> Any:
    from lark_oapi.api.speech_to_text.v1 import (
        FileConfig,
        FileRecognizeSpeechRequest,
        FileRecognizeSpeechRequestBody,
        Speech,
    )

    body = (
        FileRecognizeSpeechRequestBody.builder()
        .speech(Speech.builder().speech(base64.b64encode(pcm).decode()).build())
        .config(FileConfig.builder().file_id(file_id).format("pcm").engine_type("16k_auto").build())
        .build()
    )
    request = FileRecognizeSpeechRequest.builder().request_body(body).build()
    return client.speech_to_text.v1.speech.file_recognize(request)


async def test_the_sdk_recognizes_pcm_and_reads_the_sandboxs_errors(
    sandbox: SandboxHarness,
) -> None:
    app = await sandbox.create_app()
    client = lark_client(sandbox, app)
    pcm = b"\x00\x01" * 16_000 * 2  # 2 s of 16 kHz 16-bit mono
    await sandbox.control("POST", "/speech", json={"text": "你好 hello", "app_id": app["app_id"]})
    answer = await asyncio.to_thread(sdk_recognize, client, pcm)
    assert answer.success(), (answer.code, answer.msg)
    assert answer.data.recognition_text == "你好 hello"
    (sent,) = (await sandbox.control("GET", "/speech"))["items"]
    assert sent["file_id"] == "rudder_test_0001" and sent["seconds"] == 2.0

    too_long = await asyncio.to_thread(sdk_recognize, client, b"\x00\x01" * 16_000 * 61)
    bad_id = await asyncio.to_thread(sdk_recognize, client, pcm, "not-16-chars")
    assert (too_long.code, bad_id.code) == (99992402, 99992402)

    limited = await sandbox.control(
        "POST", "/apps", json={"name": "Deaf", "scopes": ["im:message"]}
    )
    denied = await asyncio.to_thread(sdk_recognize, lark_client(sandbox, limited), pcm)
    assert denied.code == 99991672 and "speech_to_text:speech" in denied.msg

"""Voice messages through Feishu's speech-to-text (sandbox): the transcript reaches the agent in
its message and on the attachment; without the permission the audio still does, and the
Integrations tab says once which permission to add."""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Attachment
from rudder.media import speech as media_speech
from rudder.media import voice
from tests.conftest import FeishuRig
from tests.media.support import media_chat
from tests.media.voice_audio import voice_note

SCOPE = "speech_to_text:speech"


async def _panel(rig: FeishuRig, agent_id: str) -> str:
    answer = await rig.client.get(
        f"/agents/{agent_id}/integrations/panel", headers={"HX-Request": "true"}
    )
    return answer.text


async def test_a_voice_note_reaches_the_agent_with_its_transcript(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    await rig.control("POST", "/speech", json={"text": "book the big room for Friday"})
    note = voice_note(2.0)
    await chat.send("audio", note, duration=2000)
    row = await chat.routed_row()
    assert row["outcome"] == "processed", row
    assert "voice.opus transcribed" in row["reason"]
    text = await chat.wait_bot_text("transcript=book the big room for Friday")
    assert f"voice.opus audio/ogg {hashlib.sha256(note).hexdigest()}" in text
    assert "prompt: [voice message]\n(Voice message transcript: book the big room for Friday)" in (
        text
    )
    # What Feishu was sent: 2 s of 16 kHz mono 16-bit PCM, under a 16-character file id.
    (sent,) = (await rig.control("GET", "/speech"))["items"]
    assert sent["app_id"] == chat.app["app_id"]
    assert abs(sent["seconds"] - 2.0) < 0.1 and sent["size"] % 2 == 0
    assert len(sent["file_id"]) == 16
    async with rig.services.sessions() as session:
        (stored,) = list(await session.scalars(select(Attachment)))
    assert stored.transcript == "book the big room for Friday"
    assert stored.kind == "audio" and stored.sha256 == hashlib.sha256(note).hexdigest()
    # No permission trouble: no notice in the tab.
    assert "speech-hint" not in await _panel(rig, chat.agent["id"])


async def test_without_the_permission_the_file_still_arrives_and_the_tab_says_so_once(
    rig: FeishuRig,
) -> None:
    chat = await media_chat(rig)
    scopes = ["im:message", "im:message:send_as_bot", "im:resource", "contact:user.base:readonly"]
    await rig.control("PATCH", f"/apps/{chat.app['app_id']}", json={"scopes": scopes})
    note = voice_note(1.0)
    await chat.send("audio", note, duration=1000)
    row = await chat.routed_row()
    assert row["outcome"] == "processed", row
    assert "not transcribed: " + texts.MEDIA_SPEECH_NO_PERMISSION in row["reason"]
    text = await chat.wait_bot_text(hashlib.sha256(note).hexdigest())
    assert "transcript=" not in text
    assert (
        texts.MEDIA_NOT_TRANSCRIBED_FOR_AGENT.format(reason=texts.MEDIA_SPEECH_NO_PERMISSION)
        in text
    )
    panel = await _panel(rig, chat.agent["id"])
    assert 'data-testid="speech-hint"' in panel and SCOPE in panel
    # A second voice note: not sent to Feishu again (the denial stands), not logged again.
    await chat.send("audio", voice_note(1.0), duration=1000)
    assert (await chat.routed_row())["outcome"] == "processed"
    async with rig.services.sessions() as session:
        denied = list(
            await session.scalars(
                select(ActivityLog).where(ActivityLog.action == media_speech.DENIED)
            )
        )
    assert len(denied) == 1 and denied[0].details["scope"] == SCOPE
    assert (await rig.control("GET", "/speech"))["items"] == []
    assert (await _panel(rig, chat.agent["id"])).count('data-testid="speech-hint"') == 1

    # The permission is added; once the pause is over the next voice note is transcribed and
    # the notice goes away.
    await rig.control("PATCH", f"/apps/{chat.app['app_id']}", json={"scopes": None})
    media_speech._denied_at.clear()
    await chat.send("audio", voice_note(1.0), duration=1000)
    assert "transcribed" in (await chat.routed_row())["reason"]
    assert 'data-testid="speech-hint"' not in await _panel(rig, chat.agent["id"])


async def test_a_voice_note_over_60_s_is_handed_over_untranscribed(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    note = voice_note(61.0)
    await chat.send("audio", note, duration=61_000)
    row = await chat.routed_row()
    assert row["outcome"] == "processed"
    assert "longer than 60 s" in row["reason"]
    await chat.wait_bot_text(hashlib.sha256(note).hexdigest())
    assert (await rig.control("GET", "/speech"))["items"] == []


async def test_audio_that_is_not_opus_is_handed_over_untranscribed(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    fake = b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead" + b"\x01" * 300
    await chat.send("audio", fake, duration=1500)
    row = await chat.routed_row()
    assert row["outcome"] == "processed"
    assert "not transcribed: the audio could not be decoded" in row["reason"]
    await chat.wait_bot_text(hashlib.sha256(fake).hexdigest())


def test_the_decoder_gives_16_khz_mono_pcm_of_the_notes_length(tmp_path: Path) -> None:
    source = tmp_path / "voice.opus"
    source.write_bytes(voice_note(3.0))
    pcm = voice.to_pcm(source)
    assert abs(len(pcm) / voice.BYTES_PER_SECOND - 3.0) < 0.05


async def test_the_sandbox_answers_file_recognize_with_feishus_shapes_and_errors(
    rig: FeishuRig,
) -> None:
    app = await rig.control("POST", "/apps", json={"name": "Ears"})
    token = (
        await rig.sb.post(
            "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": app["app_id"], "app_secret": app["app_secret"]},
        )
    ).json()["tenant_access_token"]
    pcm = b"\x01\x00" * 16_000  # 1 s

    async def call(body: object, bearer: str = token) -> httpx.Response:
        return await rig.sb.post(
            "/open-apis/speech_to_text/v1/speech/file_recognize",
            json=body,
            headers={"Authorization": f"Bearer {bearer}"},
        )

    def body(data: bytes = pcm, **config: str) -> dict[str, object]:
        base = {"file_id": "abcdefgh12345678", "format": "pcm", "engine_type": "16k_auto"}
        return {
            "speech": {"speech": base64.b64encode(data).decode()},
            "config": {**base, **config},
        }

    good = await call(body())
    assert good.status_code == 200
    assert good.json() == {
        "code": 0,
        "msg": "success",
        "data": {"recognition_text": "sandbox recognition of 1 s of audio"},
    }
    for bad in (
        body(file_id="short"),
        body(format="opus"),
        body(engine_type="8k_zh"),
        body(b"\x01\x00" * 16_000 * 61),
        body(b"\x01"),
        {"speech": {}, "config": body()["config"]},
    ):
        answer = await call(bad)
        assert answer.status_code == 400 and answer.json()["code"] == 99992402, answer.text
    assert (await call(body(), bearer="t-forged")).json()["code"] == 99991663
    await rig.control("PATCH", f"/apps/{app['app_id']}", json={"scopes": ["im:message"]})
    denied = await call(body())
    assert denied.json()["code"] == 99991672 and SCOPE in denied.json()["msg"]


async def test_an_audio_message_that_is_not_ogg_is_not_decoded(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 200
    await chat.send("audio", wav, duration=1000)
    row = await chat.routed_row()
    assert "not transcribed: " + texts.MEDIA_SPEECH_NOT_OGG in row["reason"]
    await chat.wait_bot_text(hashlib.sha256(wav).hexdigest())
    assert (await rig.control("GET", "/speech"))["items"] == []


def test_without_the_decoder_the_reason_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "voice.opus"
    source.write_bytes(voice_note(1.0))
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    assert not voice.decoder_available()
    with pytest.raises(voice.NotTranscribable, match=r"rudder\[voice\]"):
        voice.to_pcm(source)


async def test_a_feishu_failure_leaves_the_voice_note_untranscribed(rig: FeishuRig) -> None:
    chat = await media_chat(rig)
    await rig.control(
        "POST",
        "/faults",
        json={
            "kind": "fail_api",
            "api": "speech_to_text.speech.file_recognize",
            "code": 99992402,
            "msg": "field validation failed",
            "app_id": chat.app["app_id"],
        },
    )
    note = voice_note(1.0)
    await chat.send("audio", note, duration=1000)
    row = await chat.routed_row()
    assert row["outcome"] == "processed"
    failed = texts.MEDIA_SPEECH_FAILED.format(detail="code 99992402")
    assert "not transcribed: " + failed in row["reason"]
    await chat.wait_bot_text(hashlib.sha256(note).hexdigest())
    # Not a permission problem: the tab has no notice.
    assert "speech-hint" not in await _panel(rig, chat.agent["id"])

"""Webhook decoding: AES, signature, token, size, challenge — and agreement with the official SDK."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rudder.feishu.webhook_codec import (
    MAX_BODY_BYTES,
    DecryptError,
    WebhookChallenge,
    WebhookEvent,
    WebhookRejected,
    WebhookResult,
    decrypt,
    encrypt,
    parse_webhook,
    sign,
    signature_matches,
)

KEY = "enc-key-0123"
TOKEN = "verif-token-abc"
NOW = 1_760_000_000.0


def event(token: str = TOKEN, text: str = "hi") -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": "ev_1",
            "event_type": "im.message.receive_v1",
            "create_time": "1760000000000",
            "token": token,
            "app_id": "cli_a",
            "tenant_key": "t",
        },
        "event": {"message": {"message_id": "om_1", "content": json.dumps({"text": text})}},
    }


def signed(
    body: bytes, key: str = KEY, timestamp: str = str(int(NOW)), nonce: str = "n0nce"
) -> dict[str, str]:
    return {
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": sign(timestamp, nonce, key, body),
    }


def encrypted(payload: dict[str, Any], key: str = KEY) -> bytes:
    return json.dumps({"encrypt": encrypt(key, json.dumps(payload).encode())}).encode()


def parse(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    key: str | None = KEY,
    token: str | None = TOKEN,
    max_age_s: int | None = 300,
) -> WebhookResult:
    return parse_webhook(
        body, headers or {}, encrypt_key=key, verification_token=token, max_age_s=max_age_s, now=NOW
    )


def rejected(result: WebhookResult, status: int) -> str:
    assert isinstance(result, WebhookRejected), result
    assert result.status == status, result
    return result.reason


# -- AES ------------------------------------------------------------------------------------------


def test_official_test_vector() -> None:
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"


@given(key=st.text(max_size=64), plaintext=st.binary(max_size=2048))
def test_encrypt_decrypt_round_trip(key: str, plaintext: bytes) -> None:
    assert decrypt(key, encrypt(key, plaintext)) == plaintext


@settings(deadline=None)  # the first call imports lark_oapi, which takes a while
@given(key=st.text(min_size=1, max_size=40), text=st.text(max_size=500))
def test_the_official_sdk_decrypts_what_we_encrypt(key: str, text: str) -> None:
    from lark_oapi.core.utils.decryptor import AESCipher  # test-only: the reference implementation

    assert AESCipher(key).decrypt_str(encrypt(key, text.encode())) == text


@pytest.mark.parametrize(
    "blob", ["not base64!", "", "AAAA", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk"]
)
def test_undecryptable_input_raises_decrypt_error(blob: str) -> None:
    with pytest.raises(DecryptError):
        decrypt("test key", blob)


def test_wrong_key_is_a_decrypt_error_or_garbage() -> None:
    blob = encrypt("right", b'{"a":1}')
    with contextlib.suppress(DecryptError):
        assert decrypt("wrong", blob) != b'{"a":1}'


def test_agrees_with_the_sandbox_encryption() -> None:
    from rudder.sandbox.crypto import encrypt_body
    from rudder.sandbox.crypto import sign as sandbox_sign

    assert decrypt(KEY, encrypt_body(KEY, b"payload")) == b"payload"
    assert sign("1", "2", KEY, b"{}") == sandbox_sign("1", "2", KEY, b"{}")


# -- signature ------------------------------------------------------------------------------------


def test_signature_is_sha256_of_timestamp_nonce_key_body() -> None:
    import hashlib

    body = b'{"encrypt":"abc"}'
    expected = hashlib.sha256(b"1700000000" + b"nonce" + KEY.encode() + body).hexdigest()
    assert sign("1700000000", "nonce", KEY, body) == expected
    assert signature_matches("1700000000", "nonce", KEY, body, expected.upper())
    assert not signature_matches("1700000000", "nonce", KEY, body + b" ", expected)
    assert not signature_matches("1700000000", "nonce", KEY, body, "é" * 64)


# -- parse_webhook: events ------------------------------------------------------------------------


def test_encrypted_signed_event() -> None:
    body = encrypted(event())
    result = parse(body, signed(body))
    assert isinstance(result, WebhookEvent)
    assert result.event == event()


def test_header_names_are_case_insensitive() -> None:
    body = encrypted(event())
    headers = {k.lower(): v for k, v in signed(body).items()}
    assert isinstance(parse(body, headers), WebhookEvent)


def test_plain_event_without_encrypt_key() -> None:
    body = json.dumps(event()).encode()
    result = parse(body, key=None)
    assert isinstance(result, WebhookEvent) and result.event["header"]["event_id"] == "ev_1"


def test_v1_event_uses_the_top_level_token() -> None:
    v1 = {
        "uuid": "u1",
        "token": TOKEN,
        "ts": "1",
        "type": "event_callback",
        "event": {"type": "message"},
    }
    assert isinstance(parse(json.dumps(v1).encode(), key=None), WebhookEvent)
    v1["token"] = "other"
    rejected(parse(json.dumps(v1).encode(), key=None), 401)


def test_tampered_body_is_401() -> None:
    body = encrypted(event())
    headers = signed(body)
    tampered = encrypted(event(text="evil"))
    assert rejected(parse(tampered, headers), 401) == "signature mismatch"


def test_signature_with_another_key_is_401() -> None:
    body = encrypted(event())
    rejected(parse(body, signed(body, key="other")), 401)


def test_unsigned_event_is_401_when_an_encrypt_key_is_set() -> None:
    rejected(parse(encrypted(event())), 401)
    rejected(parse(json.dumps(event()).encode()), 401)


def test_unsigned_garbage_ciphertext_gets_the_same_answer_as_unsigned_events() -> None:
    bad_padding = json.dumps({"encrypt": encrypt("other key", b"x" * 40)}).encode()
    assert parse(bad_padding) == parse(encrypted(event()))


def test_wrong_token_is_401() -> None:
    body = encrypted(event(token="someone else"))
    assert rejected(parse(body, signed(body)), 401) == "verification token mismatch"
    plain = json.dumps(event(token="someone else")).encode()
    rejected(parse(plain, key=None), 401)


def test_no_token_configured_skips_the_check() -> None:
    body = json.dumps(event(token="anything")).encode()
    assert isinstance(parse(body, key=None, token=None), WebhookEvent)


def test_old_timestamp_is_401() -> None:
    body = encrypted(event())
    stale = signed(body, timestamp=str(int(NOW) - 301))
    assert "more than 300 s" in rejected(parse(body, stale), 401)
    future = signed(body, timestamp=str(int(NOW) + 301))
    rejected(parse(body, future), 401)
    rejected(parse(body, signed(body, timestamp="nan")), 401)
    assert isinstance(parse(body, stale, max_age_s=None), WebhookEvent)
    assert isinstance(parse(body, signed(body, timestamp=str(int(NOW) - 299))), WebhookEvent)


def test_over_one_mib_is_413() -> None:
    huge = b'{"a":"' + b"x" * MAX_BODY_BYTES + b'"}'
    rejected(parse(huge), 413)
    exactly = b" " * (MAX_BODY_BYTES - 2) + b"{}"
    rejected(parse(exactly, key=None, token=None), 400)  # at the cap: read, then judged


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\xff\xfe", b"[1,2]", b'"str"', b"{", b'{"schema":"2.0"}', b'{"header":{}}'],
)
def test_garbage_is_400(body: bytes) -> None:
    rejected(parse(body, key=None, token=None), 400)


def test_encrypted_body_without_a_key_is_400() -> None:
    rejected(parse(encrypted(event()), key=None), 400)


def test_signed_but_undecryptable_is_400() -> None:
    body = json.dumps({"encrypt": "not base64!"}).encode()
    rejected(parse(body, signed(body)), 400)


# -- parse_webhook: url_verification --------------------------------------------------------------


CHALLENGE = {"challenge": "ajls384kdjx98XX", "token": TOKEN, "type": "url_verification"}


def test_plain_url_verification() -> None:
    result = parse(json.dumps(CHALLENGE).encode(), key=None)
    assert result == WebhookChallenge("ajls384kdjx98XX")
    assert isinstance(result, WebhookChallenge)
    assert result.response_body() == {"challenge": "ajls384kdjx98XX"}


def test_encrypted_url_verification_needs_no_signature() -> None:
    assert parse(encrypted(CHALLENGE)) == WebhookChallenge("ajls384kdjx98XX")
    body = encrypted(CHALLENGE)
    assert parse(body, signed(body)) == WebhookChallenge("ajls384kdjx98XX")


def test_url_verification_with_wrong_token_is_401() -> None:
    rejected(parse(encrypted({**CHALLENGE, "token": "nope"})), 401)
    rejected(parse(json.dumps({**CHALLENGE, "token": "nope"}).encode(), key=None), 401)


def test_url_verification_without_challenge_is_400() -> None:
    rejected(
        parse(json.dumps({"type": "url_verification", "token": TOKEN}).encode(), key=None), 400
    )


def test_parse_is_fast_enough_for_the_one_second_rule() -> None:
    body = encrypted(CHALLENGE)
    started = time.perf_counter()
    for _ in range(100):
        parse(body)
    assert time.perf_counter() - started < 1.0

"""Webhook delivery, decoded: size cap, signature, AES-256-CBC, verification token, challenge (§7).

Pure functions over the raw body and headers; the HTTP route only forwards bytes and answers.
Order of checks, and why:

1. Size (1 MiB) and JSON shape, before any crypto work.
2. The signature over the *raw* body, before decrypting: a CBC decryptor that answers differently
   for bad padding is a padding oracle, so unauthenticated ciphertext is never told apart.
3. Decrypt, then the verification token, then url_verification vs event.

Feishu does not sign url_verification (the py SDK never checks it there), so with an Encrypt Key
set an unsigned body is accepted only if it decrypts to a url_verification whose token matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "MAX_BODY_BYTES",
    "DecryptError",
    "WebhookChallenge",
    "WebhookEvent",
    "WebhookRejected",
    "WebhookResult",
    "decrypt",
    "encrypt",
    "parse_webhook",
    "sign",
    "signature_matches",
]

MAX_BODY_BYTES = 1 << 20  # our cap; Feishu's events are far smaller (§6.7)
HEADER_TIMESTAMP = "x-lark-request-timestamp"
HEADER_NONCE = "x-lark-request-nonce"
HEADER_SIGNATURE = "x-lark-signature"
_BLOCK = 16


class DecryptError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WebhookChallenge:
    """Answer HTTP 200 ``{"challenge": challenge}`` in plaintext, within 1 s (§7.1)."""

    challenge: str

    def response_body(self) -> dict[str, str]:
        return {"challenge": self.challenge}


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified, decrypted event envelope (schema 2.0, or a v1 ``event_callback``)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookRejected:
    status: int  # 400 malformed, 401 not authentic, 413 too large
    reason: str  # for the log; say little to the caller


WebhookResult = WebhookChallenge | WebhookEvent | WebhookRejected


def _key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode()).digest()


def encrypt(encrypt_key: str, plaintext: bytes, iv: bytes | None = None) -> str:
    """base64(iv + AES-256-CBC(SHA256(encrypt_key), PKCS7(plaintext))), as Feishu sends (§7.3)."""
    iv = os.urandom(_BLOCK) if iv is None else iv
    if len(iv) != _BLOCK:
        raise ValueError("iv must be 16 bytes")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def decrypt(encrypt_key: str, encrypted: str) -> bytes:
    try:
        blob = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("not base64") from None
    if len(blob) < 2 * _BLOCK or len(blob) % _BLOCK:
        raise DecryptError("not a whole number of AES blocks")
    iv, ciphertext = blob[:_BLOCK], blob[_BLOCK:]
    decryptor = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptError("bad padding (wrong Encrypt Key?)") from None


def sign(timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes) -> str:
    """X-Lark-Signature: hex(SHA256(timestamp + nonce + encrypt_key + raw body)) (§7.4)."""
    digest = hashlib.sha256((timestamp + nonce + encrypt_key).encode())
    digest.update(raw_body)
    return digest.hexdigest()


def signature_matches(
    timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes, signature: str
) -> bool:
    expected = sign(timestamp, nonce, encrypt_key, raw_body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def parse_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    *,
    encrypt_key: str | None,
    verification_token: str | None,
    max_age_s: int | None,
    now: float,
) -> WebhookResult:
    """Decide what one webhook POST is. ``now`` is Unix seconds (for the timestamp age check)."""
    if len(raw_body) > MAX_BODY_BYTES:
        return WebhookRejected(413, f"body of {len(raw_body)} bytes is over the 1 MiB cap")
    body = _json_object(raw_body)
    if body is None:
        return WebhookRejected(400, "body is not a JSON object")
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(HEADER_SIGNATURE)
    timestamp = lowered.get(HEADER_TIMESTAMP, "")
    nonce = lowered.get(HEADER_NONCE, "")

    if max_age_s is not None and timestamp:
        sent_at = _float(timestamp)
        if sent_at is None or not abs(now - sent_at) <= max_age_s:  # NaN fails too
            return WebhookRejected(
                401, f"request timestamp {timestamp!r} is more than {max_age_s} s away"
            )

    signed = False
    if encrypt_key and signature is not None:
        if not signature_matches(timestamp, nonce, encrypt_key, raw_body, signature):
            return WebhookRejected(401, "signature mismatch")
        signed = True

    if "encrypt" in body:
        if not encrypt_key:
            return WebhookRejected(400, "encrypted body, but no Encrypt Key is configured")
        encrypted = body["encrypt"]
        plain = _decrypt_object(encrypt_key, encrypted) if isinstance(encrypted, str) else None
        if plain is None:
            if not signed:
                return WebhookRejected(401, _UNSIGNED)  # same answer as below: no padding oracle
            return WebhookRejected(400, "encrypted body does not decrypt to a JSON object")
        body = plain

    is_challenge = body.get("type") == "url_verification"
    if encrypt_key and not signed and not is_challenge:
        return WebhookRejected(401, _UNSIGNED)

    if verification_token and not _token_matches(body, verification_token):
        return WebhookRejected(401, "verification token mismatch")

    if is_challenge:
        challenge = body.get("challenge")
        if not isinstance(challenge, str):
            return WebhookRejected(400, "url_verification without a challenge")
        return WebhookChallenge(challenge)
    if not _looks_like_event(body):
        return WebhookRejected(400, "neither an event nor a url_verification")
    return WebhookEvent(body)


_UNSIGNED = "unsigned request (an Encrypt Key is set, so Feishu signs every event)"


def _token_matches(body: dict[str, Any], expected: str) -> bool:
    # Schema 2.0 carries it in header.token; v1 events and url_verification at the top (§7.2).
    header = body.get("header")
    if body.get("schema") == "2.0" and isinstance(header, dict):
        token = header.get("token")
    else:
        token = body.get("token")
    if not isinstance(token, str):
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def _looks_like_event(body: dict[str, Any]) -> bool:
    header = body.get("header")
    if isinstance(header, dict):
        return isinstance(header.get("event_type"), str)
    return body.get("type") == "event_callback" and isinstance(body.get("event"), dict)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a body of a few thousand nested brackets (well under the size cap)
        # exhausts the parser's stack; it is malformed input, not a server fault.
        return None
    return value if isinstance(value, dict) else None


def _decrypt_object(encrypt_key: str, encrypted: str) -> dict[str, Any] | None:
    try:
        return _json_object(decrypt(encrypt_key, encrypted))
    except DecryptError:
        return None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None

"""Secrets at rest: AES-256-GCM, additional data bound to the row, key from env or a 0600 file.

Stored form: `nonce(12) || ciphertext+tag`, with the key id kept beside it so keys can rotate.
The AAD names the table, the row id and the purpose, so a ciphertext copied into another row
(or another column) fails to decrypt instead of leaking a secret under the wrong name.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets as pysecrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE_NAME = "secrets.key"
NONCE_BYTES = 12


class SecretsKeyError(Exception):
    pass


class SecretDecryptError(Exception):
    pass


def _decode_key(raw: str) -> bytes:
    text = raw.strip()
    candidates: list[bytes] = []
    try:
        candidates.append(bytes.fromhex(text))
    except ValueError:
        pass
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            candidates.append(decode(text + "=" * (-len(text) % 4)))
        except ValueError:  # binascii.Error is a ValueError
            pass
    for key in candidates:
        if len(key) == 32:
            return key
    raise SecretsKeyError(
        "RUDDER_SECRETS_KEY must be 32 bytes written as base64 or hex; generate one with: "
        "python -c 'import secrets; print(secrets.token_hex(32))'"
    )


@dataclass(frozen=True, slots=True)
class SecretBox:
    key: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"rudder-key-id" + self.key).hexdigest()[:16]

    def encrypt(self, plaintext: str, aad: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext.encode(), aad.encode())

    def decrypt(self, blob: bytes, aad: str) -> str:
        if len(blob) < NONCE_BYTES + 16:
            raise SecretDecryptError("ciphertext is truncated")
        try:
            return (
                AESGCM(self.key)
                .decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
                .decode()
            )
        except InvalidTag as exc:
            raise SecretDecryptError(
                "secret cannot be decrypted with this key (wrong RUDDER_SECRETS_KEY, or moved row)"
            ) from exc


def load_secret_box(home: Path, env_key: str | None) -> SecretBox:
    """The key from RUDDER_SECRETS_KEY, else from `<home>/secrets.key`, created 0600 if absent."""
    if env_key:
        return SecretBox(_decode_key(env_key))
    path = home / KEY_FILE_NAME
    if path.exists():
        return SecretBox(_decode_key(path.read_text()))
    home.mkdir(parents=True, exist_ok=True)
    key = pysecrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(key).decode() + "\n")
    return SecretBox(key)


def secret_aad(table: str, row_id: str, purpose: str) -> str:
    return f"rudder:{table}:{row_id}:{purpose}"

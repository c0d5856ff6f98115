"""Secrets at rest: AES-256-GCM, additional data bound to the row, key from env or a 0600 file.

Stored form: `nonce(12) || ciphertext+tag`, with the key id kept beside it so keys can rotate.
The AAD names the table, the row id and the purpose, so a ciphertext copied into another row
(or another column) fails to decrypt instead of leaking a secret under the wrong name.

Rotation: `RUDDER_SECRETS_OLD_KEYS` (comma-separated) lists keys that may still decrypt rows
written before the current key; new writes always use the current key, and `rudder secrets
rotate` re-encrypts what is left under an old one (docs/security.md).
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

from rudder.config import ensure_home

KEY_FILE_NAME = "secrets.key"
NONCE_BYTES = 12
OLD_KEYS_ENV = "RUDDER_SECRETS_OLD_KEYS"


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


def key_id_of(key: bytes) -> str:
    """A public name of a key (stored beside each ciphertext); tells nothing about the key."""
    return hashlib.sha256(b"rudder-key-id" + key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SecretBox:
    key: bytes
    # Earlier keys, still accepted for decryption until `rudder secrets rotate` has run.
    old_keys: tuple[bytes, ...] = ()

    @property
    def key_id(self) -> str:
        return key_id_of(self.key)

    @property
    def key_ids(self) -> list[str]:
        """The current key's id first, then the old keys' ids."""
        return [key_id_of(k) for k in (self.key, *self.old_keys)]

    def key_for(self, key_id: str) -> bytes | None:
        for key in (self.key, *self.old_keys):
            if key_id_of(key) == key_id:
                return key
        return None

    def encrypt(self, plaintext: str, aad: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext.encode(), aad.encode())

    def decrypt(self, blob: bytes, aad: str, key_id: str | None = None) -> str:
        """Decrypt with the key named by `key_id` (the row's), or else with each configured key
        in turn, the current one first."""
        if len(blob) < NONCE_BYTES + 16:
            raise SecretDecryptError("ciphertext is truncated")
        if key_id is not None:
            key = self.key_for(key_id)
            if key is None:
                raise SecretDecryptError(
                    f"secret was encrypted with key id {key_id}, which is neither "
                    f"RUDDER_SECRETS_KEY nor one of {OLD_KEYS_ENV}"
                )
            keys: tuple[bytes, ...] = (key,)
        else:
            keys = (self.key, *self.old_keys)
        for key in keys:
            try:
                return _open(key, blob, aad)
            except InvalidTag:
                continue
        raise SecretDecryptError(
            "secret cannot be decrypted with this key (wrong RUDDER_SECRETS_KEY, or moved row)"
        )


def _open(key: bytes, blob: bytes, aad: str) -> str:
    return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode()).decode()


def parse_old_keys(raw: str | None) -> tuple[bytes, ...]:
    """`RUDDER_SECRETS_OLD_KEYS`: comma-separated keys, each written like RUDDER_SECRETS_KEY."""
    if not raw:
        return ()
    keys: list[bytes] = []
    for n, part in enumerate(p for p in raw.split(",") if p.strip()):
        try:
            keys.append(_decode_key(part))
        except SecretsKeyError:
            raise SecretsKeyError(
                f"{OLD_KEYS_ENV}: key {n + 1} is not 32 bytes written as base64 or hex"
            ) from None
    return tuple(keys)


def load_secret_box(
    home: Path, env_key: str | None, old_keys: str | None = None, *, create: bool = True
) -> SecretBox:
    """The key from RUDDER_SECRETS_KEY, else from `<home>/secrets.key`, created 0600 if absent
    (unless `create` is false). Old keys come from `old_keys`, else RUDDER_SECRETS_OLD_KEYS."""
    old = parse_old_keys(old_keys if old_keys is not None else os.environ.get(OLD_KEYS_ENV))
    if env_key:
        return SecretBox(_decode_key(env_key), old)
    path = home / KEY_FILE_NAME
    if path.exists():
        return SecretBox(_decode_key(path.read_text()), old)
    if not create:
        raise SecretsKeyError(f"no secrets key: set RUDDER_SECRETS_KEY (or keep one in {path})")
    ensure_home(home)
    key = pysecrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(key).decode() + "\n")
    return SecretBox(key, old)


def secret_aad(table: str, row_id: str, purpose: str) -> str:
    return f"rudder:{table}:{row_id}:{purpose}"

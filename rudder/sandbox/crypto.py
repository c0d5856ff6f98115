"""Webhook body encryption and signature, as the Open Platform does them (reference §7.3-7.4)."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def encrypt_body(encrypt_key: str, plaintext: bytes) -> str:
    """base64(iv + AES-256-CBC(key = SHA256(encrypt_key), PKCS7(plaintext)))."""
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(iv + ciphertext).decode("ascii")


def decrypt_body(encrypt_key: str, encrypted: str) -> bytes:
    key = hashlib.sha256(encrypt_key.encode()).digest()
    blob = base64.b64decode(encrypted)
    iv, ciphertext = blob[:16], blob[16:]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def sign(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """X-Lark-Signature: hex(SHA256(timestamp + nonce + encrypt_key + raw body))."""
    digest = hashlib.sha256()
    digest.update((timestamp + nonce + encrypt_key).encode())
    digest.update(body)
    return digest.hexdigest()

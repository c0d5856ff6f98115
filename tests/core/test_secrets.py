"""Secrets at rest: AES-256-GCM bound to their row, never returned by the API."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rudder.db.models import Secret
from rudder.domain import secret_store
from rudder.domain.secrets import SecretBox, SecretDecryptError, SecretsKeyError, load_secret_box
from rudder.services import Services
from tests.helpers import default_org_and_agent


def test_round_trip_and_aad_binding() -> None:
    box = SecretBox(os.urandom(32))
    blob = box.encrypt("hunter2", "rudder:secrets:a:value")
    assert b"hunter2" not in blob
    assert box.decrypt(blob, "rudder:secrets:a:value") == "hunter2"
    with pytest.raises(SecretDecryptError):
        box.decrypt(blob, "rudder:secrets:b:value")
    with pytest.raises(SecretDecryptError):
        SecretBox(os.urandom(32)).decrypt(blob, "rudder:secrets:a:value")


def test_key_file_is_generated_0600_and_reused(tmp_path: Path) -> None:
    box = load_secret_box(tmp_path, None)
    path = tmp_path / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_box(tmp_path, None).key == box.key


def test_env_key_formats(tmp_path: Path) -> None:
    key = os.urandom(32)
    assert load_secret_box(tmp_path, key.hex()).key == key
    with pytest.raises(SecretsKeyError, match="32 bytes"):
        load_secret_box(tmp_path, "too-short")


async def test_secret_api_never_returns_values(
    client: httpx.AsyncClient, services: Services
) -> None:
    org, _ = await default_org_and_agent(client)
    put = await client.put(
        f"/api/orgs/{org['id']}/secrets", json={"name": "OPENAI_KEY", "value": "sk-very-secret"}
    )
    assert put.status_code == 200
    assert "sk-very-secret" not in put.text
    listed = await client.get(f"/api/orgs/{org['id']}/secrets")
    assert "sk-very-secret" not in listed.text and "OPENAI_KEY" in listed.text

    async with services.sessions() as session, session.begin():
        row = await session.scalar(select(Secret).where(Secret.name == "OPENAI_KEY"))
        assert row is not None and b"sk-very-secret" not in row.ciphertext
        assert (
            await secret_store.get_secret_value(session, services.box, org["id"], "OPENAI_KEY")
            == "sk-very-secret"
        )
        # A ciphertext copied into another row does not decrypt there.
        twin = await secret_store.put_secret(session, services.box, org["id"], "OTHER", "x")
        twin.ciphertext = row.ciphertext
        with pytest.raises(SecretDecryptError):
            secret_store.reveal(services.box, twin)

    activity = await client.get(f"/api/orgs/{org['id']}/secrets")
    assert activity.status_code == 200

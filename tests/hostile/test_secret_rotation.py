"""Rotating RUDDER_SECRETS_KEY: `rudder secrets rotate` re-encrypts every stored secret under the
new key in one transaction, is idempotent, and a wrong key stops it with nothing changed.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from rudder.cli_secrets import secrets_app
from rudder.config import Settings
from rudder.db.models import Organization, SetupSession, utcnow
from rudder.db.models_core import Secret
from rudder.domain import secret_store
from rudder.domain.secrets import (
    SecretBox,
    SecretDecryptError,
    SecretsKeyError,
    key_id_of,
    parse_old_keys,
)
from rudder.services import Services
from tests.conftest import TEST_SECRETS_KEY
from tests.helpers import default_org_and_agent
from tests.hostile.conftest import count

OLD = bytes.fromhex(TEST_SECRETS_KEY)
NEW_HEX = secrets.token_hex(32)
NEW = bytes.fromhex(NEW_HEX)
VALUES = {"OPENAI_API_KEY": "sk-rot-" + "1" * 30, "GITHUB_TOKEN": "ghp_" + "2" * 36, "X": "3" * 12}
DEVICE_CODE = "device-code-" + "4" * 24


async def rudder_secrets(
    settings: Settings, tmp_path: Path, *args: str, key: str, old: str = ""
) -> Result:
    env = {
        "RUDDER_HOME": str(tmp_path / "cli-home"),
        "DATABASE_URL": settings.effective_database_url,
        "RUDDER_SECRETS_KEY": key,
        "RUDDER_SECRETS_OLD_KEYS": old,
    }
    # The command runs its own event loop, so it gets a thread of its own.
    return await asyncio.to_thread(CliRunner().invoke, secrets_app, list(args), env=env)


async def _seed(client: httpx.AsyncClient, services: Services) -> tuple[str, str]:
    """Three secrets under the test key, a pending setup and a finished one holding a device code."""
    org, agent = await default_org_and_agent(client)
    for name, value in VALUES.items():
        r = await client.put(f"/api/orgs/{org['id']}/secrets", json={"name": name, "value": value})
        assert r.status_code == 200, r.text
    async with services.sessions() as session, session.begin():
        ids = []
        for status in ("pending", "expired"):
            row = SetupSession(
                org_id=org["id"],
                agent_id=agent["id"],
                region="feishu",
                status=status,
                expires_at=utcnow() + timedelta(minutes=10),
            )
            session.add(row)
            await session.flush()
            row.device_code_ciphertext = services.box.encrypt(
                DEVICE_CODE, secret_store.device_code_aad(row.id)
            )
            ids.append(row.id)
    return ids[0], ids[1]


async def _stored(services: Services) -> dict[str, tuple[str, bytes]]:
    async with services.sessions() as session:
        rows = {r.id: (r.key_id, r.ciphertext) for r in await session.scalars(select(Secret))}
        for s in await session.scalars(select(SetupSession)):
            rows[s.id] = ("setup:" + s.status, s.device_code_ciphertext or b"")
    return rows


async def test_rotate_reencrypts_everything_and_is_idempotent(
    client: httpx.AsyncClient, services: Services, settings: Settings, tmp_path: Path
) -> None:
    pending, finished = await _seed(client, services)
    count("key rotation: stored secrets rotated", len(VALUES) + 1)

    result = await rudder_secrets(settings, tmp_path, "rotate", key=NEW_HEX, old=TEST_SECRETS_KEY)
    assert result.exit_code == 0, result.output
    assert "secrets: 3/3" in result.output  # progress
    assert "3 of 3 secret(s) were re-encrypted" in result.output
    assert "1 pending setup device code(s) were re-encrypted" in result.output
    for value in [*VALUES.values(), DEVICE_CODE, NEW_HEX, TEST_SECRETS_KEY]:
        assert value not in result.output

    new_box = SecretBox(NEW)
    async with services.sessions() as session:
        rows = list(await session.scalars(select(Secret)))
        assert {r.key_id for r in rows} == {key_id_of(NEW)}
        # The new key alone opens every secret; the old one no longer opens any.
        assert {r.name: secret_store.reveal(new_box, r) for r in rows} == VALUES
        for row in rows:
            with pytest.raises(SecretDecryptError):
                SecretBox(OLD).decrypt(row.ciphertext, f"rudder:secrets:{row.id}:value")
        setup = await session.get(SetupSession, pending)
        assert setup is not None and setup.device_code_ciphertext is not None
        aad = secret_store.device_code_aad(pending)
        assert new_box.decrypt(setup.device_code_ciphertext, aad) == DEVICE_CODE
        done = await session.get(SetupSession, finished)
        assert done is not None and done.device_code_ciphertext is None  # not kept around

    before = await _stored(services)
    again = await rudder_secrets(settings, tmp_path, "rotate", key=NEW_HEX, old=TEST_SECRETS_KEY)
    assert again.exit_code == 0, again.output
    assert "0 of 3 secret(s) were re-encrypted" in again.output
    assert await _stored(services) == before  # idempotent: not even re-encrypted with new nonces

    status = await rudder_secrets(settings, tmp_path, "status", key=NEW_HEX)
    assert status.exit_code == 0, status.output
    assert f"{key_id_of(NEW)}: 3 secret(s), current key" in status.output


async def test_a_wrong_key_stops_rotation_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, settings: Settings, tmp_path: Path
) -> None:
    pending, _ = await _seed(client, services)
    before = await _stored(services)
    wrong = secrets.token_hex(32)

    # The old key is not given (or a wrong one is): every row names a key that is not configured.
    for old in ("", wrong):
        result = await rudder_secrets(settings, tmp_path, "rotate", key=NEW_HEX, old=old)
        count("key rotation: wrong keys tried")
        assert result.exit_code == 1, result.output
        assert "Nothing was changed" in result.output
        assert key_id_of(OLD) in result.output  # names the key it needs
        assert "RUDDER_SECRETS_OLD_KEYS" in result.output
        assert await _stored(services) == before
        count("key rotation: wrong keys refused")

    # The secrets table would rotate, but the pending setup's device code is under a third key:
    # the whole rotation is rolled back, including the secrets already re-encrypted.
    async with services.sessions() as session, session.begin():
        setup = await session.get(SetupSession, pending)
        assert setup is not None
        setup.device_code_ciphertext = SecretBox(bytes.fromhex(wrong)).encrypt(
            DEVICE_CODE, secret_store.device_code_aad(pending)
        )
    before = await _stored(services)
    result = await rudder_secrets(settings, tmp_path, "rotate", key=NEW_HEX, old=TEST_SECRETS_KEY)
    count("key rotation: wrong keys tried")
    assert result.exit_code == 1, result.output
    assert f"Nothing was changed: the device code of pending setup session {pending}" in (
        result.output.replace("\n", " ")
    )
    assert await _stored(services) == before
    count("key rotation: wrong keys refused")

    # A dry run reports and changes nothing either; a malformed key is refused up front.
    async with services.sessions() as session, session.begin():
        setup = await session.get(SetupSession, pending)
        assert setup is not None
        setup.device_code_ciphertext = None
    before = await _stored(services)
    dry = await rudder_secrets(
        settings, tmp_path, "rotate", "--dry-run", key=NEW_HEX, old=TEST_SECRETS_KEY
    )
    assert dry.exit_code == 0, dry.output
    assert "3 of 3 secret(s) would be re-encrypted" in dry.output
    assert await _stored(services) == before
    bad = await rudder_secrets(settings, tmp_path, "rotate", key="not-a-key")
    assert bad.exit_code == 1 and "32 bytes" in bad.output


async def test_old_keys_still_decrypt_by_the_rows_key_id(services: Services) -> None:
    """Between a key change and the rotation, a server with the old keys reads every secret."""
    async with services.sessions() as session, session.begin():
        org_id = (await session.scalars(select(Organization.id))).first()
        assert org_id is not None
        await secret_store.put_secret(session, SecretBox(OLD), org_id, "A", "under-the-old-key")
    box = SecretBox(NEW, parse_old_keys(f"{TEST_SECRETS_KEY}, {secrets.token_hex(32)}"))
    async with services.sessions() as session, session.begin():
        assert await secret_store.get_secret_value(session, box, org_id, "A") == "under-the-old-key"
        row = await secret_store.put_secret(session, box, org_id, "B", "under-the-new-key")
        assert row.key_id == box.key_id  # writes always use the current key
        assert await secret_store.key_usage(session) == {key_id_of(OLD): 1, key_id_of(NEW): 1}
    # Without the old key, the row's key id says exactly what is missing.
    async with services.sessions() as session:
        with pytest.raises(SecretDecryptError, match=key_id_of(OLD)):
            await secret_store.get_secret_value(session, SecretBox(NEW), org_id, "A")
    with pytest.raises(SecretsKeyError, match="RUDDER_SECRETS_OLD_KEYS: key 2"):
        parse_old_keys(f"{TEST_SECRETS_KEY},nope")


def test_setup_sessions_use_the_device_code_aad_the_rotation_uses() -> None:
    from rudder.feishu.setup import _aad

    assert _aad("abc") == secret_store.device_code_aad("abc")

"""Named organization secrets, encrypted at rest; values never leave through the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Secret, SetupSession, new_id, utcnow
from rudder.domain.errors import NotFound
from rudder.domain.secrets import SecretBox, SecretDecryptError, secret_aad


def _aad(row_id: str) -> str:
    return secret_aad("secrets", row_id, "value")


def device_code_aad(setup_id: str) -> str:
    """The AAD of a setup session's device code; the same as rudder/feishu/setup.py's `_aad`."""
    return secret_aad("setup_sessions", setup_id, "device_code")


async def put_secret(
    session: AsyncSession, box: SecretBox, org_id: str, name: str, value: str
) -> Secret:
    row = await session.scalar(select(Secret).where(Secret.org_id == org_id, Secret.name == name))
    if row is None:
        row = Secret(id=new_id(), org_id=org_id, name=name, ciphertext=b"", key_id=box.key_id)
        session.add(row)
    row.ciphertext = box.encrypt(value, _aad(row.id))
    row.key_id = box.key_id
    row.updated_at = utcnow()
    await session.flush()
    return row


def reveal(box: SecretBox, row: Secret) -> str:
    # The row names its key, so a secret written before a rotation still opens with an old key.
    return box.decrypt(row.ciphertext, _aad(row.id), row.key_id)


async def get_secret_value(session: AsyncSession, box: SecretBox, org_id: str, name: str) -> str:
    row = await session.scalar(select(Secret).where(Secret.org_id == org_id, Secret.name == name))
    if row is None:
        raise NotFound(f"secret {name!r} does not exist in this organization")
    return reveal(box, row)


async def get_secret_by_id(session: AsyncSession, box: SecretBox, secret_id: str) -> str:
    row = await session.get(Secret, secret_id)
    if row is None:
        raise NotFound("secret does not exist")
    return reveal(box, row)


async def delete_secret(session: AsyncSession, secret_id: str | None) -> None:
    if secret_id is None:
        return
    row = await session.get(Secret, secret_id)
    if row is not None:
        await session.delete(row)


# -- key rotation ------------------------------------------------------------------------------


class RotationError(Exception):
    """Rotation cannot finish (a row under a key that is not configured, or a corrupt row);
    raised before anything is committed, so the caller rolls back and nothing changes."""


@dataclass
class RotationReport:
    secrets_total: int = 0
    secrets_reencrypted: int = 0
    setups_total: int = 0
    setups_reencrypted: int = 0
    setups_cleared: int = 0  # finished setups still holding a device code: dropped, not kept

    @property
    def changed(self) -> int:
        return self.secrets_reencrypted + self.setups_reencrypted + self.setups_cleared


Progress = Callable[[str, int, int], None]
PROGRESS_EVERY = 100


async def rotate_all(
    session: AsyncSession, box: SecretBox, progress: Progress | None = None
) -> RotationReport:
    """Re-encrypt every stored secret under `box.key`, decrypting each with the key its row names.

    Idempotent: rows already under the current key are only checked. Everything happens in the
    caller's transaction; on `RotationError` the caller rolls back and nothing has changed.
    """
    report = RotationReport()
    rows = list(await session.scalars(select(Secret).order_by(Secret.id).with_for_update()))
    report.secrets_total = len(rows)
    for n, row in enumerate(rows, 1):
        if _rotate_secret(box, row):
            report.secrets_reencrypted += 1
        if progress is not None and (n % PROGRESS_EVERY == 0 or n == len(rows)):
            progress("secrets", n, len(rows))
    setups = list(
        await session.scalars(
            select(SetupSession)
            .where(SetupSession.device_code_ciphertext.is_not(None))
            .order_by(SetupSession.id)
            .with_for_update()
        )
    )
    report.setups_total = len(setups)
    for n, setup in enumerate(setups, 1):
        outcome = _rotate_setup(box, setup)
        if outcome == "reencrypted":
            report.setups_reencrypted += 1
        elif outcome == "cleared":
            report.setups_cleared += 1
        if progress is not None and (n % PROGRESS_EVERY == 0 or n == len(setups)):
            progress("setup sessions", n, len(setups))
    await session.flush()
    return report


def _rotate_secret(box: SecretBox, row: Secret) -> bool:
    """True when the row was re-encrypted, False when it already was under the current key."""
    where = f"secret {row.name!r} (id {row.id}, organization {row.org_id})"
    key = box.key_for(row.key_id)
    if key is None:
        raise RotationError(
            f"{where} was encrypted with key id {row.key_id}, which is neither "
            f"RUDDER_SECRETS_KEY (id {box.key_id}) nor in RUDDER_SECRETS_OLD_KEYS; "
            "add the key it was written with to RUDDER_SECRETS_OLD_KEYS"
        )
    try:
        value = box.decrypt(row.ciphertext, _aad(row.id), row.key_id)
    except SecretDecryptError:
        raise RotationError(
            f"{where} does not decrypt with the key of id {row.key_id} (a corrupt or moved row)"
        ) from None
    if row.key_id == box.key_id:
        return False
    row.ciphertext = box.encrypt(value, _aad(row.id))
    row.key_id = box.key_id
    return True


def _rotate_setup(box: SecretBox, setup: SetupSession) -> str:
    blob = setup.device_code_ciphertext
    assert blob is not None
    if setup.status != "pending" and not (
        setup.status in ("failed", "cancelled") and setup.expires_at > utcnow()
    ):
        # Only a pending setup, or an abandoned one whose code may still be approved (see
        # rudder.feishu.setup), polls with its device code; a leftover one is a liability.
        setup.device_code_ciphertext = None
        return "cleared"
    aad = device_code_aad(setup.id)
    try:
        box.decrypt(blob, aad, box.key_id)
        return "current"
    except SecretDecryptError:
        pass
    try:
        value = box.decrypt(blob, aad)
    except SecretDecryptError:
        raise RotationError(
            f"the device code of pending setup session {setup.id} does not decrypt with "
            "RUDDER_SECRETS_KEY or any key in RUDDER_SECRETS_OLD_KEYS; add the key it was "
            "written with to RUDDER_SECRETS_OLD_KEYS"
        ) from None
    setup.device_code_ciphertext = box.encrypt(value, aad)
    return "reencrypted"


async def key_usage(session: AsyncSession) -> dict[str, int]:
    """How many stored secrets each key id encrypts (for `rudder secrets status`)."""
    rows = await session.execute(
        select(Secret.key_id, func.count()).group_by(Secret.key_id).order_by(Secret.key_id)
    )
    return {key_id: int(n) for key_id, n in rows.all()}

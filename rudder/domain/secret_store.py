"""Named organization secrets, encrypted at rest; values never leave through the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Secret, new_id, utcnow
from rudder.domain.errors import NotFound
from rudder.domain.secrets import SecretBox, secret_aad


def _aad(row_id: str) -> str:
    return secret_aad("secrets", row_id, "value")


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
    return box.decrypt(row.ciphertext, _aad(row.id))


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

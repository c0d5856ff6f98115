"""`rudder secrets …`: the master key of the secrets stored at rest, and its rotation.

    RUDDER_SECRETS_KEY=<new> RUDDER_SECRETS_OLD_KEYS=<old>[,<older>] rudder secrets rotate

re-encrypts every stored secret (the `secrets` table and the device codes of pending Feishu
setups) under the new key in one transaction. Run it again and it changes nothing. A row under a
key that is not configured stops the rotation with its name, and nothing is changed.
"""

from __future__ import annotations

import asyncio
import secrets as pysecrets
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.config import Settings
from rudder.domain import secret_store
from rudder.domain.secrets import SecretBox, SecretsKeyError, load_secret_box

secrets_app = typer.Typer(
    help="The key that encrypts stored secrets: status, rotation.", no_args_is_help=True
)
console = Console(soft_wrap=True)  # whole lines: ids and key ids must stay greppable
T = TypeVar("T")


def _box(settings: Settings) -> SecretBox:
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    # Never create a key here: rotating to a key nobody has written down would lose everything.
    return load_secret_box(settings.home_dir, key, create=False)


async def _in_transaction(
    settings: Settings, fn: Callable[[AsyncSession], Awaitable[T]], *, commit: bool = True
) -> T:
    from rudder.db.engine import create_nullpool_engine, session_factory

    engine = create_nullpool_engine(settings.effective_database_url)
    try:
        async with session_factory(engine)() as session:
            try:
                result = await fn(session)
            except BaseException:
                await session.rollback()
                raise
            if commit:
                await session.commit()
            else:
                await session.rollback()
            return result
    finally:
        await engine.dispose()


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/]")
    return typer.Exit(1)


def _progress(what: str, done: int, total: int) -> None:
    console.print(f"  {what}: {done}/{total}")


@secrets_app.command("rotate")
def rotate(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report, but change nothing.")
    ] = False,
) -> None:
    """Re-encrypt every stored secret under RUDDER_SECRETS_KEY.

    Rows written under an earlier key are decrypted with the key their row names, which must be
    RUDDER_SECRETS_KEY or one of RUDDER_SECRETS_OLD_KEYS (comma-separated).
    """
    settings = Settings()
    try:
        box = _box(settings)
    except SecretsKeyError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"Re-encrypting under key id {box.key_id}"
        + (f" (old keys: {', '.join(box.key_ids[1:])})" if box.old_keys else " (no old keys)")
    )

    async def run(session: AsyncSession) -> secret_store.RotationReport:
        return await secret_store.rotate_all(session, box, _progress)

    try:
        report = asyncio.run(_in_transaction(settings, run, commit=not dry_run))
    except secret_store.RotationError as exc:
        raise _fail(f"Nothing was changed: {exc}") from None
    verb = "would be" if dry_run else "were"
    console.print(
        f"[green]✓[/] {report.secrets_reencrypted} of {report.secrets_total} secret(s) {verb} "
        f"re-encrypted; {report.setups_reencrypted} pending setup device code(s) {verb} "
        f"re-encrypted, {report.setups_cleared} leftover one(s) {verb} dropped"
    )
    if dry_run:
        console.print("Dry run: nothing was changed.")
    elif box.old_keys:
        console.print(
            "Every row is now under the new key: remove RUDDER_SECRETS_OLD_KEYS from the "
            "server's environment."
        )


@secrets_app.command("status")
def status() -> None:
    """Which key ids encrypt the stored secrets, and whether each is configured."""
    settings = Settings()
    try:
        box = _box(settings)
    except SecretsKeyError as exc:
        raise _fail(str(exc)) from None
    usage = asyncio.run(_in_transaction(settings, secret_store.key_usage, commit=False))
    console.print(f"current key id: {box.key_id}")
    for key_id in box.key_ids[1:]:
        console.print(f"old key id:     {key_id}")
    if not usage:
        console.print("no stored secrets")
    for key_id, n in usage.items():
        if key_id == box.key_id:
            state = "current key"
        elif box.key_for(key_id) is not None:
            state = "old key: run `rudder secrets rotate`"
        else:
            state = "[red]not configured: these secrets cannot be read[/]"
        console.print(f"  {key_id}: {n} secret(s), {state}")


@secrets_app.command("generate-key")
def generate_key() -> None:
    """Print a new random key, for RUDDER_SECRETS_KEY."""
    typer.echo(pysecrets.token_hex(32))

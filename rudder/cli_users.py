"""`rudder user …`: people who sign in when RUDDER_DEPLOYMENT_MODE=authenticated."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.config import Settings, ensure_home
from rudder.db.models import Membership, Organization, User
from rudder.domain import auth, orgs

users_app = typer.Typer(help="Manage users who sign in (authenticated mode).", no_args_is_help=True)
console = Console()
T = TypeVar("T")


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    member = "member"


class CliError(Exception):
    """A user mistake: printed in red, exit status 1, no traceback."""


async def _with_session(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from rudder.db import migrate
    from rudder.db.engine import create_nullpool_engine, session_factory

    settings = Settings()
    ensure_home(settings.home_dir)
    engine = create_nullpool_engine(settings.effective_database_url)
    try:
        await migrate.upgrade(engine)
        async with session_factory(engine)() as session, session.begin():
            await orgs.bootstrap(session)
            return await fn(session)
    finally:
        await engine.dispose()


def _run(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_with_session(fn))
    except CliError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _read_password(password: str | None, from_stdin: bool) -> str:
    if password is not None and from_stdin:
        raise typer.BadParameter("use either --password or --password-stdin, not both")
    if from_stdin:
        # One line, so `printf '%s\n' "$PW" | rudder user …` and a here-string both work.
        value = sys.stdin.readline().rstrip("\r\n")
    elif password is not None:
        value = password
    else:
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(value) < auth.MIN_PASSWORD_LENGTH:
        raise typer.BadParameter(
            f"the password needs at least {auth.MIN_PASSWORD_LENGTH} characters"
        )
    return value


async def _find_org(session: AsyncSession, org: str | None) -> Organization:
    query = select(Organization).order_by(Organization.created_at)
    if org:
        query = query.where((Organization.slug == org) | (Organization.id == org))
    found = (await session.scalars(query)).first()
    if found is None:
        raise CliError(f"No organization {org!r}.")
    return found


PasswordOpt = Annotated[
    str | None,
    typer.Option(help="The password (visible in the process list; prefer --password-stdin)."),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]


@users_app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="The email to sign in with.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
    org: Annotated[
        str | None, typer.Option(help="Organization slug or id (default: the first one).")
    ] = None,
    role: Annotated[Role, typer.Option(help="Role in that organization.")] = Role.member,
    instance_admin: Annotated[
        bool,
        typer.Option(
            "--instance-admin",
            help="Also make them an instance admin (server-executing runtimes, new organizations).",
        ),
    ] = False,
) -> None:
    """Create a user with a password and add them to an organization."""
    secret = _read_password(password, password_stdin)
    address = auth.normalize_email(email)
    if "@" not in address.strip("@"):
        raise typer.BadParameter("enter a valid email address")

    async def run(session: AsyncSession) -> str:
        found = await _find_org(session, org)
        user = await session.scalar(select(User).where(User.email == address))
        if user is not None and user.password_hash:
            raise CliError(f"{address} already exists; use `rudder user set-password {address}`.")
        if user is None:
            user = User(email=address, name=name.strip() or address)
            session.add(user)
        user.password_hash = auth.hash_password(secret)
        if instance_admin:
            user.is_instance_admin = True
        await session.flush()
        member = await session.scalar(
            select(Membership).where(Membership.org_id == found.id, Membership.user_id == user.id)
        )
        if member is None:
            session.add(Membership(org_id=found.id, user_id=user.id, role=role.value))
        else:
            member.role, member.status = role.value, "active"
        admin = "; instance admin" if user.is_instance_admin else ""
        return f"{address} can sign in; {role.value} of {found.name} ({found.slug}){admin}"

    console.print(f"[green]✓[/] {_run(run)}")


@users_app.command("set-password")
def set_password(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    password: PasswordOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Set a user's password; the user's existing sessions end."""
    secret = _read_password(password, password_stdin)
    address = auth.normalize_email(email)

    async def run(session: AsyncSession) -> None:
        user = await session.scalar(select(User).where(User.email == address))
        if user is None:
            raise CliError(f"No user {address!r}; create one with `rudder user create`.")
        user.password_hash = auth.hash_password(secret)

    _run(run)
    console.print(f"[green]✓[/] password of {address} changed")


def _set_instance_admin(email: str, value: bool) -> str:
    address = auth.normalize_email(email)

    async def run(session: AsyncSession) -> str:
        user = await session.scalar(select(User).where(User.email == address))
        if user is None:
            raise CliError(f"No user {address!r}; create one with `rudder user create`.")
        user.is_instance_admin = value
        return address

    return _run(run)


@users_app.command("grant-admin")
def grant_admin(email: Annotated[str, typer.Argument(help="The user's email.")]) -> None:
    """Make a user an instance admin: they may choose runtimes that run commands on this server
    (process, claude_local, codex_local) and create organizations (docs/security.md)."""
    console.print(f"[green]✓[/] {_set_instance_admin(email, True)} is an instance admin")


@users_app.command("revoke-admin")
def revoke_admin(email: Annotated[str, typer.Argument(help="The user's email.")]) -> None:
    """Take instance admin away from a user. Runtimes they approved keep running until someone
    changes them; `rudder user list` shows who is one."""
    console.print(f"[green]✓[/] {_set_instance_admin(email, False)} is no longer an instance admin")


@users_app.command("list")
def list_users() -> None:
    """Users, whether they can sign in, and their organizations."""

    async def run(session: AsyncSession) -> list[tuple[str, str, bool, bool, str]]:
        rows = []
        for user in await session.scalars(select(User).order_by(User.created_at)):
            found = [
                f"{o.slug} ({m.role})"
                for m, o in (
                    await session.execute(
                        select(Membership, Organization)
                        .join(Organization, Organization.id == Membership.org_id)
                        .where(Membership.user_id == user.id)
                    )
                ).all()
            ]
            rows.append(
                (
                    user.email,
                    user.name,
                    bool(user.password_hash),
                    user.is_instance_admin,
                    ", ".join(found),
                )
            )
        return rows

    from rich.table import Table

    table = Table("email", "name", "can sign in", "organizations")
    for address, name, can, admin, where in _run(run):
        signs_in = ("yes" if can else "no") + (", instance admin" if admin else "")
        table.add_row(address, name, signs_in, where or "—")
    console.print(table)

"""`rudder user create|set-password|list` against the same database the server uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from rudder.cli_users import users_app
from rudder.config import Settings
from tests.auth.conftest import login


async def rudder_user(settings: Settings, tmp_path: Path, *args: str, stdin: str = "") -> Result:
    env = {
        "RUDDER_HOME": str(tmp_path / "cli-home"),
        "DATABASE_URL": settings.effective_database_url,
        "RUDDER_SECRETS_KEY": settings.secrets_key.get_secret_value()
        if settings.secrets_key
        else "",
    }
    runner = CliRunner()
    # The command runs its own event loop, so it gets a thread of its own.
    return await asyncio.to_thread(runner.invoke, users_app, list(args), input=stdin, env=env)


async def test_create_a_user_who_can_then_sign_in(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    created = await rudder_user(
        settings,
        tmp_path,
        "create",
        "Carol@Example.com",
        "--name",
        "Carol",
        "--password-stdin",
        "--org",
        "my-organization",
        "--role",
        "admin",
        stdin="a long enough password\n",
    )
    assert created.exit_code == 0, created.output
    r = await login(client, "carol@example.com", "a long enough password")
    assert r.status_code == 200, r.text
    assert [o["role"] for o in r.json()["orgs"]] == ["admin"]

    again = await rudder_user(
        settings, tmp_path, "create", "carol@example.com", "--name", "C", "--password", "x" * 10
    )
    assert again.exit_code == 1 and "set-password" in again.output

    listed = await rudder_user(settings, tmp_path, "list")
    assert "carol@example.com" in listed.output and "my-organization (admin)" in listed.output

    short = await rudder_user(
        settings, tmp_path, "set-password", "carol@example.com", "--password", "short"
    )
    assert short.exit_code == 2
    changed = await rudder_user(
        settings, tmp_path, "set-password", "carol@example.com", "--password", "another password!"
    )
    assert changed.exit_code == 0, changed.output
    # The session started with the old password has ended; only the new password works.
    assert (await client.get("/api/auth/me")).status_code == 401
    assert (await login(client, "carol@example.com", "a long enough password")).status_code == 401
    assert (await login(client, "carol@example.com", "another password!")).status_code == 200

    missing = await rudder_user(
        settings, tmp_path, "set-password", "nobody@example.com", "--password", "whatever123"
    )
    assert missing.exit_code == 1 and "No user" in missing.output
    no_org = await rudder_user(
        settings,
        tmp_path,
        "create",
        "d@example.com",
        "--name",
        "D",
        "--password",
        "x" * 10,
        "--org",
        "no-such-org",
    )
    assert no_org.exit_code == 1 and "No organization" in no_org.output


async def test_only_the_command_line_makes_instance_admins(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """An instance admin may create organizations (and choose server-executing runtimes); the
    flag comes from `rudder user create --instance-admin` or `grant-admin`, and goes again."""
    for email, extra in (("root@example.com", ["--instance-admin"]), ("ops@example.com", [])):
        created = await rudder_user(
            settings, tmp_path, "create", email, "--name", "X", "--password", "p" * 12, *extra
        )
        assert created.exit_code == 0, created.output
    assert "instance admin" not in created.output  # ops is not one
    r = await login(client, "ops@example.com", "p" * 12)
    assert r.status_code == 200, r.text
    assert (await client.post("/api/orgs", json={"name": "Ops"})).status_code == 403
    granted = await rudder_user(settings, tmp_path, "grant-admin", "OPS@example.com")
    assert granted.exit_code == 0 and "is an instance admin" in granted.output
    assert (await client.post("/api/orgs", json={"name": "Ops"})).status_code == 201
    listed = await rudder_user(settings, tmp_path, "list")
    assert listed.output.count("instance admin") == 2, listed.output
    revoked = await rudder_user(settings, tmp_path, "revoke-admin", "ops@example.com")
    assert revoked.exit_code == 0, revoked.output
    assert (await client.post("/api/orgs", json={"name": "Ops 2"})).status_code == 403
    missing = await rudder_user(settings, tmp_path, "grant-admin", "nobody@example.com")
    assert missing.exit_code == 1 and "No user" in missing.output
